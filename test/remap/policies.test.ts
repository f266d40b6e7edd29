import { describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { type BlockDevice, OK } from '../../src/block/device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';

const SECTORS = 4096;
const SPARE = 4096;

function content(tag: number): Uint8Array {
  const b = new Uint8Array(512);
  for (let i = 0; i < 512; i++) b[i] = (tag * 7 + i * 13) & 0xff;
  return b;
}

type Policy = 'safe' | 'dm-remap-v4';

function build(policy: Policy): { target: BlockDevice; dust: DustDevice } {
  const dust = new DustDevice(new MemoryDevice({ sectors: SECTORS, name: 'main' }));
  dust.enable();
  const spare = new MemoryDevice({ sectors: SPARE, name: 'spare' });
  const target = policy === 'safe' ? new SafeRemapTarget({ main: dust, spare, reservedSectors: 64 }) : new DmRemapV4Target({ main: dust, spare });
  return { target, dust };
}

/**
 * One scenario, run under a policy. Returns the sectors whose read did not
 * return the last acknowledged data and did not report an error either
 * (silent loss), and those that reported an error although acknowledged data
 * existed.
 */
function run(policy: Policy, opts: { reloadBeforeCheck?: boolean } = {}): { silent: number[]; errors: number[] } {
  const built = build(policy);
  const dust = built.dust;
  let target = built.target;
  const acked = new Map<number, number>();
  const write = (s: number, tag: number, n = 1): void => {
    const buf = new Uint8Array(n * 512);
    for (let i = 0; i < n; i++) buf.set(content(tag + i), i * 512);
    if (target.write(s, buf) === OK) for (let i = 0; i < n; i++) acked.set(s + i, tag + i);
  };
  for (let s = 100; s < 140; s++) write(s, s);
  // case 1: a write fails on main (the caller sees the error), then the sector is read
  dust.addBadBlock(110, 1);
  write(110, 9000);
  // case 2: acknowledged data becomes unreadable (a latent error), then it is read twice
  dust.addBadBlock(120);
  const scratch = new Uint8Array(512);
  target.read(120, scratch);
  // case 3: a request that starts before a remapped sector and covers it
  write(108, 7000, 4); // covers 110
  if (opts.reloadBeforeCheck && target instanceof DmRemapV4Target) {
    // the table is loaded again on the same devices: the module restores its persisted entries, as active
    const again = new DmRemapV4Target({ main: target.main, spare: target.spare });
    again.restore(target.entries);
    target = again;
  }
  const silent: number[] = [];
  const errors: number[] = [];
  for (const [s, tag] of acked) {
    const out = new Uint8Array(512);
    const rc = target.read(s, out);
    if (rc !== OK) errors.push(s);
    else if (!out.every((b, i) => b === content(tag)[i])) silent.push(s);
  }
  return { silent: silent.sort((a, b) => a - b), errors: errors.sort((a, b) => a - b) };
}

describe('the two policies on one scenario', () => {
  it('safe loses nothing silently; the only error is the sector whose medium lost its data', () => {
    const r = run('safe');
    expect(r.silent).toEqual([]);
    expect(r.errors).toEqual([120]); // unreadable and never rewritten: reported, not hidden
  });

  it('dm-remap-v4 never uses the remaps it makes while loaded: nothing lost yet, the error stays', () => {
    const r = run('dm-remap-v4');
    expect(r.silent).toEqual([]);
    expect(r.errors).toEqual([120]);
  });

  it('dm-remap-v4 after the table is loaded again: the restored remaps lose the data', () => {
    const r = run('dm-remap-v4', { reloadBeforeCheck: true });
    // 110: its failed write remapped it to spare sector 0 (nothing copied); the later write of 108..111
    //      went to main, but sector 110 now reads the spare;
    // 120: the read error remapped it to spare sector 1 without copying: zeroes, and no error.
    expect(r.silent).toEqual([110, 120]);
    expect(r.errors).toEqual([]);
  });
});
