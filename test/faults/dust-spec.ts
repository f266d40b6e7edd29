/**
 * The dm-dust behaviour spec, written once and run against every
 * implementation: the userspace model (dust.test.ts) and, in the kernel lane,
 * the real dm-dust target in a VM. It asserts only what Linux's dm-dust does
 * (drivers/md/dm-dust.c, 5.9 and later), so a failure against the kernel is
 * a difference between model and kernel, not a test bug.
 *
 * Harness contract:
 * - makeHarness({ blockSize, blocks }) creates a fresh dust device whose
 *   table is `<dev> 0 <blockSize>` over a backing device of exactly
 *   blocks * blockSize bytes (the message range check uses the backing
 *   device's size, so it must not be larger).
 * - message(...args) resolves to the reply text exactly as the kernel fills
 *   the result buffer (no newline added), and rejects with an Error whose
 *   `errno` is the positive errno of the failed ioctl.
 * - read/write address whole blocks and bypass any cache (O_DIRECT on a
 *   real device); status is 0 or a positive errno.
 * - status() / table() return the target's parameters, the part of the
 *   `dmsetup status` / `dmsetup table` line after "dust".
 *
 * Block 0 is kept off the list in I/O tests: an empty flush is mapped at the
 * target start and would consume or clear block 0's entry.
 */
/**
 * The test functions and assertions the spec runs with, so the same file
 * runs under vitest (test/faults/dust.test.ts) and node:test (the kernel
 * lane, test/vm/dust.test.ts). Nothing here imports a test framework.
 */
export interface SpecRunner {
  describe(name: string, fn: () => void): unknown;
  it(name: string, fn: () => Promise<void>): unknown;
  beforeEach(fn: () => Promise<void>): unknown;
  afterEach(fn: () => Promise<void>): unknown;
  assert: SpecAssert;
}

export interface SpecAssert {
  /** Strict equality (Object.is / ===). */
  equal(actual: unknown, expected: unknown, message?: string): void;
  /** Structural equality of plain arrays and objects. */
  deepEqual(actual: unknown, expected: unknown, message?: string): void;
}

/** 'identical', or where two byte strings first differ: a readable value for an equality assertion. */
export function byteDifference(actual: Uint8Array, expected: Uint8Array): string {
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) return `first difference at byte ${i}: 0x${actual[i].toString(16)} instead of 0x${expected[i].toString(16)}`;
  }
  return 'identical';
}

export type Awaitable<T> = T | Promise<T>;

export interface DustGeometry {
  /** Dust block size in bytes. */
  blockSize: number;
  /** Size of the backing device in blocks. */
  blocks: number;
}

export interface DustHarness {
  message(...args: string[]): Awaitable<string>;
  read(block: number, count?: number): Awaitable<{ status: number; data: Uint8Array }>;
  write(block: number, data: Uint8Array): Awaitable<number>;
  status(): Awaitable<string>;
  table(): Awaitable<string>;
  close(): Awaitable<void>;
}

export type MakeDustHarness = (geometry: DustGeometry) => Awaitable<DustHarness>;

export const DEFAULT_DUST_GEOMETRIES: readonly DustGeometry[] = [
  { blockSize: 512, blocks: 64 },
  { blockSize: 4096, blocks: 32 },
];

const EIO = 5;
const EINVAL = 22;

function pattern(blockSize: number, block: number, tag: number, blocks = 1): Uint8Array {
  const b = new Uint8Array(blockSize * blocks);
  for (let i = 0; i < b.length; i++) b[i] = (i * 7 + tag * 13 + block * 31 + (i >>> 9)) & 0xff;
  return b;
}

async function errnoOf(p: Awaitable<unknown>): Promise<number | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    const errno = (err as { errno?: unknown }).errno;
    if (typeof errno !== 'number') throw err;
    return errno;
  }
}

export function defineDustSpec(t: SpecRunner, name: string, makeHarness: MakeDustHarness, geometries: readonly DustGeometry[] = DEFAULT_DUST_GEOMETRIES): void {
  const { describe, it, beforeEach, afterEach, assert } = t;
  const sameBytes = (actual: Uint8Array, expected: Uint8Array, what?: string): void => assert.equal(byteDifference(actual, expected), 'identical', what);
  for (const g of geometries) {
    describe(`${name} (blksz ${g.blockSize}, ${g.blocks} blocks)`, () => {
      let h: DustHarness;
      beforeEach(async () => {
        h = await makeHarness(g);
      });
      afterEach(async () => {
        await h.close();
      });

      const msg = async (...args: string[]): Promise<string> => h.message(...args);
      const words = async (): Promise<string[]> => (await h.status()).trim().split(/\s+/);
      const fill = async (first: number, last: number, tag: number): Promise<void> => {
        for (let b = first; b <= last; b++) assert.equal(await h.write(b, pattern(g.blockSize, b, tag)), 0);
      };

      describe('control', () => {
        it('starts disabled and verbose; the table line holds offset and block size', async () => {
          const w = await words();
          assert.deepEqual(w.slice(1), ['bypass', 'verbose']);
          const t = (await h.table()).trim().split(/\s+/);
          assert.deepEqual(t.slice(1), ['0', String(g.blockSize)]);
        });

        it('enable, disable and quiet reply nothing and show in the status line', async () => {
          assert.equal(await msg('enable'), '');
          assert.deepEqual((await words()).slice(1), ['fail_read_on_bad_block', 'verbose']);
          assert.equal(await msg('quiet'), '');
          assert.deepEqual((await words()).slice(1), ['fail_read_on_bad_block', 'quiet']);
          assert.equal(await msg('disable'), '');
          assert.deepEqual((await words()).slice(1), ['bypass', 'quiet']);
          assert.equal(await msg('quiet'), '');
          assert.deepEqual((await words()).slice(1), ['bypass', 'verbose']);
          assert.equal(await msg('enable'), '');
          assert.equal(await msg('enable'), '');
          assert.equal((await words())[1], 'fail_read_on_bad_block');
        });

        it('an empty list: count, list, query and clear replies', async () => {
          assert.equal(await msg('countbadblocks'), 'countbadblocks: 0 badblock(s) found');
          assert.equal(await msg('listbadblocks'), 'No blocks in badblocklist');
          assert.equal(await msg('queryblock', '3'), 'dust_query_block: block 3 not found in badblocklist');
          assert.equal(await msg('clearbadblocks'), 'dust_clear_badblocks: no badblocks found');
        });

        it('addbadblock replies nothing; the list comes back in ascending order', async () => {
          assert.equal(await msg('addbadblock', '7'), '');
          assert.equal(await msg('addbadblock', '2'), '');
          assert.equal(await msg('addbadblock', '5', '3'), '');
          assert.equal(await msg('countbadblocks'), 'countbadblocks: 3 badblock(s) found');
          assert.equal(await msg('listbadblocks'), '2\n5\n7\n');
          assert.equal(await msg('queryblock', '5'), 'dust_query_block: block 5 found in badblocklist');
          assert.equal(await msg('queryblock', '6'), 'dust_query_block: block 6 not found in badblocklist');
        });

        it('adding a listed block or removing an unlisted one fails with EINVAL and changes nothing', async () => {
          await msg('addbadblock', '4');
          assert.equal(await errnoOf(msg('addbadblock', '4')), EINVAL);
          assert.equal(await errnoOf(msg('addbadblock', '4', '9')), EINVAL);
          assert.equal(await errnoOf(msg('removebadblock', '8')), EINVAL);
          assert.equal(await msg('listbadblocks'), '4\n');
        });

        it('removebadblock and clearbadblocks', async () => {
          for (const b of ['1', '2', '3']) await msg('addbadblock', b);
          assert.equal(await msg('removebadblock', '2'), '');
          assert.equal(await msg('listbadblocks'), '1\n3\n');
          assert.equal(await msg('countbadblocks'), 'countbadblocks: 2 badblock(s) found');
          assert.equal(await msg('clearbadblocks'), 'dust_clear_badblocks: badblocks cleared');
          assert.equal(await msg('countbadblocks'), 'countbadblocks: 0 badblock(s) found');
          assert.equal(await msg('clearbadblocks'), 'dust_clear_badblocks: no badblocks found');
        });

        it('block numbers are unsigned decimal and may go up to the device size in blocks, inclusive', async () => {
          for (const bad of ['abc', '-1', '+5', '12x', '0x10', '1.5']) {
            assert.equal(await errnoOf(msg('addbadblock', bad)), EINVAL, `addbadblock '${bad}'`);
            assert.equal(await errnoOf(msg('queryblock', bad)), EINVAL, `queryblock '${bad}'`);
          }
          assert.equal(await msg('addbadblock', '007'), '');
          assert.equal(await msg('queryblock', '7'), 'dust_query_block: block 7 found in badblocklist');
          // The kernel compares block > size_in_blocks, so the block just past the end is accepted.
          assert.equal(await msg('addbadblock', String(g.blocks)), '');
          assert.equal(await errnoOf(msg('addbadblock', String(g.blocks + 1))), EINVAL);
          assert.equal(await errnoOf(msg('queryblock', String(g.blocks + 1))), EINVAL);
          assert.equal(await errnoOf(msg('removebadblock', String(g.blocks + 1))), EINVAL);
          assert.equal(await errnoOf(msg('addbadblock', '18446744073709551615')), EINVAL);
          assert.equal(await msg('listbadblocks'), `7\n${g.blocks}\n`);
        });

        it('wr_fail_cnt is 0..255', async () => {
          assert.equal(await msg('addbadblock', '4', '255'), '');
          assert.equal(await msg('addbadblock', '5', '0'), '');
          for (const bad of ['256', '-1', 'x', '1x']) {
            assert.equal(await errnoOf(msg('addbadblock', '6', bad)), EINVAL, `wr_fail_cnt '${bad}'`);
          }
          assert.equal(await errnoOf(msg('addbadblock', String(g.blocks + 1), '1')), EINVAL);
          assert.equal(await msg('listbadblocks'), '4\n5\n');
        });

        it('a missing, surplus or unknown argument fails with EINVAL', async () => {
          const cases: string[][] = [
            ['addbadblock'],
            ['removebadblock'],
            ['queryblock'],
            ['frobnicate'],
            ['enable', '1'],
            ['countbadblocks', '1'],
            ['queryblock', '1', '2'],
            ['removebadblock', '1', '2'],
            ['addbadblock', '1', '2', '3'],
          ];
          for (const c of cases) assert.equal(await errnoOf(msg(...c)), EINVAL, c.join(' '));
          assert.equal(await msg('countbadblocks'), 'countbadblocks: 0 badblock(s) found');
          assert.deepEqual((await words()).slice(1), ['bypass', 'verbose']);
        });

        it('message names are case-insensitive', async () => {
          assert.equal(await msg('AddBadBlock', '3'), '');
          assert.equal(await msg('QUERYBLOCK', '3'), 'dust_query_block: block 3 found in badblocklist');
          assert.equal(await msg('CountBadBlocks'), 'countbadblocks: 1 badblock(s) found');
          assert.equal(await msg('Enable'), '');
          assert.equal((await words())[1], 'fail_read_on_bad_block');
        });
      });

      describe('I/O', () => {
        it('while disabled, listed blocks read and write normally and stay listed', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3');
          const r = await h.read(3);
          assert.equal(r.status, 0);
          sameBytes(r.data, pattern(g.blockSize, 3, 1));
          assert.equal(await h.write(3, pattern(g.blockSize, 3, 2)), 0);
          assert.equal(await msg('listbadblocks'), '3\n');
          sameBytes((await h.read(3)).data, pattern(g.blockSize, 3, 2));
        });

        it('enabled: a listed block fails reads with EIO, its neighbours do not', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3');
          await msg('enable');
          assert.equal((await h.read(3)).status, EIO);
          for (const b of [2, 4, 5]) {
            const r = await h.read(b);
            assert.equal(r.status, 0, `block ${b}`);
            sameBytes(r.data, pattern(g.blockSize, b, 1));
          }
          assert.equal((await h.read(2, 3)).status, EIO);
          const span = await h.read(4, 2);
          assert.equal(span.status, 0);
          sameBytes(span.data.subarray(0, g.blockSize), pattern(g.blockSize, 4, 1));
          assert.equal(await msg('listbadblocks'), '3\n');
        });

        it('enabled: a write to a listed block with wr_fail_cnt 0 goes through and clears it', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3');
          await msg('enable');
          assert.equal(await h.write(3, pattern(g.blockSize, 3, 5)), 0);
          assert.equal(await msg('queryblock', '3'), 'dust_query_block: block 3 not found in badblocklist');
          assert.equal(await msg('countbadblocks'), 'countbadblocks: 0 badblock(s) found');
          const r = await h.read(3);
          assert.equal(r.status, 0);
          sameBytes(r.data, pattern(g.blockSize, 3, 5));
        });

        it('enabled: wr_fail_cnt writes fail with EIO and write nothing, then one goes through', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '4', '2');
          await msg('enable');
          assert.equal(await h.write(4, pattern(g.blockSize, 4, 2)), EIO);
          assert.equal(await h.write(4, pattern(g.blockSize, 4, 3)), EIO);
          assert.equal(await msg('queryblock', '4'), 'dust_query_block: block 4 found in badblocklist');
          assert.equal((await h.read(4)).status, EIO);
          await msg('disable');
          sameBytes((await h.read(4)).data, pattern(g.blockSize, 4, 1));
          await msg('enable');
          assert.equal(await h.write(4, pattern(g.blockSize, 4, 4)), 0);
          assert.equal(await msg('listbadblocks'), 'No blocks in badblocklist');
          sameBytes((await h.read(4)).data, pattern(g.blockSize, 4, 4));
        });

        it('a write spanning a listed block writes the other blocks and fails', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3', '1');
          await msg('enable');
          assert.equal(await h.write(2, pattern(g.blockSize, 2, 7, 3)), EIO);
          await msg('disable');
          const r = await h.read(2, 3);
          const bs = g.blockSize;
          sameBytes(r.data.subarray(0, bs), pattern(bs, 2, 7, 3).subarray(0, bs));
          sameBytes(r.data.subarray(bs, 2 * bs), pattern(bs, 3, 1));
          sameBytes(r.data.subarray(2 * bs), pattern(bs, 2, 7, 3).subarray(2 * bs));
          assert.equal(await msg('listbadblocks'), '3\n');
        });

        it('disable stops failures without touching the list; quiet changes no reply or I/O', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '5');
          await msg('enable');
          await msg('quiet');
          assert.equal((await h.read(5)).status, EIO);
          assert.equal(await msg('queryblock', '5'), 'dust_query_block: block 5 found in badblocklist');
          assert.equal(await errnoOf(msg('addbadblock', '5')), EINVAL);
          await msg('disable');
          assert.equal((await h.read(5)).status, 0);
          assert.equal(await msg('countbadblocks'), 'countbadblocks: 1 badblock(s) found');
        });

        it('clearbadblocks while enabled makes every block readable again', async () => {
          await fill(1, 6, 1);
          for (const b of ['2', '4', '6']) await msg('addbadblock', b, '9');
          await msg('enable');
          assert.equal((await h.read(1, 6)).status, EIO);
          await msg('clearbadblocks');
          const r = await h.read(1, 6);
          assert.equal(r.status, 0);
          sameBytes(r.data.subarray(g.blockSize, 2 * g.blockSize), pattern(g.blockSize, 2, 1));
        });
      });
    });
  }
}
