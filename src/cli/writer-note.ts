import type { FileDevice } from '../block/file-device.js';

/**
 * A reader takes no claim (src/block/claim.ts) but says, in one line on
 * stderr (stdout may be JSON), when a writer holds what it reads and what
 * that means for what it shows.
 */
export function noteWriterHolding(dev: FileDevice, meaning: string): void {
  const holder = dev.writerHolding();
  if (holder !== undefined) process.stderr.write(`remapsim: note: ${dev.name} is in use by a writer, ${holder}: ${meaning}\n`);
}
