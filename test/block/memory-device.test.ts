import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { BlockRequestError, OK } from '../../src/block/device.js';

describe('MemoryDevice', () => {
  it('reads zeroes where nothing was written and what was written elsewhere', () => {
    const dev = new MemoryDevice({ sectors: 2 ** 40 }); // 512 TiB, sparse
    const data = new Uint8Array(4096).fill(7);
    expect(dev.write(2 ** 39 - 3, data)).toBe(OK); // straddles a chunk boundary
    const out = new Uint8Array(8192).fill(1);
    expect(dev.read(2 ** 39 - 3, out)).toBe(OK);
    expect(out.subarray(0, 4096).every((b) => b === 7)).toBe(true);
    expect(out.subarray(4096).every((b) => b === 0)).toBe(true);
    expect(dev.allocatedBytes).toBe(2 * 65536);
  });

  it('discard zeroes the range', () => {
    const dev = new MemoryDevice({ sectors: 1024 });
    dev.write(0, new Uint8Array(512 * 1024).fill(9));
    expect(dev.discard(10, 20)).toBe(OK);
    const out = new Uint8Array(512 * 22);
    dev.read(9, out);
    expect(out[0]).toBe(9);
    expect(out.subarray(512, 512 * 21).every((b) => b === 0)).toBe(true);
    expect(out[512 * 21]).toBe(9);
  });

  it('refuses out-of-range and misaligned requests before writing', () => {
    const dev = new MemoryDevice({ sectors: 64, logicalBlockSize: 4096 });
    expect(() => dev.write(64, new Uint8Array(4096))).toThrow(BlockRequestError);
    expect(() => dev.write(60, new Uint8Array(8192))).toThrow(/beyond the device end/);
    expect(() => dev.write(1, new Uint8Array(4096))).toThrow(/not aligned to the 4096-byte/);
    expect(() => dev.write(0, new Uint8Array(100))).toThrow(/whole number of 512-byte sectors/);
    expect(() => dev.discard(-1, 8)).toThrow(BlockRequestError);
    expect(dev.allocatedBytes).toBe(0);
  });

  it('validates its options', () => {
    expect(() => new MemoryDevice({ sectors: 0 })).toThrow(/positive integer/);
    expect(() => new MemoryDevice({ sectors: 9, logicalBlockSize: 4096 })).toThrow(/multiple of the logical block size/);
    expect(() => new MemoryDevice({ sectors: 8, logicalBlockSize: 1024 as 512 })).toThrow(/512 or 4096/);
  });
});
