import { RemapTable, type RemapTableShared } from '../block/remap-table.js';

/** A set of block numbers in shared memory (a RemapTable whose values are 1), iterated in order. */
export class BlockSet {
  private readonly t: RemapTable;

  constructor(opts: { keySpace: number } | RemapTableShared) {
    this.t = new RemapTable(opts);
  }

  get shared(): RemapTableShared {
    return this.t.shared;
  }

  get size(): number {
    return this.t.size;
  }

  has(block: number): boolean {
    return this.t.get(block) >= 0;
  }

  add(block: number): void {
    if (!this.has(block)) this.t.set(block, 1);
  }

  delete(block: number): void {
    this.t.delete(block);
  }

  anyInRange(first: number, count: number): boolean {
    return this.t.anyInRange(first, count);
  }

  [Symbol.iterator](): Iterator<number> {
    return Array.from(this.t.snapshot().keys)[Symbol.iterator]();
  }

  close(): void {
    this.t.close();
  }
}
