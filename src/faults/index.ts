export * from './dm-args.js';
export * from './errors.js';
export * from './dust.js';
export * from './flakey.js';
export * from './latency.js';
export * from './badlist.js';
