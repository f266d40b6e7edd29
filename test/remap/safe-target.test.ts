import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { type BlockDevice, EIO, ENOSPC, OK } from '../../src/block/device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { FileDevice } from '../../src/block/file-device.js';
import { tmpDir } from '../helpers/tmp.js';
import { parseTableLine } from '../../src/control/table-line.js';

function block(bs: number, tag: number): Uint8Array {
  const b = new Uint8Array(bs);
  for (let i = 0; i < bs; i++) b[i] = (tag * 131 + i) & 0xff;
  return b;
}

function setup(opts: { mainSectors?: number; spareSectors?: number; lbs?: 512 | 4096; reserved?: number } = {}) {
  const lbs = opts.lbs ?? 512;
  const mainRaw = new MemoryDevice({ sectors: opts.mainSectors ?? 65536, logicalBlockSize: lbs, name: 'main' });
  const spareRaw = new MemoryDevice({ sectors: opts.spareSectors ?? 8192, logicalBlockSize: lbs, name: 'spare' });
  const main = new DustDevice(mainRaw, { blockSize: lbs });
  const spare = new DustDevice(spareRaw, { blockSize: lbs });
  main.enable();
  spare.enable();
  const t = new SafeRemapTarget({ main, spare, reservedSectors: opts.reserved ?? 64 });
  return { t, main, spare, mainRaw, spareRaw, bs: lbs };
}

const files = tmpDir('remapsim-safe-');
afterAll(() => files.cleanup());

/** A safe target on a 4 MiB main file and a 1 MiB spare file (removed after the suite). */
function onFiles(name: string): { t: SafeRemapTarget; mainPath: string; sparePath: string } {
  const mainPath = path.join(files.dir, `${name}-main`);
  const sparePath = path.join(files.dir, `${name}-spare`);
  FileDevice.createSparse(mainPath, 4 << 20);
  FileDevice.createSparse(sparePath, 1 << 20);
  return { t: new SafeRemapTarget({ main: FileDevice.open(mainPath), spare: FileDevice.open(sparePath), reservedSectors: 64 }), mainPath, sparePath };
}

describe('safe policy: routing', () => {
  it('a replica reading through the main file does not keep bytes a move made stale meanwhile (unremap during the read)', () => {
    const { t: primary, mainPath, sparePath } = onFiles('through');
    const replicaMain = FileDevice.open(mainPath);
    let during: (() => void) | undefined;
    const readMain = replicaMain.read.bind(replicaMain);
    // the primary's move lands between the replica's read of main and its look at the table (another thread, in real life)
    replicaMain.read = (sector, buf) => {
      const rc = readMain(sector, buf);
      during?.();
      during = undefined;
      return rc;
    };
    const replica = new SafeRemapTarget({
      main: replicaMain,
      spare: FileDevice.open(sparePath),
      replicaOf: { shared: primary.shared, row: 1, slow: (op, args, data) => primary.handleSlowPath(op, args, data!) },
    });
    try {
      expect(primary.write(300, block(512, 1))).toBe(OK);
      primary.message(['remap', '300']);
      const fresh = block(512, 2);
      expect(primary.write(300, fresh)).toBe(OK); // on the spare; main keeps block(512, 1)
      during = () => primary.message(['unremap', '300']);
      const out = new Uint8Array(8 * 512);
      expect(replica.read(296, out)).toBe(OK);
      expect(during).toBeUndefined(); // the move did happen mid-read
      expect(Buffer.from(out.subarray(4 * 512, 5 * 512)).equals(Buffer.from(fresh))).toBe(true);
    } finally {
      replica.close();
      primary.close();
    }
  });

  it('mappedRead: where every block of the range is on a main that maps it; never over a remapped block', () => {
    const { t } = onFiles('mapped');
    try {
      const data = block(64 * 1024, 3);
      expect(t.write(256, data)).toBe(OK);
      const v = t.mappedRead(256, 128)!;
      expect(Buffer.from(v).equals(Buffer.from(data))).toBe(true);
      expect(t.message(['remap', '300'])).toMatch(/./); // block 300 (512-byte blocks) now lives on the spare
      expect(t.mappedRead(256, 128)).toBeUndefined();
      expect(t.mappedRead(296, 8)).toBeUndefined();
      expect(t.mappedRead(299, 1)).toBeDefined();
      expect(t.mappedRead(301, 8)).toBeDefined();
      const out = new Uint8Array(64 * 1024);
      expect(t.read(256, out)).toBe(OK); // read() still gives the data (copied to the spare by the remap)
      expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
      // the block written again lives on the spare now, main keeps stale bytes: a read of the range through the
      // main file (one call) must show the spare's block over them, at the start, in the middle and at the end
      const fresh = block(512, 9);
      expect(t.write(300, fresh)).toBe(OK);
      const want = Buffer.from(data);
      want.set(fresh, (300 - 256) * 512);
      for (const [s0, n] of [
        [256, 128],
        [300, 8],
        [296, 5],
        [299, 2],
      ]) {
        const o = new Uint8Array(n * 512);
        expect(t.read(s0, o)).toBe(OK);
        expect(Buffer.from(o).equals(want.subarray((s0 - 256) * 512, (s0 - 256 + n) * 512))).toBe(true);
      }
    } finally {
      t.close();
    }
    const { t: onMemory } = setup();
    expect(onMemory.mappedRead(0, 8)).toBeUndefined(); // a main that cannot map
  });

  it('splits a request that straddles remapped blocks and sends each block where it lives', () => {
    const { t, main, mainRaw, spareRaw, bs } = setup({ lbs: 4096 });
    main.addBadBlock(5, 2); // block 5 fails its next two writes: the whole request, then the retry of that block
    const data = new Uint8Array(8 * bs);
    for (let i = 0; i < 8; i++) data.set(block(bs, i + 2), i * bs);
    expect(t.write(2 * 8, data)).toBe(OK); // blocks 2..9
    expect(t.lookup(5)).toBe(8); // first data block after 64 reserved sectors (8 blocks of 4 KiB)
    const raw = new Uint8Array(bs);
    spareRaw.read(8 * 8, raw);
    expect(raw).toEqual(block(bs, 5));
    mainRaw.read(6 * 8, raw);
    expect(raw).toEqual(block(bs, 6));
    const out = new Uint8Array(8 * bs);
    expect(t.read(2 * 8, out)).toBe(OK);
    expect(out).toEqual(data);
    // a second write over the same range goes to main around the remap and to the spare for block 5
    const again = new Uint8Array(8 * bs).fill(0x5a);
    expect(t.write(2 * 8, again)).toBe(OK);
    spareRaw.read(8 * 8, raw);
    expect(raw.every((b) => b === 0x5a)).toBe(true);
    expect(t.stats().remapsMade).toBe(1);
  });

  it('a read error returns EIO and marks only the failing block pending; the next write remaps it', () => {
    const { t, main, bs } = setup();
    for (let b = 0; b < 16; b++) expect(t.write(b, block(bs, b))).toBe(OK);
    main.addBadBlock(7);
    const out = new Uint8Array(16 * bs);
    expect(t.read(0, out)).toBe(EIO);
    expect(t.pendingBlocks()).toEqual([7]);
    expect(t.read(6, new Uint8Array(bs))).toBe(OK); // neighbours stay readable
    expect(t.write(4, new Uint8Array(8 * bs).fill(9))).toBe(OK); // covers block 7: it goes to the spare
    expect(t.pendingBlocks()).toEqual([]);
    expect(t.lookup(7)).toBeGreaterThanOrEqual(64);
    expect(t.read(0, out)).toBe(OK);
    expect(out.subarray(7 * bs, 8 * bs).every((b) => b === 9)).toBe(true);
    expect(t.stats().pendingRemapped).toBe(1);
  });

  it('skips spare blocks that fail writes and never touches the reserved areas', () => {
    const { t, main, spare, bs } = setup({ spareSectors: 256, reserved: 64 });
    spare.addBadBlock(64, 5); // the first data block of the spare fails writes
    main.addBadBlock(3, 1);
    expect(t.write(3, block(bs, 3))).toBe(OK);
    expect(t.lookup(3)).toBe(65);
    expect(t.stats().spareWriteErrors).toBe(1);
    // data area is [64, 192): 128 blocks minus the bad one
    for (let b = 100; b < 100 + 126; b++) main.addBadBlock(b, 1);
    for (let b = 100; b < 100 + 126; b++) expect(t.write(b, block(bs, b))).toBe(OK);
    expect(t.spareBlocksUsed).toBe(128);
    main.addBadBlock(500, 1);
    expect(t.write(500, block(bs, 500))).toBe(ENOSPC);
    expect(t.statusTokens().slice(3)).toEqual(['127', '0', '128/128', '0', '128', '1', 'spare_full', '0']);
    const { values } = t.remaps();
    expect(Math.min(...values)).toBeGreaterThanOrEqual(64);
    expect(Math.max(...values)).toBeLessThan(192);
  });
});

describe('safe policy: table line and messages', () => {
  const open = (p: string): BlockDevice => {
    if (p === '/missing') throw new Error('no such file or directory');
    return new MemoryDevice({ sectors: p === '/tiny' ? 100 : 8192, name: p });
  };
  it('parses and prints its table line', () => {
    const t = SafeRemapTarget.fromTable(parseTableLine('0 8192 remap /m /s 3 reserved_sectors 128 no_discard_passdown'), open);
    expect(t.table()).toBe('0 8192 remap /m /s 3 reserved_sectors 128 no_discard_passdown');
    expect(t.status()).toBe('0 8192 remap v1 /m /s 0 0 0/7936 0 0 0 ok 100');
    expect(SafeRemapTarget.fromTable(parseTableLine('0 8192 remap /m /s'), open).table()).toBe('0 8192 remap /m /s');
  });
  it('names what is wrong with a bad table line', () => {
    const mk = (l: string) => () => SafeRemapTarget.fromTable(parseTableLine(l), open);
    expect(mk('0 1 remap /m')).toThrow(/expected '<main> <spare>/);
    expect(mk('0 1 remap /m /s 2 reserved_sectors')).toThrow(/does not match the 1 feature/);
    expect(mk('0 1 remap /m /s 1 turbo')).toThrow(/unknown feature 'turbo'/);
    expect(mk('0 1 remap /m /s 2 reserved_sectors x')).toThrow(/reserved_sectors needs a number/);
    expect(mk('0 1 remap /missing /s')).toThrow(/cannot open main device: no such file/);
    expect(mk('0 1 remap /m /tiny')).toThrow(/spare too small/);
  });
  it('answers messages', () => {
    const { t, main, bs } = setup();
    expect(t.message(['help'])).toMatch(/^Commands: help, status/);
    t.write(10, block(bs, 10));
    expect(t.message(['remap', '10'])).toBe('block 10 remapped to spare block 64');
    expect(() => t.message(['remap', '10'])).toThrow(expect.objectContaining({ errno: 17 }));
    const out = new Uint8Array(bs);
    t.read(10, out);
    expect(out).toEqual(block(bs, 10)); // data moved with the remap
    expect(t.message(['list'])).toBe('10 64');
    expect(t.message(['unremap', '10'])).toBe('block 10 moved back to main');
    t.read(10, out);
    expect(out).toEqual(block(bs, 10));
    main.addBadBlock(11);
    expect(() => t.message(['remap', '11'])).toThrow(/cannot be read/);
    expect(t.message(['pending'])).toBe('11');
    expect(() => t.message(['remap', '999999'])).toThrow(/beyond the device end/);
    expect(() => t.message(['remap'])).toThrow(/takes 1 argument/);
    expect(() => t.message(['bogus'])).toThrow(/unknown message 'bogus'/);
    expect(t.message(['status'])).toMatch(/^remaps=0 pending=1 spare_used=1 /);
    expect(t.message(['clear_stats'])).toBe('Statistics cleared');
  });
});

describe('safe policy: every acknowledged write reads back intact', () => {
  it('whatever the bad blocks on main and spare, and whenever they appear', () => {
    const BLOCKS = 64;
    const op = fc.oneof(
      fc.record({
        t: fc.constant('write' as const),
        b: fc.integer({ min: 0, max: BLOCKS - 1 }),
        n: fc.integer({ min: 1, max: 8 }),
        tag: fc.integer({ min: 1, max: 1e6 }),
      }),
      fc.record({ t: fc.constant('read' as const), b: fc.integer({ min: 0, max: BLOCKS - 1 }), n: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ t: fc.constant('badMainWrite' as const), b: fc.integer({ min: 0, max: BLOCKS - 1 }), cnt: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ t: fc.constant('badSpare' as const), b: fc.integer({ min: 0, max: 200 }), cnt: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ t: fc.constant('flush' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 120 }), (ops) => {
        const { t, main, spare } = setup({ mainSectors: BLOCKS, spareSectors: 256, reserved: 16 });
        const bs = 512;
        const acked = new Map<number, Uint8Array>(); // block -> last acknowledged content
        const unknown = new Set<number>(); // a failed write: content undefined
        for (const o of ops) {
          if (o.t === 'badMainWrite') {
            // only write failures: a block that loses data on its own (a latent read error) is beyond any remapper
            if (!main.isBadBlock(o.b)) main.addBadBlock(o.b, o.cnt);
          } else if (o.t === 'badSpare') {
            if (!spare.isBadBlock(o.b)) spare.addBadBlock(o.b, o.cnt);
          } else if (o.t === 'flush') {
            t.flush();
          } else {
            const n = Math.min(o.n, BLOCKS - o.b);
            if (o.t === 'write') {
              const buf = new Uint8Array(n * bs);
              for (let i = 0; i < n; i++) buf.set(block(bs, o.tag + i), i * bs);
              const rc = t.write(o.b, buf);
              for (let i = 0; i < n; i++) {
                if (rc === OK) {
                  acked.set(o.b + i, buf.slice(i * bs, (i + 1) * bs));
                  unknown.delete(o.b + i);
                } else unknown.add(o.b + i);
              }
            } else {
              const out = new Uint8Array(n * bs);
              const rc = t.read(o.b, out);
              if (rc === OK) {
                for (let i = 0; i < n; i++) {
                  const want = acked.get(o.b + i);
                  if (want && !unknown.has(o.b + i)) expect(out.subarray(i * bs, (i + 1) * bs)).toEqual(want);
                }
              } else {
                // an error is allowed only when some block in the range holds no acknowledged data (a bad block never written well)
                let explained = false;
                for (let i = 0; i < n; i++) if (!acked.has(o.b + i) || unknown.has(o.b + i)) explained = true;
                expect(explained).toBe(true);
              }
            }
          }
        }
        // the spare is big enough for every block: no write may have failed
        expect(unknown.size).toBe(0);
      }),
      { numRuns: 300, seed: 0x5afe },
    );
  });
});
