/** A fault layer that acts on reads only: the rest passes to the device below. */
import type { IoStatus } from '../block/device.js';
import { PassThroughLayer } from '../block/pass-through.js';

export abstract class ReadFaultLayer extends PassThroughLayer {
  abstract override read(sector: number, buf: Uint8Array): IoStatus;
}
