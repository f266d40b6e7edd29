/** The NBD protocol codec: constants, typed messages, pure encoders/decoders and stream parsers. */
export * from './constants.js';
export * from './errors.js';
export type * from './messages.js';
export * from './codec.js';
export * from './parser.js';
export { ByteQueue } from './byte-queue.js';
