import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32cOf } from '../../src/metadata/crc.js';
import { MetadataFormatError, MetadataValueError } from '../../src/metadata/errors.js';
import {
  CHECKPOINT_ENTRIES_PER_BLOCK,
  LOG_RECORDS_PER_BLOCK,
  computeSafeLayout,
  dataUnits,
  decodeCheckpointBlock,
  decodeLogBlock,
  decodeSuperblock,
  encodeCheckpoint,
  encodeLogBlock,
  encodeSuperblock,
  formatSafe,
  safeBlockSector,
  type DeviceFingerprint,
  type SafeFormatOptions,
} from '../../src/metadata/safe-format.js';
import { replay } from '../../src/metadata/safe-replay.js';
import { SimVolume, sortedEntries } from '../../scripts/fuzz/safe-sim.js';

const dvOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const FP: DeviceFingerprint = { mainSectors: 2 ** 52, logicalBlockSize: 4096, identity: 'wwn-0x5000c500a1b2c3d4' };
const BIG = 2 ** 48 + 12345; // a main block beyond 2^48 (the main device has 2^49 blocks of 4 KiB)

function smallVolume(extra: Partial<SafeFormatOptions> = {}): SimVolume {
  return new SimVolume({
    fingerprint: FP,
    volumeId: 0x1234_5678_9abc,
    spareSectors: 8 * 400,
    remapBlockSectors: 8,
    logBlocks: 4,
    checkpointSlotBlocks: 3,
    ...extra,
  });
}

function expectState(v: SimVolume, r = v.replay()) {
  expect(sortedEntries(r.state.remaps)).toEqual(sortedEntries(v.durable.remaps));
  expect(r.state.cursor).toBe(v.durable.cursor);
  return r;
}

function formatError(f: () => unknown): MetadataFormatError {
  try {
    f();
  } catch (e) {
    if (e instanceof MetadataFormatError) return e;
    throw e;
  }
  throw new Error('expected a MetadataFormatError');
}

describe('safe format: layout (golden)', () => {
  it('places both areas and the data region as documented', () => {
    // 40 MiB spare, 4 KiB remap blocks, default 256 log blocks
    const l = computeSafeLayout({ spareSectors: 81920, remapBlockSectors: 8 });
    // S = 10240 blocks; room for checkpoints+data = 10240 - 2*257 = 9726 -> C = ceil(9726/251) = 39
    expect(l).toEqual({
      spareSectors: 81920,
      remapBlockSectors: 8,
      logBlocks: 256,
      checkpointSlotBlocks: 39,
      areaBlocks: 1 + 2 * 39 + 256,
      dataStartSector: 335 * 8,
      dataEndSector: (10240 - 335) * 8,
    });
    expect(safeBlockSector(l, 'A', { region: 'superblock' })).toBe(0);
    expect(safeBlockSector(l, 'A', { region: 'checkpoint', slot: 0, index: 0 })).toBe(8);
    expect(safeBlockSector(l, 'A', { region: 'checkpoint', slot: 1, index: 0 })).toBe(40 * 8);
    expect(safeBlockSector(l, 'A', { region: 'log', index: 0 })).toBe(79 * 8);
    expect(safeBlockSector(l, 'A', { region: 'log', index: 255 })).toBe(334 * 8);
    expect(safeBlockSector(l, 'B', { region: 'checkpoint', slot: 0, index: 0 })).toBe(9905 * 8);
    expect(safeBlockSector(l, 'B', { region: 'log', index: 0 })).toBe((9905 + 78) * 8);
    expect(safeBlockSector(l, 'B', { region: 'log', index: 255 })).toBe(10238 * 8);
    expect(safeBlockSector(l, 'B', { region: 'superblock' })).toBe(10239 * 8);
    expect(() => safeBlockSector(l, 'A', { region: 'log', index: 256 })).toThrow(MetadataValueError);
    // the checkpoint slot holds a remap of every data block
    const units = dataUnits(l);
    expect(units.end - units.first).toBe(9570);
    expect(39 * CHECKPOINT_ENTRIES_PER_BLOCK).toBeGreaterThanOrEqual(9570);
  });

  it('sizes the checkpoint slot for every data block, for any spare and unit size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.constantFrom(1, 2, 4, 8), fc.integer({ min: 1, max: 300 }), (extra, rbs, logBlocks) => {
        const spare = 8 * (2 * logBlocks + 600) + extra;
        const l = computeSafeLayout({ spareSectors: spare, remapBlockSectors: rbs, logBlocks });
        const u = dataUnits(l);
        expect(u.end - u.first).toBeGreaterThan(0);
        expect(l.checkpointSlotBlocks * CHECKPOINT_ENTRIES_PER_BLOCK).toBeGreaterThanOrEqual(u.end - u.first);
        expect(safeBlockSector(l, 'B', { region: 'superblock' }) + 8).toBeLessThanOrEqual(spare);
        expect(safeBlockSector(l, 'B', { region: 'checkpoint', slot: 0, index: 0 })).toBe(l.dataEndSector);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a spare too small for two areas and a data block', () => {
    expect(() => computeSafeLayout({ spareSectors: 8 * 20, remapBlockSectors: 8, logBlocks: 8 })).toThrow(/spareSectors is 160; this layout needs at least/);
  });
});

describe('safe format: blocks (golden)', () => {
  it('superblock fields sit at their documented offsets, CRC32C at 4092', () => {
    const f = formatSafe({ fingerprint: FP, volumeId: 0xabcdef012345, spareSectors: 81920, remapBlockSectors: 8 });
    const b = f.superblockBytes.B;
    const dv = dvOf(b);
    expect(new TextDecoder().decode(b.subarray(0, 8))).toBe('remapsim');
    expect(dv.getUint32(8, true)).toBe(1);
    expect(dv.getUint32(12, true)).toBe(1); // copy B
    expect(dvOf(f.superblockBytes.A).getUint32(12, true)).toBe(0);
    expect(dv.getBigUint64(16, true)).toBe(1n);
    expect(dv.getBigUint64(24, true)).toBe(0xabcdef012345n);
    expect(dv.getBigUint64(32, true)).toBe(2n ** 52n);
    expect(dv.getUint32(40, true)).toBe(4096);
    expect(dv.getUint32(44, true)).toBe(FP.identity.length);
    expect(new TextDecoder().decode(b.subarray(48, 48 + FP.identity.length))).toBe(FP.identity);
    expect(dv.getBigUint64(176, true)).toBe(81920n);
    expect(dv.getUint32(184, true)).toBe(8);
    expect(dv.getUint32(188, true)).toBe(4096);
    expect(dv.getBigUint64(192, true)).toBe(256n);
    expect(dv.getBigUint64(200, true)).toBe(39n);
    expect(dv.getBigUint64(208, true)).toBe(335n);
    expect(dv.getBigUint64(216, true)).toBe(2680n);
    expect(dv.getBigUint64(224, true)).toBe(79240n);
    expect(dv.getBigUint64(232, true)).toBe(1n); // epoch
    expect(dv.getUint32(240, true)).toBe(0); // slot
    expect(dv.getBigUint64(248, true)).toBe(1n); // checkpoint blocks
    expect(dv.getBigUint64(256, true)).toBe(0n); // entries
    expect(dv.getBigUint64(264, true)).toBe(1n); // log start sequence
    expect(b.subarray(272, 4092).every((x) => x === 0)).toBe(true);
    expect(dv.getUint32(4092, true)).toBe(crc32cOf(b.subarray(0, 4092)));
    expect(decodeSuperblock(b, 'B')).toEqual({ ...f.superblock, copy: 'B' });
    expect(() => decodeSuperblock(b, 'A')).toThrow(/holds superblock B/);
  });

  it('log block: header, 24-byte records, CRC32C; 169 records fit, 170 do not', () => {
    const records = [
      { op: 'add', main: BIG, spare: 700 },
      { op: 'remove', main: 2 ** 52 + 3 },
      { op: 'cursor', cursor: 9000 },
    ] as const;
    const b = encodeLogBlock({ volumeId: 77, epoch: 3, seq: 41, records: [...records] });
    const dv = dvOf(b);
    expect(new TextDecoder().decode(b.subarray(0, 4))).toBe('RSLG');
    expect(dv.getUint32(4, true)).toBe(3);
    expect(dv.getBigUint64(8, true)).toBe(77n);
    expect(dv.getBigUint64(16, true)).toBe(3n);
    expect(dv.getBigUint64(24, true)).toBe(41n);
    expect([b[32], b[56], b[80]]).toEqual([1, 2, 3]);
    expect(dv.getBigUint64(40, true)).toBe(BigInt(BIG));
    expect(dv.getBigUint64(48, true)).toBe(700n);
    expect(dv.getBigUint64(64, true)).toBe(2n ** 52n + 3n);
    expect(dv.getBigUint64(72, true)).toBe(0n);
    expect(dv.getBigUint64(88, true)).toBe(0n);
    expect(dv.getBigUint64(96, true)).toBe(9000n);
    expect(dv.getUint32(4092, true)).toBe(crc32cOf(b.subarray(0, 4092)));
    expect(decodeLogBlock(b)).toEqual({ volumeId: 77, epoch: 3, seq: 41, records });
    const full = Array.from({ length: LOG_RECORDS_PER_BLOCK }, (_, i) => ({ op: 'add' as const, main: 2 ** 53 - 1 - i, spare: i }));
    expect(decodeLogBlock(encodeLogBlock({ volumeId: 1, epoch: 1, seq: 1, records: full })).records).toEqual(full);
    expect(() => encodeLogBlock({ volumeId: 1, epoch: 1, seq: 1, records: [...full, full[0]] })).toThrow(/at most 169 records/);
  });

  it('checkpoint spans blocks of 251 sorted entries, each with the header and CRC32C', () => {
    const remaps = new Map<number, number>();
    for (let i = 0; i < 600; i++) remaps.set(BIG + 1000 - i * 3, 5000 + i);
    const blocks = encodeCheckpoint({ volumeId: 9, epoch: 4, cursor: 6000, remaps });
    expect(blocks).toHaveLength(3);
    const dv = dvOf(blocks[2]);
    expect(new TextDecoder().decode(blocks[2].subarray(0, 4))).toBe('RSCK');
    expect(dv.getUint32(4, true)).toBe(600 - 2 * 251);
    expect(dv.getBigUint64(16, true)).toBe(4n);
    expect(dv.getUint32(24, true)).toBe(2);
    expect(dv.getUint32(28, true)).toBe(3);
    expect(dv.getBigUint64(32, true)).toBe(600n);
    expect(dv.getBigUint64(40, true)).toBe(6000n);
    const decoded = blocks.flatMap((b) => decodeCheckpointBlock(b).entries);
    expect(decoded).toEqual(sortedEntries(remaps));
    expect(decoded[0][0]).toBe(BIG + 1000 - 599 * 3);
    expect(() => encodeCheckpoint({ volumeId: 9, epoch: 4, cursor: 5100, remaps })).toThrow(/cursor 5100 must be above/);
    expect(encodeCheckpoint({ volumeId: 9, epoch: 4, cursor: 1, remaps: [] })).toHaveLength(1);
  });

  it('decoders refuse damaged blocks with MetadataFormatError naming the problem', () => {
    const log = encodeLogBlock({ volumeId: 1, epoch: 1, seq: 1, records: [{ op: 'add', main: 1, spare: 2 }] });
    const flipped = log.slice();
    flipped[100] ^= 4;
    expect(formatError(() => decodeLogBlock(flipped)).problem).toBe('bad-crc');
    expect(formatError(() => decodeLogBlock(new Uint8Array(4096))).message).toMatch(/blank/);
    expect(formatError(() => decodeLogBlock(log.subarray(0, 4095))).problem).toBe('truncated');
    const badOp = log.slice();
    badOp[32] = 9;
    dvOf(badOp).setUint32(4092, crc32cOf(badOp.subarray(0, 4092)), true);
    expect(formatError(() => decodeLogBlock(badOp)).message).toMatch(/unknown op 9/);
    // epoch 0 under a valid CRC: the encoder refuses it, so the decoder must too (found by the fuzzer, seed 946234451)
    const epoch0 = encodeCheckpoint({ volumeId: 9, epoch: 4, cursor: 10, remaps: [[1, 2]] })[0].slice();
    dvOf(epoch0).setBigUint64(16, 0n, true);
    dvOf(epoch0).setUint32(4092, crc32cOf(epoch0.subarray(0, 4092)), true);
    expect(formatError(() => decodeCheckpointBlock(epoch0)).message).toMatch(/epoch is 0/);
    const huge = log.slice();
    dvOf(huge).setBigUint64(40, 1n << 60n, true);
    dvOf(huge).setUint32(4092, crc32cOf(huge.subarray(0, 4092)), true);
    expect(formatError(() => decodeLogBlock(huge)).message).toMatch(/beyond the largest supported value 2\^53-1/);
  });
});

describe('safe format: replay', () => {
  it('round-trips remaps across log blocks and checkpoints, main blocks beyond 2^48 included', () => {
    const v = smallVolume();
    const mains = [0, 1, BIG, 2 ** 52 / 8 - 1, 77];
    for (const m of mains) v.add(m);
    v.commit();
    let r = expectState(v);
    expect(r.appliedLogBlocks).toBe(1);
    expect(r.state.remaps.get(BIG)).toBe(dataUnits(v.sb.layout).first + 2);
    expect(r.problems).toEqual([]);
    expect(r.rewrite).toEqual({ superblocks: [], checkpoint: [], log: [] });
    v.remove(1);
    v.commit();
    v.skip(5);
    v.commit();
    // enough commits to fill the 4-block log twice: checkpoints happen on the way
    for (let i = 0; i < 9; i++) {
      v.add(1000 + i);
      if (i % 3 === 0) v.remove(1000 + i - 1);
      v.commit();
    }
    expect(v.sb.checkpointEpoch).toBeGreaterThan(1);
    r = expectState(v);
    expect(r.superblock.generation).toBe(v.sb.generation);
    expect(r.next).toEqual({ logSlot: v.nextSlot, seq: v.nextSeq, epoch: v.sb.checkpointEpoch, generation: v.sb.generation + 1 });
    expect(r.state.remaps.has(1)).toBe(false);
    expect(r.tornTail).toBe(false);
  });

  it('a checkpoint larger than one block (600 remaps) round-trips', () => {
    const v = smallVolume({ spareSectors: 8 * 2000, checkpointSlotBlocks: 4, logBlocks: 2 });
    for (let i = 0; i < 600; i++) v.add(BIG + i * 2);
    v.commit(); // 4 log blocks of up to 169 records: two checkpoints happen
    expect(v.sb.checkpointBlocks).toBeGreaterThan(1);
    const r = expectState(v);
    expect(r.state.remaps.size).toBe(600);
  });

  it('ignores a torn tail: a partly written block after the last good one', () => {
    const v = smallVolume();
    v.add(10);
    v.commit();
    v.add(11);
    v.commit();
    // the third block is torn in A: its first sector is new, the rest is what was there (zeros); B never written
    const torn = new Uint8Array(4096);
    torn.set(v.logBlock([{ op: 'add', main: 12, spare: v.alloc }]).subarray(0, 512));
    v.images.A.log[2] = torn;
    const r = expectState(v);
    expect(r.tornTail).toBe(true);
    expect(r.state.remaps.has(12)).toBe(false);
    expect(r.next.logSlot).toBe(2);
    expect(r.next.seq).toBe(3);
    expect(r.problems).toEqual([]); // past the tail is not damage
    expect(r.rewrite.log).toEqual([]);
  });

  it('a block that reached A but not B counts, and B is to be rewritten from A', () => {
    const v = smallVolume();
    v.add(10);
    v.commit();
    v.add(11);
    v.commit('A');
    const r = expectState(v);
    expect(r.state.remaps.has(11)).toBe(true);
    expect(r.rewrite.log).toEqual([{ area: 'B', index: 1 }]);
    expect(r.problems).toEqual([{ area: 'B', region: 'log', index: 1, problem: 'blank' }]);
  });

  it('a stale log block from an earlier epoch past the tail is not replayed', () => {
    const v = smallVolume();
    for (let i = 0; i < 4; i++) {
      v.add(20 + i);
      v.commit();
    }
    v.remove(20);
    v.commit(); // log was full: checkpoint, then this block goes to slot 0; slots 1..3 still hold epoch-1 blocks
    const r = expectState(v);
    expect(r.state.remaps.has(20)).toBe(false);
    expect(r.next.logSlot).toBe(1);
    expect(r.appliedLogBlocks).toBe(1);
  });

  it('repairs a corrupt superblock copy from the other and says which copy to rewrite', () => {
    const v = smallVolume();
    v.add(5);
    v.commit();
    const goodA = v.images.A.superblock!;
    const damaged = goodA.slice();
    damaged[200] ^= 0x10;
    v.images.A.superblock = damaged;
    const r = expectState(v);
    expect(r.superblockFrom).toBe('B');
    expect(r.rewrite.superblocks).toEqual(['A']);
    expect(r.problems[0]).toMatchObject({ area: 'A', region: 'superblock', problem: expect.stringMatching(/CRC32C/) });
    expect(encodeSuperblock(r.superblock, 'A')).toEqual(goodA);
    // and the other way round, with B unreadable
    v.images.A.superblock = goodA;
    v.images.B.superblock = null;
    const r2 = expectState(v);
    expect(r2.superblockFrom).toBe('A');
    expect(r2.rewrite.superblocks).toEqual(['B']);
  });

  it('after a crash between superblock A and B the newer generation wins and B is rewritten', () => {
    const v = smallVolume();
    v.add(5);
    v.commit();
    v.checkpoint({ superblocks: ['A'] });
    v.add(6);
    v.commit();
    const r = expectState(v);
    expect(r.superblockFrom).toBe('A');
    expect(r.rewrite.superblocks).toEqual(['B']);
    expect(r.fellBack).toBe(false);
  });

  it('falls back to the older superblock when the newest checkpoint is lost in both copies', () => {
    const v = smallVolume();
    v.add(5);
    v.add(6);
    v.commit();
    v.remove(5);
    v.commit();
    v.checkpoint({ superblocks: ['A'] }); // crash before superblock B; no new log yet
    const slot = v.sb.checkpointSlot;
    v.images.A.checkpoint[slot][0]![300] ^= 1;
    v.images.B.checkpoint[slot][0] = null;
    const r = expectState(v); // the old checkpoint plus the old log give the same state
    expect(r.fellBack).toBe(true);
    expect(r.superblockFrom).toBe('B');
    expect(r.needsCheckpoint).toBe(true);
    expect(r.rewrite.superblocks).toEqual(['A']);
  });

  it('a checkpoint block damaged in one copy is read from the other and listed for rewrite', () => {
    const v = smallVolume();
    v.add(5);
    v.commit();
    v.checkpoint();
    v.images.B.checkpoint[v.sb.checkpointSlot][0]![70] ^= 1;
    const r = expectState(v);
    expect(r.rewrite.checkpoint).toEqual([{ area: 'B', slot: v.sb.checkpointSlot, index: 0 }]);
  });

  it('reports a log slot lost in both copies and keeps the records after it', () => {
    const v = smallVolume();
    for (const m of [1, 2, 3]) {
      v.add(m);
      v.commit();
    }
    v.images.A.log[1] = null;
    v.images.B.log[1]![64] ^= 1;
    const r = v.replay();
    expect(r.lostLogSlots).toEqual([1]);
    expect(r.needsCheckpoint).toBe(true);
    expect(sortedEntries(r.state.remaps).map(([m]) => m)).toEqual([1, 3]);
    expect(r.next.logSlot).toBe(3);
  });

  it('refuses metadata of another device', () => {
    const v = smallVolume();
    const { A, B } = v.images;
    const run = (fingerprint: DeviceFingerprint, spareSectors?: number) =>
      formatError(() =>
        replay({ A: A.superblock, B: B.superblock }, { A: A.checkpoint, B: B.checkpoint }, { A: A.log, B: B.log }, { fingerprint, spareSectors }),
      );
    let e = run({ ...FP, identity: 'wwn-0x5000c500deadbeef' });
    expect(e.problem).toBe('foreign-device');
    expect(e.message).toMatch(/identity is "wwn-0x5000c500a1b2c3d4" in the metadata, "wwn-0x5000c500deadbeef" on this device/);
    e = run({ ...FP, mainSectors: FP.mainSectors - 8 });
    expect(e.message).toMatch(/main device size/);
    e = run({ ...FP, logicalBlockSize: 512 });
    expect(e.message).toMatch(/logical block size/);
    e = run(FP, 8 * 401);
    expect(e.message).toMatch(/spare of 3200 sectors, this spare has 3208/);
  });

  it('says unformatted for blank superblocks and refuses when both are damaged', () => {
    const v = smallVolume();
    const { A, B } = v.images;
    const run = (a: Uint8Array | null, b: Uint8Array | null) =>
      formatError(() => replay({ A: a, B: b }, { A: A.checkpoint, B: B.checkpoint }, { A: A.log, B: B.log }, { fingerprint: FP }));
    expect(run(new Uint8Array(4096), new Uint8Array(4096)).problem).toBe('unformatted');
    const badA = A.superblock!.slice();
    badA[9] ^= 1;
    expect(run(badA, null).problem).toBe('no-valid-superblock');
  });

  it('refuses two valid copies of one log block that disagree', () => {
    const v = smallVolume();
    v.add(1);
    v.commit();
    v.images.B.log[0] = v.logBlock([{ op: 'add', main: 2, spare: v.alloc }], 0);
    expect(formatError(() => v.replay()).problem).toBe('inconsistent-copies');
  });
});
