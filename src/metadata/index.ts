export * from './errors.js';
export * from './crc.js';
export * from './dm-remap-v4.js';
export * from './safe-format.js';
