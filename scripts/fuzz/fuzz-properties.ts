/**
 * Fuzz properties of the metadata decoders, shared by test/metadata/fuzz.test.ts
 * (a few thousand cases) and scripts/fuzz-metadata.ts (100,000 and more).
 *
 * 1. dm-remap-v4 copies: valid tables, random bytes or zeros, with random byte
 *    and field mutations, odd lengths, and optionally a recomputed checksum (so
 *    the mutations reach the field checks): decodeV4Copy returns a result or
 *    throws MetadataFormatError; a valid result re-encodes to a copy that
 *    decodes valid and re-encodes to the same bytes.
 * 2. safe-format blocks (superblocks, checkpoint and log blocks, random, zeros)
 *    mutated the same way (optionally resealed with CRC32C): each of the three
 *    decoders returns or throws MetadataFormatError, and whatever decodes
 *    re-encodes to exactly the input bytes.
 * 3. replay of volumes written by SimVolume then damaged: only
 *    MetadataFormatError or a result whose table lies inside the data region;
 *    when the damage leaves at least one intact copy of every block (and
 *    forges no checksum), the result is exactly the committed state.
 */
import fc from 'fast-check';
import { Random } from '../../src/util/random.js';
import { MetadataFormatError } from '../../src/metadata/errors.js';
import { V4_MAGIC, V4_STRUCT_SIZE, chooseBestCopy, decodeV4Copy, encodeV4Copy, v4Checksum, v4Entry, v4Metadata } from '../../src/metadata/dm-remap-v4.js';
import { crc32cOf } from '../../src/metadata/crc.js';
import {
  dataUnits,
  decodeCheckpointBlock,
  decodeLogBlock,
  decodeSuperblock,
  encodeCheckpoint,
  encodeLogBlock,
  encodeSuperblock,
  formatSafe,
  type Area,
  type LogRecord,
} from '../../src/metadata/safe-format.js';
import { SimVolume, sortedEntries } from './safe-sim.js';

export interface FuzzOptions {
  /** Cases per property (three properties). */
  numRuns: number;
  seed?: number;
}

export interface FuzzReport {
  seed: number;
  numRuns: number;
  /** Outcome counts, e.g. "v4 valid", "v4 invalid bad-crc", "log error bad-crc", "replay exact". */
  counts: Record<string, number>;
  ms: { v4: number; blocks: number; replay: number };
}

const NOW = 1_750_000_000;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function randomBytes(seed: number, length: number): Uint8Array {
  const r = new Random(seed);
  const words = new Uint32Array(Math.ceil(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = r.nextU32();
  return new Uint8Array(words.buffer, 0, length);
}

function resize(b: Uint8Array, length: number, fillSeed: number): Uint8Array {
  if (length === b.length) return b.slice();
  const out = randomBytes(fillSeed, length);
  out.set(b.subarray(0, Math.min(length, b.length)));
  return out;
}

interface FieldWrite {
  at: number;
  value: bigint;
  width: 1 | 2 | 4 | 8;
}

function applyWrites(b: Uint8Array, bytes: ByteWrite[], fields: FieldWrite[]): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (const { at, value } of bytes) if (at < b.length) b[at] = value;
  for (const { at, value, width } of fields) {
    if (at + width > b.length) continue;
    if (width === 8) dv.setBigUint64(at, value & 0xffffffffffffffffn, true);
    else if (width === 4) dv.setUint32(at, Number(value & 0xffffffffn), true);
    else if (width === 2) dv.setUint16(at, Number(value & 0xffffn), true);
    else b[at] = Number(value & 0xffn);
  }
}

const interesting = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 4n, 100n, 101n, 169n, 170n, 251n, 252n, 2048n, 2049n, 4096n, 0xffffffffn, BigInt(V4_MAGIC)),
  fc.constantFrom(2n ** 48n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(NOW), BigInt(NOW + 86400), BigInt(NOW + 86401)),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);

/** Mutation lists are empty a third of the time, so valid inputs keep reaching the deeper checks. */
function fieldWrites(offsets: number[]): fc.Arbitrary<FieldWrite[]> {
  const write = fc.record({
    at: fc.oneof(fc.constantFrom(...offsets), fc.nat({ max: 4095 })),
    value: interesting,
    width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
  });
  return fc.oneof({ weight: 1, arbitrary: fc.constant<FieldWrite[]>([]) }, { weight: 2, arbitrary: fc.array(write, { minLength: 1, maxLength: 3 }) });
}

type ByteWrite = { at: number; value: number };
const byteWrites = (max: number): fc.Arbitrary<ByteWrite[]> =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constant<ByteWrite[]>([]) },
    { weight: 2, arbitrary: fc.array(fc.record({ at: fc.nat({ max }), value: fc.nat({ max: 255 }) }), { minLength: 1, maxLength: 6 }) },
  );

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function expectOnlyFormatErrors<T>(counts: Record<string, number>, what: string, f: () => T): T | undefined {
  try {
    return f();
  } catch (e) {
    if (!(e instanceof MetadataFormatError)) throw e;
    if (/\n/.test(e.message)) throw new Error(`${what}: multi-line message ${JSON.stringify(e.message)}`);
    bump(counts, `${what} error ${e.problem}`);
    return undefined;
  }
}

// ---------------------------------------------------------------- 1. dm-remap-v4

let v4Bases: Record<string, Uint8Array> | undefined;
function v4Base(kind: string): Uint8Array {
  v4Bases ??= {
    empty: encodeV4Copy(v4Metadata({ timestamp: BigInt(NOW), sequence: 3n })).bytes,
    mixed: encodeV4Copy(
      v4Metadata({
        sequence: 2n ** 40n,
        timestamp: BigInt(NOW - 5),
        mainUuid: 'main',
        deviceModel: 'model \xe9',
        entries: Array.from({ length: 100 }, (_, i) =>
          v4Entry({ originalSector: BigInt(i) << 40n, spareSector: BigInt(i), timestampNs: 2n ** 62n + BigInt(i) }),
        ),
      }),
    ).bytes,
    full: encodeV4Copy(
      v4Metadata({
        sequence: 7n,
        timestamp: 0n,
        entries: Array.from({ length: 2048 }, (_, i) => v4Entry({ originalSector: BigInt(i * 977), spareSector: BigInt(i) })),
      }),
    ).bytes,
    zeros: new Uint8Array(V4_STRUCT_SIZE),
  };
  return v4Bases[kind];
}

const v4Case = fc.record({
  base: fc.constantFrom('empty', 'mixed', 'full', 'empty', 'mixed', 'zeros', 'random'),
  fill: fc.integer(),
  length: fc.oneof({ weight: 9, arbitrary: fc.constant(V4_STRUCT_SIZE) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: V4_STRUCT_SIZE + 600 }) }),
  bytes: byteWrites(V4_STRUCT_SIZE - 1),
  fields: fieldWrites([0, 4, 8, 16, 24, 28, 32, 120, 256, 296, 300, 304, 312, 312 + 40 * 2047, 82232]),
  reseal: fc.boolean(),
  mutate: fc.nat({ max: 3 }),
  now: fc.constantFrom(NOW, 0, 2 ** 40),
  viaChoose: fc.boolean(),
});

function v4Property(counts: Record<string, number>) {
  return fc.property(v4Case, (c) => {
    const base = c.base === 'random' ? randomBytes(c.fill, V4_STRUCT_SIZE) : v4Base(c.base);
    const b = resize(base, c.length, c.fill);
    if (c.mutate > 0)
      applyWrites(
        b,
        c.bytes,
        c.fields.map((f) => ({ ...f, at: f.at % V4_STRUCT_SIZE })),
      );
    if (c.reseal && b.length >= V4_STRUCT_SIZE) new DataView(b.buffer).setUint32(24, v4Checksum(b), true);
    if (c.viaChoose) {
      const choice = chooseBestCopy([b, null], c.now);
      if (choice.results.length !== 2 || choice.rewrite.length < 1) throw new Error('chooseBestCopy lost a copy');
      bump(counts, choice.best ? 'v4 chosen' : 'v4 none chosen');
      return;
    }
    const r = expectOnlyFormatErrors(counts, 'v4', () => decodeV4Copy(b, c.now));
    if (!r) return;
    if (!r.valid) {
      bump(counts, `v4 invalid ${r.reason}`);
      return;
    }
    bump(counts, 'v4 valid');
    const again = encodeV4Copy(r.metadata);
    const back = decodeV4Copy(again.bytes, c.now);
    if (!back.valid) throw new Error(`a decoded copy re-encodes to an invalid one: ${back.message}`);
    if (!sameBytes(encodeV4Copy(back.metadata).bytes, again.bytes)) throw new Error('re-encoding is not stable');
  });
}

// ---------------------------------------------------------------- 2. safe-format blocks

const identity = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
);
const safeInt = fc.oneof(fc.nat({ max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));

const blockCase = fc.record({
  base: fc.constantFrom('superblock', 'checkpoint', 'log', 'superblock', 'checkpoint', 'log', 'random', 'zeros'),
  fill: fc.integer(),
  sb: fc.record({
    spareExtra: fc.integer({ min: 0, max: 2 ** 34 }),
    rbs: fc.constantFrom(1, 2, 4, 8),
    logBlocks: fc.integer({ min: 1, max: 512 }),
    lbs: fc.constantFrom(512, 4096),
    mainSectors: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    identity,
    volumeId: safeInt,
    copy: fc.constantFrom<Area>('A', 'B'),
  }),
  table: fc.array(fc.tuple(safeInt, fc.nat({ max: 2 ** 40 })), { maxLength: 600 }),
  records: fc.array(
    fc.oneof(
      fc.record({ op: fc.constant('add' as const), main: safeInt, spare: safeInt }),
      fc.record({ op: fc.constant('remove' as const), main: safeInt }),
      fc.record({ op: fc.constant('cursor' as const), cursor: safeInt }),
    ),
    { maxLength: 169 },
  ),
  header: fc.record({
    volumeId: safeInt,
    epoch: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  }),
  pick: fc.nat(),
  length: fc.oneof({ weight: 9, arbitrary: fc.constant(4096) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 5000 }) }),
  bytes: byteWrites(4095),
  fields: fieldWrites([0, 4, 8, 12, 16, 24, 28, 32, 40, 44, 176, 184, 192, 200, 208, 216, 224, 232, 240, 248, 256, 264, 4092]),
  reseal: fc.boolean(),
  mutate: fc.nat({ max: 3 }),
});

function blockBase(c: typeof blockCase extends fc.Arbitrary<infer T> ? T : never): Uint8Array {
  switch (c.base) {
    case 'superblock': {
      const logBlocks = c.sb.logBlocks;
      const lbs = c.sb.rbs * 512 >= c.sb.lbs ? c.sb.lbs : 512;
      const f = formatSafe({
        fingerprint: { mainSectors: c.sb.mainSectors, logicalBlockSize: lbs, identity: c.sb.identity.slice(0, 32) },
        volumeId: c.sb.volumeId,
        spareSectors: 8 * (2 * logBlocks + 64) + c.sb.spareExtra,
        remapBlockSectors: c.sb.rbs,
        logBlocks,
      });
      return f.superblockBytes[c.sb.copy];
    }
    case 'checkpoint': {
      const remaps = new Map(c.table);
      const cursor = Math.max(0, ...remaps.values()) + 1;
      const blocks = encodeCheckpoint({ volumeId: c.header.volumeId, epoch: c.header.epoch, cursor, remaps });
      return blocks[c.pick % blocks.length];
    }
    case 'log':
      return encodeLogBlock({ ...c.header, records: c.records as LogRecord[] });
    case 'random':
      return randomBytes(c.fill, 4096);
    default:
      return new Uint8Array(4096);
  }
}

function blocksProperty(counts: Record<string, number>) {
  return fc.property(blockCase, (c) => {
    const b = resize(blockBase(c), c.length, c.fill);
    if (c.mutate > 0) applyWrites(b, c.bytes, c.fields);
    if (c.reseal && b.length >= 4096) new DataView(b.buffer).setUint32(4092, crc32cOf(b.subarray(0, 4092)), true);
    const exact = b.subarray(0, 4096);

    const sb = expectOnlyFormatErrors(counts, 'superblock', () => decodeSuperblock(b));
    if (sb) {
      bump(counts, 'superblock valid');
      if (!sameBytes(encodeSuperblock(sb, sb.copy), exact)) throw new Error('a decoded superblock does not re-encode to its bytes');
    }
    const ck = expectOnlyFormatErrors(counts, 'checkpoint', () => decodeCheckpointBlock(b));
    if (ck) {
      bump(counts, 'checkpoint valid');
      if (ck.count === 1) {
        const [again] = encodeCheckpoint({ volumeId: ck.volumeId, epoch: ck.epoch, cursor: ck.cursor, remaps: ck.entries });
        if (!sameBytes(again, exact)) throw new Error('a decoded checkpoint block does not re-encode to its bytes');
      }
    }
    const lg = expectOnlyFormatErrors(counts, 'log', () => decodeLogBlock(b));
    if (lg) {
      bump(counts, 'log valid');
      if (!sameBytes(encodeLogBlock(lg), exact)) throw new Error('a decoded log block does not re-encode to its bytes');
    }
  });
}

// ---------------------------------------------------------------- 3. replay

type DamageKind = 'flip' | 'zero' | 'null' | 'stale' | 'tear' | 'forge';

const replayCase = fc.record({
  logBlocks: fc.integer({ min: 1, max: 6 }),
  slotBlocks: fc.integer({ min: 1, max: 3 }),
  rbs: fc.constantFrom(1, 8),
  spareExtra: fc.nat({ max: 7 }),
  ops: fc.array(
    fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('add' as const), main: fc.oneof(fc.nat({ max: 40 }), fc.integer({ min: 0, max: 2 ** 49 - 1 })) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('skip' as const), n: fc.integer({ min: 1, max: 3 }) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('commit' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('checkpoint' as const) }) },
    ),
    { maxLength: 60 },
  ),
  damage: fc.array(
    fc.record({
      region: fc.constantFrom('superblock', 'checkpoint', 'log'),
      area: fc.constantFrom<Area>('A', 'B'),
      slot: fc.constantFrom(0 as const, 1 as const),
      index: fc.nat(),
      kind: fc.constantFrom<DamageKind>('flip', 'zero', 'null', 'stale', 'tear', 'forge'),
      at: fc.nat({ max: 4095 }),
      pick: fc.nat(),
    }),
    { maxLength: 6 },
  ),
  oneSided: fc.boolean(),
});

function replayProperty(counts: Record<string, number>) {
  return fc.property(replayCase, (c) => {
    const v = new SimVolume({
      fingerprint: { mainSectors: 2 ** 52, logicalBlockSize: 4096, identity: 'fuzz' },
      volumeId: 4242,
      spareSectors: 8 * (2 * (1 + 2 * c.slotBlocks + c.logBlocks) + 300) + c.spareExtra,
      remapBlockSectors: 8,
      logBlocks: c.logBlocks,
      checkpointSlotBlocks: c.slotBlocks,
    });
    const mains: number[] = [];
    for (const op of c.ops) {
      if (op.kind === 'add' && v.spareRoom() > 4) {
        v.add(op.main);
        mains.push(op.main);
      } else if (op.kind === 'remove' && mains.length > 0) v.remove(mains[op.pick % mains.length]);
      else if (op.kind === 'skip' && v.spareRoom() > 4) v.skip(op.n);
      else if (op.kind === 'commit') v.commit();
      else if (op.kind === 'checkpoint') {
        v.commit();
        v.checkpoint();
      }
    }
    v.commit();

    const damaged = new Map<string, Area>();
    let forged = false;
    for (const d of c.damage) {
      const img = v.images[d.area];
      const list: Array<Uint8Array | null> = d.region === 'superblock' ? [img.superblock] : d.region === 'checkpoint' ? img.checkpoint[d.slot] : img.log;
      const index = d.index % list.length;
      const key = d.region === 'checkpoint' ? `checkpoint/${d.slot}/${index}` : `${d.region}/${index}`;
      if (c.oneSided && (d.kind === 'forge' || (damaged.has(key) && damaged.get(key) !== d.area))) continue;
      damaged.set(key, d.area);
      const old = list[index];
      let next: Uint8Array | null;
      switch (d.kind) {
        case 'null':
          next = null;
          break;
        case 'zero':
          next = new Uint8Array(4096);
          break;
        case 'stale': {
          const same = v.history.filter((h) => h.region === d.region);
          next = same.length ? same[d.pick % same.length].bytes.slice() : null;
          break;
        }
        case 'tear': {
          // the first sectors of another block over this one
          const other = v.history[d.pick % v.history.length].bytes;
          next = (old ?? new Uint8Array(4096)).slice();
          next.set(other.subarray(0, 512 * (1 + (d.at % 7))));
          break;
        }
        case 'flip':
        case 'forge':
          next = (old ?? new Uint8Array(4096)).slice();
          next[d.at] ^= 1 << (d.pick % 8);
          if (d.kind === 'forge') {
            new DataView(next.buffer).setUint32(4092, crc32cOf(next.subarray(0, 4092)), true);
            forged = true;
          }
          break;
      }
      if (d.region === 'superblock') img.superblock = next;
      else list[index] = next;
    }

    const r = expectOnlyFormatErrors(counts, 'replay', () => v.replay());
    if (c.oneSided && !forged && !r) throw new Error('replay failed although every block kept an intact copy');
    if (!r) return;
    const units = dataUnits(r.superblock.layout);
    for (const [, spare] of r.state.remaps) {
      if (spare < units.first || spare >= r.state.cursor || r.state.cursor > units.end)
        throw new Error(`spare block ${spare} outside [${units.first}, ${r.state.cursor})`);
    }
    if (c.oneSided && !forged) {
      const got = sortedEntries(r.state.remaps);
      const want = sortedEntries(v.durable.remaps);
      if (JSON.stringify(got) !== JSON.stringify(want) || r.state.cursor !== v.durable.cursor) {
        throw new Error(`one-sided damage changed the state: got ${got.length} remaps / cursor ${r.state.cursor}, want ${want.length} / ${v.durable.cursor}`);
      }
      bump(counts, 'replay exact');
    } else bump(counts, 'replay ok');
    if (r.tornTail) bump(counts, 'replay torn tail');
    if (r.fellBack) bump(counts, 'replay fell back');
    if (r.rewrite.superblocks.length + r.rewrite.checkpoint.length + r.rewrite.log.length > 0) bump(counts, 'replay with repairs');
  });
}

export function fuzzMetadata(opts: FuzzOptions): FuzzReport {
  const seed = opts.seed ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const counts: Record<string, number> = {};
  const ms = { v4: 0, blocks: 0, replay: 0 };
  const params = { numRuns: opts.numRuns, seed, endOnFailure: true };
  let t = performance.now();
  fc.assert(v4Property(counts), params);
  ms.v4 = performance.now() - t;
  t = performance.now();
  fc.assert(blocksProperty(counts), params);
  ms.blocks = performance.now() - t;
  t = performance.now();
  fc.assert(replayProperty(counts), params);
  ms.replay = performance.now() - t;
  return { seed, numRuns: opts.numRuns, counts, ms };
}
