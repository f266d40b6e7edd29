export * from './latency.js';
export * from './series.js';
export * from './fio-json.js';
export * from './summary.js';
export { cFixed, num2str, ctime } from './fio-format.js';
