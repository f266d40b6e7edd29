import { describe, expect, it } from 'vitest';
import { EINVAL, EIO, OK } from '../../src/block/device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { KernelMessageError, KernelTableError } from '../../src/faults/errors.js';
import { FLAKEY_MAX_CLONE_BYTES, FlakeyDevice, parseFlakeyArgs, REQ_FUA, REQ_OP_WRITE } from '../../src/faults/flakey.js';
import { ManualClock } from '../../src/util/clock.js';
import { Random } from '../../src/util/random.js';

const S = 1e9;

function mem(sectors = 2048): MemoryDevice {
  return new MemoryDevice({ sectors, name: 'mem0' });
}

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 13 + seed * 101 + (i >>> 8)) & 0xff;
  return b;
}

function kernelText(args: string[]): string {
  try {
    parseFlakeyArgs(args);
  } catch (err) {
    if (err instanceof KernelTableError) {
      expect(err.errno).toBe(EINVAL);
      return err.kernelText;
    }
    throw err;
  }
  return 'accepted';
}

const base = ['mem0', '0', '1', '1'];

describe('flakey table line', () => {
  it.each([
    [['mem0', '0', '1'], 'Invalid argument count'],
    [['mem0', 'x', '1', '1'], 'Invalid device sector'],
    [['mem0', '0', 'x', '1'], 'Invalid up interval'],
    [['mem0', '0', '-1', '1'], 'Invalid up interval'],
    [['mem0', '0', '1', 'y'], 'Invalid down interval'],
    [['mem0', '0', '0', '0'], 'Total (up + down) interval is zero'],
    [['mem0', '0', '4294967295', '1'], 'Interval overflow'],
    [[...base, '12', ...Array(12).fill('error_reads')], 'Invalid number of feature args'],
    [[...base, '2', 'drop_writes'], 'Invalid number of feature args'],
    [[...base, 'x'], 'Invalid number of feature args'],
    [[...base, '1', 'bogus'], 'Unrecognised flakey feature requested'],
    [[...base, '2', 'error_reads', 'error_reads'], 'Feature error_reads duplicated'],
    [[...base, '2', 'drop_writes', 'drop_writes'], 'Feature drop_writes duplicated'],
    [[...base, '2', 'error_writes', 'error_writes'], 'Feature error_writes duplicated'],
    [[...base, '2', 'drop_writes', 'error_writes'], 'Feature error_writes conflicts with feature drop_writes'],
    [[...base, '2', 'error_writes', 'drop_writes'], 'Feature drop_writes conflicts with feature error_writes'],
    [[...base, '4', 'corrupt_bio_byte', '1', 'r', '0'], 'Feature corrupt_bio_byte requires 4 parameters'],
    [[...base, '5', 'corrupt_bio_byte', '0', 'r', '0', '0'], 'Invalid corrupt bio byte'],
    [[...base, '5', 'corrupt_bio_byte', '1', 'x', '0', '0'], 'Invalid corrupt bio direction (r or w)'],
    [[...base, '5', 'corrupt_bio_byte', '1', 'r', '256', '0'], 'Invalid corrupt value to write into bio byte (0-255)'],
    [[...base, '5', 'corrupt_bio_byte', '1', 'r', '1', 'z'], 'Invalid corrupt bio flags mask'],
    [[...base, '10', 'corrupt_bio_byte', '1', 'r', '1', '0', 'corrupt_bio_byte', '2', 'w', '1', '0'], 'Feature corrupt_bio_byte duplicated'],
    [[...base, '1', 'random_read_corrupt'], 'Feature random_read_corrupt requires a parameter'],
    [[...base, '1', 'random_write_corrupt'], 'Feature random_write_corrupt requires a parameter'],
    [[...base, '2', 'random_read_corrupt', '1000000001'], 'Invalid random corrupt argument'],
    [[...base, '4', 'random_read_corrupt', '5', 'random_read_corrupt', '6'], 'Feature random_read_corrupt duplicated'],
    [[...base, '4', 'random_write_corrupt', '5', 'random_write_corrupt', '6'], 'Feature random_write_corrupt duplicated'],
    [
      [...base, '6', 'drop_writes', 'corrupt_bio_byte', '1', 'w', '0', '0'],
      'drop_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE flag set',
    ],
    [
      [...base, '3', 'drop_writes', 'random_write_corrupt', '1'],
      'drop_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE flag set',
    ],
    [
      [...base, '3', 'error_writes', 'random_write_corrupt', '5'],
      'error_writes is incompatible with random_write_corrupt or corrupt_bio_byte with the WRITE flag set',
    ],
    [
      [...base, '3', 'error_reads', 'random_read_corrupt', '5'],
      'error_reads is incompatible with random_read_corrupt or corrupt_bio_byte with the READ flag set',
    ],
    [
      [...base, '6', 'error_reads', 'corrupt_bio_byte', '1', 'r', '0', '0'],
      'error_reads is incompatible with random_read_corrupt or corrupt_bio_byte with the READ flag set',
    ],
  ])('%j -> %s', (args, text) => {
    expect(kernelText(args)).toBe(text);
  });

  it.each([
    [[...base], '0 1 1 2 error_reads error_writes'],
    [[...base, '0'], '0 1 1 2 error_reads error_writes'],
    [[...base, '1', 'error_reads'], '0 1 1 1 error_reads'],
    [[...base, '1', 'DROP_WRITES'], '0 1 1 1 drop_writes'],
    [[...base, '2', 'random_read_corrupt', '0'], '0 1 1 2 error_reads error_writes'],
    [[...base, '6', 'error_reads', 'corrupt_bio_byte', '32', 'W', '1', '0'], '0 1 1 6 error_reads corrupt_bio_byte 32 w 1 0'],
    [[...base, '6', 'drop_writes', 'corrupt_bio_byte', '224', 'r', '0', '4096'], '0 1 1 6 drop_writes corrupt_bio_byte 224 r 0 4096'],
    [[...base, '3', 'error_writes', 'random_read_corrupt', '7'], '0 1 1 3 error_writes random_read_corrupt 7'],
    [[...base, '1', 'error_writes', 'ignored', 'words'], '0 1 1 1 error_writes'],
    [['mem0', '0', '4294967294', '1', '0'], '0 4294967294 1 2 error_reads error_writes'],
  ])('accepts %j and prints "%s"', (args, params) => {
    const dev = FlakeyDevice.fromTable(mem(), args, { clock: new ManualClock() });
    expect(dev.tableParams()).toBe(`mem0 ${params}`);
  });

  it('prints table and status lines as dmsetup does, and the table parses back', () => {
    const clock = new ManualClock();
    const dev = FlakeyDevice.fromTableLine(
      mem(),
      '0 1024 flakey mem0 512 3 5 8 error_reads corrupt_bio_byte 32 w 1 0 random_write_corrupt 1000 random_read_corrupt 0',
      { clock },
    );
    expect(dev.sectors).toBe(1024);
    expect(dev.table()).toBe('0 1024 flakey mem0 512 3 5 8 error_reads corrupt_bio_byte 32 w 1 0 random_write_corrupt 1000');
    expect(dev.status()).toBe('0 1024 flakey ');
    expect(FlakeyDevice.fromTableLine(mem(), dev.table(), { clock }).table()).toBe(dev.table());
  });

  it('has no messages (EINVAL)', () => {
    const dev = FlakeyDevice.fromTable(mem(), base, { clock: new ManualClock() });
    const err = (() => {
      try {
        dev.message(['anything']);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(KernelMessageError);
    expect((err as KernelMessageError).errno).toBe(EINVAL);
  });

  it('typed options go through the same checks', () => {
    const clock = new ManualClock();
    expect(new FlakeyDevice(mem(), { upSeconds: 1, downSeconds: 2, dropWrites: true, clock }).table()).toBe('0 2048 flakey mem0 0 1 2 1 drop_writes');
    expect(() => new FlakeyDevice(mem(), { upSeconds: 1, downSeconds: 2, dropWrites: true, errorWrites: true, clock })).toThrow(
      'Feature error_writes conflicts with feature drop_writes',
    );
    expect(() => new FlakeyDevice(mem(), { upSeconds: 0, downSeconds: 0, clock })).toThrow('Total (up + down) interval is zero');
    expect(() => new FlakeyDevice(mem(), { upSeconds: 1, downSeconds: 1, offset: 4000, clock })).toThrow('Device too small for target');
  });
});

describe('flakey intervals (ManualClock)', () => {
  it('is up for <up> seconds, then down for <down> seconds, counted from creation', () => {
    const clock = new ManualClock(100 * S);
    const dev = new FlakeyDevice(mem(), { upSeconds: 2, downSeconds: 3, clock });
    const seen: string[] = [];
    for (let t = 0; t < 11; t += 0.5) {
      clock.set(100 * S + t * S);
      seen.push(dev.isDown() ? 'D' : 'u');
    }
    expect(seen.join('')).toBe('uuuuDDDDDDuuuuDDDDDDuu');
    clock.set(100 * S + 2 * S - 1);
    expect(dev.isDown()).toBe(false);
    clock.set(100 * S + 2 * S);
    expect(dev.isDown()).toBe(true);
  });

  it('up 0: always down; down 0: never down', () => {
    const clock = new ManualClock();
    const always = new FlakeyDevice(mem(), { upSeconds: 0, downSeconds: 5, clock });
    const never = new FlakeyDevice(mem(), { upSeconds: 5, downSeconds: 0, clock });
    for (let t = 0; t < 20; t++) {
      clock.set(t * S);
      expect(always.isDown()).toBe(true);
      expect(never.isDown()).toBe(false);
    }
  });
});

/** Builds a device that is up in [0,1) s and down in [1,2) s. */
function rig(features: string[], opts: { seed?: number; sectors?: number } = {}) {
  const inner = mem(opts.sectors ?? 2048);
  const clock = new ManualClock();
  const dev = FlakeyDevice.fromTable(inner, ['mem0', '0', '1', '1', ...features], { clock, random: new Random(opts.seed ?? 7) });
  return {
    inner,
    dev,
    up: () => clock.set(0.5 * S),
    down: () => clock.set(1.5 * S),
    innerBytes: (sector: number, len: number) => {
      const b = new Uint8Array(len);
      inner.read(sector, b);
      return b;
    },
  };
}

describe('flakey features while down', () => {
  it('no feature: every I/O fails while down; all of it works while up', () => {
    const r = rig([]);
    const data = pattern(4096, 1);
    r.down();
    expect(r.dev.write(8, data)).toBe(EIO);
    expect(r.dev.read(8, new Uint8Array(4096))).toBe(EIO);
    expect(r.dev.flush()).toBe(EIO);
    expect(r.dev.discard(8, 8)).toBe(EIO);
    expect(r.innerBytes(8, 4096).every((b) => b === 0)).toBe(true);
    r.up();
    expect(r.dev.write(8, data)).toBe(OK);
    const out = new Uint8Array(4096);
    expect(r.dev.read(8, out)).toBe(OK);
    expect(out).toEqual(data);
    expect(r.dev.flush()).toBe(OK);
    expect(r.dev.discard(8, 8)).toBe(OK);
  });

  it('error_reads: reads fail, writes go through', () => {
    const r = rig(['1', 'error_reads']);
    r.down();
    expect(r.dev.write(0, pattern(1024, 2))).toBe(OK);
    expect(r.dev.read(0, new Uint8Array(1024))).toBe(EIO);
    expect(r.dev.flush()).toBe(OK);
    expect(r.innerBytes(0, 1024)).toEqual(pattern(1024, 2));
  });

  it('drop_writes: writes, flushes and discards report success and do nothing; reads work', () => {
    const r = rig(['1', 'drop_writes']);
    r.up();
    r.dev.write(0, pattern(2048, 3));
    r.down();
    expect(r.dev.write(0, pattern(2048, 4))).toBe(OK);
    expect(r.dev.discard(0, 4)).toBe(OK);
    expect(r.dev.flush()).toBe(OK);
    const out = new Uint8Array(2048);
    expect(r.dev.read(0, out)).toBe(OK);
    expect(out).toEqual(pattern(2048, 3));
  });

  it('error_writes: writes, flushes and discards fail and change nothing; reads work', () => {
    const r = rig(['1', 'error_writes']);
    r.up();
    r.dev.write(0, pattern(2048, 3));
    r.down();
    expect(r.dev.write(0, pattern(2048, 4))).toBe(EIO);
    expect(r.dev.discard(0, 4)).toBe(EIO);
    expect(r.dev.flush()).toBe(EIO);
    const out = new Uint8Array(2048);
    expect(r.dev.read(0, out)).toBe(OK);
    expect(out).toEqual(pattern(2048, 3));
  });

  it('corrupt_bio_byte r: byte N of each read gets the value, the device keeps its data', () => {
    const r = rig(['5', 'corrupt_bio_byte', '32', 'r', '1', '0']);
    const data = pattern(4096, 5);
    data[31] = 0x77;
    r.up();
    r.dev.write(16, data);
    r.down();
    const out = new Uint8Array(4096);
    expect(r.dev.read(16, out)).toBe(OK);
    const expected = data.slice();
    expected[31] = 1;
    expect(out).toEqual(expected);
    expect(r.innerBytes(16, 4096)).toEqual(data);
    // writes while down are not touched by a read-direction corruption
    expect(r.dev.write(24, data)).toBe(OK);
    expect(r.innerBytes(24, 4096)).toEqual(data);
    r.up();
    expect(r.dev.read(16, out)).toBe(OK);
    expect(out).toEqual(data);
  });

  it('corrupt_bio_byte counts from the start of each request; past its end nothing changes', () => {
    const r = rig(['5', 'corrupt_bio_byte', '600', 'r', '0', '0']);
    r.up();
    r.dev.write(0, pattern(4096, 6));
    r.down();
    const one = new Uint8Array(512);
    r.dev.read(1, one);
    expect(one).toEqual(pattern(4096, 6).subarray(512, 1024));
    const two = new Uint8Array(1024);
    r.dev.read(1, two);
    expect(two[599]).toBe(0);
    expect(two.subarray(0, 599)).toEqual(pattern(4096, 6).subarray(512, 1111));
  });

  it('corrupt_bio_byte w: the stored copy is corrupted, the caller buffer is not', () => {
    const r = rig(['5', 'corrupt_bio_byte', '1', 'w', '255', '0']);
    r.down();
    const data = pattern(1024, 8);
    data[0] = 0;
    const copy = data.slice();
    expect(r.dev.write(40, data)).toBe(OK);
    expect(data).toEqual(copy);
    const stored = r.innerBytes(40, 1024);
    expect(stored[0]).toBe(255);
    expect(stored.subarray(1)).toEqual(copy.subarray(1));
    const out = new Uint8Array(1024);
    r.dev.read(40, out);
    expect(out[0]).toBe(255);
  });

  it('corrupt_bio_byte flags: only requests whose op flags include all the mask bits', () => {
    const r = rig(['5', 'corrupt_bio_byte', '2', 'w', '9', String(REQ_FUA)]);
    r.down();
    r.dev.write(0, new Uint8Array(512));
    expect(r.innerBytes(0, 512)[1]).toBe(0);
    r.dev.write(0, new Uint8Array(512), { fua: true });
    expect(r.innerBytes(0, 512)[1]).toBe(9);
    // mask REQ_OP_WRITE never matches a read
    const rr = rig(['5', 'corrupt_bio_byte', '2', 'r', '9', String(REQ_OP_WRITE)]);
    rr.down();
    const out = new Uint8Array(512);
    rr.dev.read(0, out);
    expect(out[1]).toBe(0);
  });

  it('a corrupted write is cloned in pieces of at most 4 MiB, each corrupted at byte N', () => {
    const r = rig(['5', 'corrupt_bio_byte', '10', 'w', '170', '0'], { sectors: 32768 });
    r.down();
    const len = 2 * FLAKEY_MAX_CLONE_BYTES + 4096;
    expect(r.dev.write(0, new Uint8Array(len))).toBe(OK);
    const stored = r.innerBytes(0, len);
    const hits: number[] = [];
    stored.forEach((b, i) => {
      if (b !== 0) hits.push(i);
    });
    expect(hits).toEqual([9, FLAKEY_MAX_CLONE_BYTES + 9, 2 * FLAKEY_MAX_CLONE_BYTES + 9]);
  });
});

describe('flakey random corruption', () => {
  function countCorrupted(p: number, direction: 'read' | 'write', n: number, seed: number): { corrupted: number; positions: number[] } {
    const feature = direction === 'read' ? 'random_read_corrupt' : 'random_write_corrupt';
    const r = rig(['2', feature, String(p)], { seed });
    const data = pattern(4096, 9);
    r.up();
    r.dev.write(0, data);
    r.down();
    let corrupted = 0;
    const positions: number[] = [];
    const out = new Uint8Array(4096);
    for (let i = 0; i < n; i++) {
      if (direction === 'read') r.dev.read(0, out);
      else {
        r.dev.write(0, data);
        r.inner.read(0, out);
      }
      let diff = 0;
      for (let j = 0; j < 4096; j++) {
        if (out[j] !== data[j]) {
          diff++;
          positions.push(j);
        }
      }
      if (diff > 1) throw new Error(`request ${i}: ${diff} bytes differ, flakey corrupts at most one`);
      if (diff) corrupted++;
      if (direction === 'write') r.inner.write(0, data);
    }
    return { corrupted, positions };
  }

  it('random_read_corrupt 250000000 corrupts one byte in about 25% of reads', () => {
    const n = 4000;
    const { corrupted, positions } = countCorrupted(250_000_000, 'read', n, 42);
    // a corrupted read shows no difference when the random value equals the old byte (1/256)
    const expected = n * 0.25 * (255 / 256);
    const sigma = Math.sqrt(n * 0.25 * 0.75);
    expect(Math.abs(corrupted - expected)).toBeLessThan(4 * sigma);
    const firstHalf = positions.filter((p) => p < 2048).length;
    expect(Math.abs(firstHalf - positions.length / 2)).toBeLessThan(4 * Math.sqrt(positions.length / 4));
  });

  it('random_write_corrupt 500000000 corrupts the stored data of about half the writes', () => {
    const n = 2000;
    const { corrupted } = countCorrupted(500_000_000, 'write', n, 3);
    const expected = n * 0.5 * (255 / 256);
    expect(Math.abs(corrupted - expected)).toBeLessThan(4 * Math.sqrt(n * 0.25));
  });

  it('p = 1000000000 corrupts every request, tiny p almost none; the same seed repeats exactly', () => {
    expect(countCorrupted(1_000_000_000, 'read', 300, 1).corrupted).toBeGreaterThan(290);
    expect(countCorrupted(1000, 'read', 2000, 1).corrupted).toBeLessThan(3);
    expect(countCorrupted(300_000_000, 'read', 500, 11)).toEqual(countCorrupted(300_000_000, 'read', 500, 11));
    expect(countCorrupted(300_000_000, 'read', 500, 11)).not.toEqual(countCorrupted(300_000_000, 'read', 500, 12));
  });

  it('never corrupts while up', () => {
    const r = rig(['4', 'random_read_corrupt', '1000000000', 'random_write_corrupt', '1000000000']);
    r.up();
    const data = pattern(4096, 4);
    r.dev.write(0, data);
    const out = new Uint8Array(4096);
    let differing = 0;
    for (let i = 0; i < 50; i++) {
      r.dev.read(0, out);
      if (Buffer.compare(out, data) !== 0) differing++;
    }
    expect(differing).toBe(0);
    expect(r.innerBytes(0, 4096)).toEqual(data);
  });
});
