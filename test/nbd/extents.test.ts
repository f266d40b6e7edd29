/**
 * The pure parts of block status: meta context selection, runs swept into
 * extents (against a byte-by-byte reference), bisection with its limits,
 * and the reply a provider's answer turns into, including providers that
 * throw or break the rules.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { answerBlockStatus, type MetaContextSource } from '../../src/nbd/block-status.js';
import { alignRuns, bisectRuns, type Run, runsOfSorted, sweepExtents } from '../../src/nbd/extents.js';
import { BASE_ALLOCATION, HEALTH_CONTEXT, selectMetaContexts } from '../../src/nbd/meta-context.js';
import { CmdFlag, decodeChunk, NbdError, readU16, readU32, ReplyFlag, Rep, CHUNK_HEADER_SIZE, readCookie } from '../../src/nbd/protocol.js';

const AVAILABLE = [BASE_ALLOCATION, HEALTH_CONTEXT];

describe('selectMetaContexts', () => {
  it('follows the spec for LIST and SET', () => {
    expect(selectMetaContexts('list', [], AVAILABLE)).toEqual({ ok: true, names: AVAILABLE });
    expect(selectMetaContexts('set', [], AVAILABLE)).toEqual({ ok: true, names: [] });
    expect(selectMetaContexts('list', ['base:'], AVAILABLE)).toEqual({ ok: true, names: [BASE_ALLOCATION] });
    expect(selectMetaContexts('set', ['base:'], AVAILABLE)).toEqual({ ok: true, names: [] });
    expect(selectMetaContexts('set', ['remapsim:health', 'base:allocation', 'base:allocation'], AVAILABLE)).toEqual({ ok: true, names: AVAILABLE });
    expect(selectMetaContexts('set', ['qemu:dirty-bitmap:b', 'base:other', 'remapsim:'], AVAILABLE)).toEqual({ ok: true, names: [] });
    expect(selectMetaContexts('list', ['remapsim:'], AVAILABLE)).toEqual({ ok: true, names: [HEALTH_CONTEXT] });
    for (const q of ['allocation', ':allocation', '']) expect(selectMetaContexts('set', [q], AVAILABLE)).toMatchObject({ ok: false, reply: Rep.ERR_INVALID });
  });
});

/** The flags of each byte of [from, to), computed the slow way. */
function reference(from: number, to: number, sources: Run[][], flagsOf: (m: number) => number): number[] {
  const out: number[] = [];
  for (let x = from; x < to; x++) {
    let mask = 0;
    sources.forEach((runs, k) => {
      if (runs.some(([s, e]) => s <= x && x < e)) mask |= 1 << k;
    });
    out.push(flagsOf(mask));
  }
  return out;
}

/** Sorted disjoint runs within [0, 200). */
const runsArb = fc.uniqueArray(fc.integer({ min: 0, max: 200 }), { maxLength: 12 }).map((xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const runs: Run[] = [];
  for (let i = 0; i + 1 < v.length; i += 2) runs.push([v[i], v[i + 1]]);
  return runs;
});

describe('sweepExtents', () => {
  it('matches a byte-by-byte reference, merges equal neighbours, covers the range exactly', () => {
    fc.assert(
      fc.property(
        fc.array(runsArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 199 }),
        fc.integer({ min: 1, max: 200 }),
        (sources, from, len) => {
          const to = Math.min(200, from + len);
          const flagsOf = (m: number) => (m === 0 ? 3 : m & 5);
          const ext = sweepExtents(from, to, sources, flagsOf, 1000);
          const flat: number[] = [];
          for (const e of ext) for (let i = 0; i < e.length; i++) flat.push(e.flags);
          expect(flat).toEqual(reference(from, to, sources, flagsOf));
          for (let i = 1; i < ext.length; i++) expect(ext[i].flags).not.toBe(ext[i - 1].flags);
        },
      ),
    );
  });

  it('stops at maxExtents, the last extent short of the range', () => {
    const ext = sweepExtents(
      0,
      100,
      [
        [
          [10, 20],
          [30, 40],
          [50, 60],
        ],
      ],
      (m) => m,
      3,
    );
    expect(ext).toEqual([
      { length: 10, flags: 0 },
      { length: 10, flags: 1 },
      { length: 10, flags: 0 },
    ]);
  });
});

describe('bisectRuns, alignRuns, runsOfSorted', () => {
  it('finds every matching unit in order, asking whole clean spans once', () => {
    const bad = new Set([3, 4, 5, 90, 1000, 1001, 65535]);
    let calls = 0;
    const any = (s: number, n: number) => {
      calls++;
      for (const b of bad) if (b >= s && b < s + n) return true;
      return false;
    };
    expect(bisectRuns(any, 0, 1 << 16, { maxRuns: 100, maxUnits: 100 })).toEqual({
      runs: [
        [3, 6],
        [90, 91],
        [1000, 1002],
        [65535, 65536],
      ],
      end: 1 << 16,
    });
    expect(calls).toBeLessThan(7 * 2 * 17 + 2);
    calls = 0;
    expect(bisectRuns(any, 2000, 60000, { maxRuns: 100, maxUnits: 100 })).toEqual({ runs: [], end: 62000 });
    expect(calls).toBe(1);
  });

  it('answers for less when the runs or units run out', () => {
    const all = () => true;
    expect(bisectRuns(all, 10, 100, { maxRuns: 5, maxUnits: 7 })).toEqual({ runs: [[10, 17]], end: 17 });
    const odd = (s: number, n: number) => n > 1 || s % 2 === 1;
    expect(bisectRuns(odd, 0, 100, { maxRuns: 3, maxUnits: 100 })).toEqual({
      runs: [
        [1, 2],
        [3, 4],
        [5, 6],
      ],
      end: 7,
    });
  });

  it('widens runs to block boundaries and merges what then touches', () => {
    expect(
      alignRuns(
        [
          [100, 200],
          [600, 700],
          [1030, 1040],
        ],
        512,
      ),
    ).toEqual([[0, 1536]]);
    expect(
      alignRuns(
        [
          [100, 200],
          [2000, 2100],
        ],
        512,
      ),
    ).toEqual([
      [0, 512],
      [1536, 2560],
    ]);
    expect(
      alignRuns(
        [
          [0, 512],
          [512, 1024],
        ],
        512,
      ),
    ).toEqual([[0, 1024]]);
    expect(runsOfSorted([1, 2, 3, 3, 7, 9, 10], 2, 10)).toEqual([
      [2, 4],
      [7, 8],
      [9, 10],
    ]);
  });
});

function chunksOf(reply: Buffer): ReturnType<typeof decodeChunk>[] {
  const out = [];
  for (let p = 0; p < reply.length; ) {
    const len = readU32(reply, p + 16);
    out.push(
      decodeChunk(readU16(reply, p + 4), readU16(reply, p + 6), readCookie(reply, p + 8), reply.subarray(p + CHUNK_HEADER_SIZE, p + CHUNK_HEADER_SIZE + len)),
    );
    p += CHUNK_HEADER_SIZE + len;
  }
  return out;
}

const source = (name: string, extents: MetaContextSource['extents']): MetaContextSource => ({ name, extents });

describe('answerBlockStatus', () => {
  it('one chunk per context, the last DONE; REQ_ONE clips the one extent to the request', () => {
    const a = source('base:allocation', () => [
      { length: 8192, flags: 3 },
      { length: 4096, flags: 0 },
    ]);
    const h = source('remapsim:health', (_o, _l, max) => [{ length: 1 << 20, flags: 0 }].slice(0, max));
    const r = answerBlockStatus(
      [
        { id: 1, source: a },
        { id: 2, source: h },
      ],
      7n,
      0,
      16384,
      0,
    );
    expect(r.ok).toBe(true);
    const chunks = chunksOf((r as { reply: Buffer }).reply);
    expect(chunks).toEqual([
      {
        kind: 'chunk-block-status',
        flags: 0,
        cookie: 7n,
        contextId: 1,
        extents: [
          { length: 8192, flags: 3 },
          { length: 4096, flags: 0 },
        ],
      },
      { kind: 'chunk-block-status', flags: ReplyFlag.DONE, cookie: 7n, contextId: 2, extents: [{ length: 1 << 20, flags: 0 }] },
    ]);
    const one = answerBlockStatus([{ id: 2, source: h }], 8n, 0, 4096, CmdFlag.REQ_ONE);
    expect(chunksOf((one as { reply: Buffer }).reply)[0]).toMatchObject({ extents: [{ length: 4096, flags: 0 }] });
  });

  it('a provider that throws or breaks the rules fails the request with EIO and a message', () => {
    const sys = Object.assign(new Error('lseek(SEEK_DATA) failed'), { errno: 5 });
    const cases: Array<[MetaContextSource['extents'], RegExp]> = [
      [
        () => {
          throw sys;
        },
        /EIO/,
      ],
      [() => [], /no extent/],
      [() => [{ length: 0, flags: 0 }], /extent length 0/],
      [
        () => [
          { length: 4096, flags: 0 },
          { length: 4096, flags: 0 },
        ],
        /past the requested length/,
      ],
    ];
    for (const [extents, why] of cases) {
      const r = answerBlockStatus([{ id: 1, source: source('base:allocation', extents) }], 1n, 0, 4096, 0);
      expect(r).toMatchObject({ ok: false, error: NbdError.EIO, message: expect.stringMatching(why) });
    }
  });
});
