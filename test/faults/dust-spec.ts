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
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

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

export function defineDustSpec(name: string, makeHarness: MakeDustHarness, geometries: readonly DustGeometry[] = DEFAULT_DUST_GEOMETRIES): void {
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
        for (let b = first; b <= last; b++) expect(await h.write(b, pattern(g.blockSize, b, tag))).toBe(0);
      };

      describe('control', () => {
        it('starts disabled and verbose; the table line holds offset and block size', async () => {
          const w = await words();
          expect(w.slice(1)).toEqual(['bypass', 'verbose']);
          const t = (await h.table()).trim().split(/\s+/);
          expect(t.slice(1)).toEqual(['0', String(g.blockSize)]);
        });

        it('enable, disable and quiet reply nothing and show in the status line', async () => {
          expect(await msg('enable')).toBe('');
          expect((await words()).slice(1)).toEqual(['fail_read_on_bad_block', 'verbose']);
          expect(await msg('quiet')).toBe('');
          expect((await words()).slice(1)).toEqual(['fail_read_on_bad_block', 'quiet']);
          expect(await msg('disable')).toBe('');
          expect((await words()).slice(1)).toEqual(['bypass', 'quiet']);
          expect(await msg('quiet')).toBe('');
          expect((await words()).slice(1)).toEqual(['bypass', 'verbose']);
          expect(await msg('enable')).toBe('');
          expect(await msg('enable')).toBe('');
          expect((await words())[1]).toBe('fail_read_on_bad_block');
        });

        it('an empty list: count, list, query and clear replies', async () => {
          expect(await msg('countbadblocks')).toBe('countbadblocks: 0 badblock(s) found');
          expect(await msg('listbadblocks')).toBe('No blocks in badblocklist');
          expect(await msg('queryblock', '3')).toBe('dust_query_block: block 3 not found in badblocklist');
          expect(await msg('clearbadblocks')).toBe('dust_clear_badblocks: no badblocks found');
        });

        it('addbadblock replies nothing; the list comes back in ascending order', async () => {
          expect(await msg('addbadblock', '7')).toBe('');
          expect(await msg('addbadblock', '2')).toBe('');
          expect(await msg('addbadblock', '5', '3')).toBe('');
          expect(await msg('countbadblocks')).toBe('countbadblocks: 3 badblock(s) found');
          expect(await msg('listbadblocks')).toBe('2\n5\n7\n');
          expect(await msg('queryblock', '5')).toBe('dust_query_block: block 5 found in badblocklist');
          expect(await msg('queryblock', '6')).toBe('dust_query_block: block 6 not found in badblocklist');
        });

        it('adding a listed block or removing an unlisted one fails with EINVAL and changes nothing', async () => {
          await msg('addbadblock', '4');
          expect(await errnoOf(msg('addbadblock', '4'))).toBe(EINVAL);
          expect(await errnoOf(msg('addbadblock', '4', '9'))).toBe(EINVAL);
          expect(await errnoOf(msg('removebadblock', '8'))).toBe(EINVAL);
          expect(await msg('listbadblocks')).toBe('4\n');
        });

        it('removebadblock and clearbadblocks', async () => {
          for (const b of ['1', '2', '3']) await msg('addbadblock', b);
          expect(await msg('removebadblock', '2')).toBe('');
          expect(await msg('listbadblocks')).toBe('1\n3\n');
          expect(await msg('countbadblocks')).toBe('countbadblocks: 2 badblock(s) found');
          expect(await msg('clearbadblocks')).toBe('dust_clear_badblocks: badblocks cleared');
          expect(await msg('countbadblocks')).toBe('countbadblocks: 0 badblock(s) found');
          expect(await msg('clearbadblocks')).toBe('dust_clear_badblocks: no badblocks found');
        });

        it('block numbers are unsigned decimal and may go up to the device size in blocks, inclusive', async () => {
          for (const bad of ['abc', '-1', '+5', '12x', '0x10', '1.5']) {
            expect(await errnoOf(msg('addbadblock', bad)), `addbadblock '${bad}'`).toBe(EINVAL);
            expect(await errnoOf(msg('queryblock', bad)), `queryblock '${bad}'`).toBe(EINVAL);
          }
          expect(await msg('addbadblock', '007')).toBe('');
          expect(await msg('queryblock', '7')).toBe('dust_query_block: block 7 found in badblocklist');
          // The kernel compares block > size_in_blocks, so the block just past the end is accepted.
          expect(await msg('addbadblock', String(g.blocks))).toBe('');
          expect(await errnoOf(msg('addbadblock', String(g.blocks + 1)))).toBe(EINVAL);
          expect(await errnoOf(msg('queryblock', String(g.blocks + 1)))).toBe(EINVAL);
          expect(await errnoOf(msg('removebadblock', String(g.blocks + 1)))).toBe(EINVAL);
          expect(await errnoOf(msg('addbadblock', '18446744073709551615'))).toBe(EINVAL);
          expect(await msg('listbadblocks')).toBe(`7\n${g.blocks}\n`);
        });

        it('wr_fail_cnt is 0..255', async () => {
          expect(await msg('addbadblock', '4', '255')).toBe('');
          expect(await msg('addbadblock', '5', '0')).toBe('');
          for (const bad of ['256', '-1', 'x', '1x']) {
            expect(await errnoOf(msg('addbadblock', '6', bad)), `wr_fail_cnt '${bad}'`).toBe(EINVAL);
          }
          expect(await errnoOf(msg('addbadblock', String(g.blocks + 1), '1'))).toBe(EINVAL);
          expect(await msg('listbadblocks')).toBe('4\n5\n');
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
          for (const c of cases) expect(await errnoOf(msg(...c)), c.join(' ')).toBe(EINVAL);
          expect(await msg('countbadblocks')).toBe('countbadblocks: 0 badblock(s) found');
          expect((await words()).slice(1)).toEqual(['bypass', 'verbose']);
        });

        it('message names are case-insensitive', async () => {
          expect(await msg('AddBadBlock', '3')).toBe('');
          expect(await msg('QUERYBLOCK', '3')).toBe('dust_query_block: block 3 found in badblocklist');
          expect(await msg('CountBadBlocks')).toBe('countbadblocks: 1 badblock(s) found');
          expect(await msg('Enable')).toBe('');
          expect((await words())[1]).toBe('fail_read_on_bad_block');
        });
      });

      describe('I/O', () => {
        it('while disabled, listed blocks read and write normally and stay listed', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3');
          const r = await h.read(3);
          expect(r.status).toBe(0);
          expect(r.data).toEqual(pattern(g.blockSize, 3, 1));
          expect(await h.write(3, pattern(g.blockSize, 3, 2))).toBe(0);
          expect(await msg('listbadblocks')).toBe('3\n');
          expect((await h.read(3)).data).toEqual(pattern(g.blockSize, 3, 2));
        });

        it('enabled: a listed block fails reads with EIO, its neighbours do not', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3');
          await msg('enable');
          expect((await h.read(3)).status).toBe(EIO);
          for (const b of [2, 4, 5]) {
            const r = await h.read(b);
            expect(r.status, `block ${b}`).toBe(0);
            expect(r.data).toEqual(pattern(g.blockSize, b, 1));
          }
          expect((await h.read(2, 3)).status).toBe(EIO);
          const span = await h.read(4, 2);
          expect(span.status).toBe(0);
          expect(span.data.subarray(0, g.blockSize)).toEqual(pattern(g.blockSize, 4, 1));
          expect(await msg('listbadblocks')).toBe('3\n');
        });

        it('enabled: a write to a listed block with wr_fail_cnt 0 goes through and clears it', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3');
          await msg('enable');
          expect(await h.write(3, pattern(g.blockSize, 3, 5))).toBe(0);
          expect(await msg('queryblock', '3')).toBe('dust_query_block: block 3 not found in badblocklist');
          expect(await msg('countbadblocks')).toBe('countbadblocks: 0 badblock(s) found');
          const r = await h.read(3);
          expect(r.status).toBe(0);
          expect(r.data).toEqual(pattern(g.blockSize, 3, 5));
        });

        it('enabled: wr_fail_cnt writes fail with EIO and write nothing, then one goes through', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '4', '2');
          await msg('enable');
          expect(await h.write(4, pattern(g.blockSize, 4, 2))).toBe(EIO);
          expect(await h.write(4, pattern(g.blockSize, 4, 3))).toBe(EIO);
          expect(await msg('queryblock', '4')).toBe('dust_query_block: block 4 found in badblocklist');
          expect((await h.read(4)).status).toBe(EIO);
          await msg('disable');
          expect((await h.read(4)).data).toEqual(pattern(g.blockSize, 4, 1));
          await msg('enable');
          expect(await h.write(4, pattern(g.blockSize, 4, 4))).toBe(0);
          expect(await msg('listbadblocks')).toBe('No blocks in badblocklist');
          expect((await h.read(4)).data).toEqual(pattern(g.blockSize, 4, 4));
        });

        it('a write spanning a listed block writes the other blocks and fails', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '3', '1');
          await msg('enable');
          expect(await h.write(2, pattern(g.blockSize, 2, 7, 3))).toBe(EIO);
          await msg('disable');
          const r = await h.read(2, 3);
          const bs = g.blockSize;
          expect(r.data.subarray(0, bs)).toEqual(pattern(bs, 2, 7, 3).subarray(0, bs));
          expect(r.data.subarray(bs, 2 * bs)).toEqual(pattern(bs, 3, 1));
          expect(r.data.subarray(2 * bs)).toEqual(pattern(bs, 2, 7, 3).subarray(2 * bs));
          expect(await msg('listbadblocks')).toBe('3\n');
        });

        it('disable stops failures without touching the list; quiet changes no reply or I/O', async () => {
          await fill(1, 6, 1);
          await msg('addbadblock', '5');
          await msg('enable');
          await msg('quiet');
          expect((await h.read(5)).status).toBe(EIO);
          expect(await msg('queryblock', '5')).toBe('dust_query_block: block 5 found in badblocklist');
          expect(await errnoOf(msg('addbadblock', '5'))).toBe(EINVAL);
          await msg('disable');
          expect((await h.read(5)).status).toBe(0);
          expect(await msg('countbadblocks')).toBe('countbadblocks: 1 badblock(s) found');
        });

        it('clearbadblocks while enabled makes every block readable again', async () => {
          await fill(1, 6, 1);
          for (const b of ['2', '4', '6']) await msg('addbadblock', b, '9');
          await msg('enable');
          expect((await h.read(1, 6)).status).toBe(EIO);
          await msg('clearbadblocks');
          const r = await h.read(1, 6);
          expect(r.status).toBe(0);
          expect(r.data.subarray(g.blockSize, 2 * g.blockSize)).toEqual(pattern(g.blockSize, 2, 1));
        });
      });
    });
  }
}
