import { ReadBuffers } from '../../src/metadata/spare-io.js';

/** ReadBuffers that list every buffer they hand out, in `taken` (splice it to take the list so far). */
export function watchedReadBuffers(): { readBuffers: ReadBuffers; taken: Uint8Array[] } {
  const readBuffers = new ReadBuffers();
  const taken: Uint8Array[] = [];
  const take = readBuffers.take.bind(readBuffers);
  readBuffers.take = (bytes) => {
    const b = take(bytes);
    taken.push(b);
    return b;
  };
  return { readBuffers, taken };
}
