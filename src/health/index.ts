export * from './math.js';
export * from './score.js';
export * from './classify.js';
export * from './scanner.js';
export * from './monitor.js';
export * from './scenario.js';
