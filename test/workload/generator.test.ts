import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WorkloadSpecError } from '../../src/workload/errors.js';
import {
  createGenerator,
  FIO_DEFAULT_SEED,
  jobSeed,
  newIoRequest,
  OP_READ,
  OP_WRITE,
  resolveRegion,
  type IoGenerator,
  type IoRequest,
} from '../../src/workload/generator.js';
import { jobFromRecord, jobsFromArgv, type OptionRecord } from '../../src/workload/job.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function gen(record: OptionRecord, deviceBytes = GiB, extra: { clone?: number; seed?: number; alignBytes?: number } = {}): IoGenerator {
  return createGenerator(jobFromRecord(record), { deviceBytes, ...extra });
}

/** All I/Os until the job is done (or `max`). */
function drain(g: IoGenerator, max = 1e7): IoRequest[] {
  const out: IoRequest[] = [];
  const r = newIoRequest();
  while (out.length < max && g.next(r)) out.push({ ...r });
  return out;
}

describe('sequential jobs', () => {
  it('walk the region block by block and stop at size', () => {
    const ios = drain(gen({ rw: 'read', bs: '4k', size: '64k' }));
    expect(ios.map((r) => r.offsetBytes)).toEqual(Array.from({ length: 16 }, (_, i) => i * 4096));
    expect(ios.every((r) => r.op === 'read' && r.lengthBytes === 4096)).toBe(true);
  });

  it('start at offset, and wrap when io_size is larger than size', () => {
    const g = gen({ rw: 'write', bs: '16k', offset: '1m', size: '64k', io_size: '160k' });
    const ios = drain(g);
    expect(ios.map((r) => (r.offsetBytes - MiB) / 16384)).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
    expect(g.passes).toBe(2);
    expect(g.bytesIssued).toBe(160 * 1024);
  });

  it('leave holes with rw=write:4k and keep one cursor per direction for rw', () => {
    expect(drain(gen({ rw: 'write:4k', bs: '4k', size: '32k', io_size: '16k' })).map((r) => r.offsetBytes)).toEqual([0, 8192, 16384, 24576]);
    const mixed = drain(gen({ rw: 'rw', bs: '4k', size: '1m', rwmixread: 50 }));
    for (const op of ['read', 'write']) {
      const offs = mixed.filter((r) => r.op === op).map((r) => r.offsetBytes);
      expect(offs).toEqual(offs.map((_, i) => i * 4096));
    }
  });

  it('issue bsrange sizes as multiples of the minimum and never cross the region end', () => {
    const ios = drain(gen({ rw: 'read', bsrange: '4k-16k', size: '1m', io_size: '8m' }));
    let expected = 0;
    for (const r of ios) {
      expect(r.lengthBytes % 4096).toBe(0);
      expect(r.lengthBytes).toBeGreaterThanOrEqual(4096);
      expect(r.lengthBytes).toBeLessThanOrEqual(16384);
      if (r.offsetBytes === 0) expected = 0;
      expect(r.offsetBytes).toBe(expected);
      expect(r.offsetBytes + r.lengthBytes).toBeLessThanOrEqual(MiB);
      expected += r.lengthBytes;
    }
    // fio's formula makes the four multiples equally likely here
    const counts = [4096, 8192, 12288, 16384].map((s) => ios.filter((r) => r.lengthBytes === s).length / ios.length);
    for (const c of counts) expect(c).toBeGreaterThan(0.2);
  });
});

describe('random jobs', () => {
  it('touch each block exactly once per pass with the random map', () => {
    const ios = drain(gen({ rw: 'randread', bs: '4k', size: '256k' }));
    expect(ios).toHaveLength(64);
    expect(new Set(ios.map((r) => r.offsetBytes)).size).toBe(64);
    expect(ios.every((r) => r.offsetBytes % 4096 === 0 && r.offsetBytes < 256 * 1024)).toBe(true);
  });

  it('share one map between reads and writes, as fio does', () => {
    const ios = drain(gen({ rw: 'randrw', bs: '4k', size: '1m' }));
    expect(ios).toHaveLength(256);
    expect(new Set(ios.map((r) => r.offsetBytes)).size).toBe(256);
    expect(ios.some((r) => r.op === 'read') && ios.some((r) => r.op === 'write')).toBe(true);
  });

  it('start a new pass when the map is full (time_based, or io_size > size)', () => {
    const g = gen({ rw: 'randwrite', bs: '4k', size: '256k', time_based: true, runtime: 1 });
    const r = newIoRequest();
    for (let pass = 0; pass < 4; pass++) {
      const seen = new Set<number>();
      for (let i = 0; i < 64; i++) {
        expect(g.next(r)).toBe(true);
        seen.add(r.offsetBytes);
      }
      expect(seen.size).toBe(64);
    }
    expect(g.passes).toBe(3);
    const twice = drain(gen({ rw: 'randread', bs: '8k', size: '512k', io_size: '1m' }));
    const counts = new Map<number, number>();
    for (const io of twice) counts.set(io.offsetBytes, (counts.get(io.offsetBytes) ?? 0) + 1);
    expect([...counts.values()].every((c) => c === 2) && counts.size === 64).toBe(true);
  });

  it('cut a long I/O short at a block already done in this pass', () => {
    const ios = drain(gen({ rw: 'randread', bssplit: '4k/50:64k/50', size: '1m' }));
    const units = new Uint8Array(256);
    for (const r of ios) {
      for (let u = r.offsetBytes / 4096; u < (r.offsetBytes + r.lengthBytes) / 4096; u++) units[u]!++;
    }
    expect(units.every((c) => c === 1)).toBe(true);
  });

  it('repeat blocks with norandommap', () => {
    const ios = drain(gen({ rw: 'randread', bs: '4k', size: '16m', norandommap: true }));
    expect(ios).toHaveLength(4096);
    // 4096 uniform draws over 4096 blocks hit about 1 - 1/e of them
    expect(new Set(ios.map((r) => r.offsetBytes)).size / 4096).toBeCloseTo(1 - Math.exp(-1), 1);
  });

  it('take a new random offset every N I/Os with rw=randread:N', () => {
    const ios = drain(gen({ rw: 'randread:4', bs: '4k', size: '64m', io_size: '400k' }));
    for (let i = 0; i < ios.length; i += 4) {
      for (let j = 1; j < 4 && i + j < ios.length; j++) expect(ios[i + j]!.offsetBytes).toBe(ios[i]!.offsetBytes + j * 4096);
    }
    const starts = new Set(ios.filter((_, i) => i % 4 === 0).map((r) => r.offsetBytes));
    expect(starts.size).toBeGreaterThan(20);
  });

  it('align random offsets to blockalign', () => {
    const ios = drain(gen({ rw: 'randread', bs: '8k', ba: '2k', size: '4m', io_size: '2m' }));
    expect(ios.every((r) => r.offsetBytes % 2048 === 0)).toBe(true);
    expect(ios.some((r) => r.offsetBytes % 8192 !== 0)).toBe(true);
  });

  it('issue trims for randtrim', () => {
    const ios = drain(gen({ rw: 'randtrim', bs: '64k', size: '1m' }));
    expect(ios.map((r) => r.op)).toEqual(Array(16).fill('trim'));
  });
});

describe('proportions for a fixed seed', () => {
  const N = 100_000;
  const within = (p: number, expected: number) => expect(Math.abs(p - expected)).toBeLessThan(4 * Math.sqrt((expected * (1 - expected)) / N));

  it('bssplit', () => {
    const ios = drain(gen({ rw: 'randread', bssplit: '4k/20:16k/30:64k/50', norandommap: true, time_based: true, runtime: 1 }), N);
    within(ios.filter((r) => r.lengthBytes === 4096).length / N, 0.2);
    within(ios.filter((r) => r.lengthBytes === 16384).length / N, 0.3);
    within(ios.filter((r) => r.lengthBytes === 65536).length / N, 0.5);
  });

  it('rwmixread', () => {
    const ios = drain(gen({ rw: 'randrw', bs: '4k', rwmixread: 70, time_based: true, runtime: 1 }), N);
    within(ios.filter((r) => r.op === 'read').length / N, 0.7);
    const seq = drain(gen({ rw: 'rw', bs: '4k', rwmixwrite: 10, time_based: true, runtime: 1 }), N);
    within(seq.filter((r) => r.op === 'write').length / N, 0.1);
  });

  it('zipf skew through the generator', () => {
    const ios = drain(gen({ rw: 'randread', bs: '4k', size: '64m', io_size: '1g', random_distribution: 'zipf:1.2' }));
    const counts = new Map<number, number>();
    for (const r of ios) counts.set(r.offsetBytes, (counts.get(r.offsetBytes) ?? 0) + 1);
    const top = [...counts.values()].sort((a, b) => b - a);
    // fio 3.33 sends 78.9% of the I/O to the top 1% of blocks here (see distribution.test.ts)
    expect(top.slice(0, 163).reduce((s, c) => s + c, 0) / ios.length).toBeCloseTo(0.789, 1);
  });
});

describe('reproducibility', () => {
  const first = (g: IoGenerator, n = 2000) => drain(g, n).map((r) => `${r.op}@${r.offsetBytes}+${r.lengthBytes}`);
  const rec: OptionRecord = { rw: 'randrw', bssplit: '4k/50:8k/:64k/', size: '64m', time_based: true, runtime: 1 };

  it('repeats the stream for the same seed and varies it per clone and randseed', () => {
    expect(first(gen(rec))).toEqual(first(gen(rec)));
    expect(first(gen(rec, GiB, { clone: 1 }))).not.toEqual(first(gen(rec)));
    expect(first(gen({ ...rec, randseed: 42 }))).not.toEqual(first(gen(rec)));
    expect(first(gen({ ...rec, randseed: 42 }))).toEqual(first(gen({ ...rec, randseed: 42 })));
    expect(gen(rec).seed).toBe(jobSeed(jobFromRecord(rec)));
    expect(jobSeed(jobFromRecord(rec))).toBe(FIO_DEFAULT_SEED);
  });

  it('draws a fresh seed with randrepeat=0 and reports it so the run can be repeated', () => {
    const a = gen({ ...rec, randrepeat: 0 });
    const b = gen({ ...rec, randrepeat: 0 });
    expect(first(a, 50)).not.toEqual(first(b, 50));
    expect(first(gen({ ...rec, randrepeat: 0 }, GiB, { seed: a.seed }))).toEqual(first(gen(rec, GiB, { seed: a.seed })));
  });

  it('fill() gives the same stream as next()', () => {
    const g = gen(rec);
    const ops = new Uint8Array(1000);
    const offsets = new Float64Array(1000);
    const lengths = new Uint32Array(1000);
    expect(g.fill(ops, offsets, lengths)).toBe(1000);
    const ref = drain(gen(rec), 1000);
    for (let i = 0; i < 1000; i++) {
      expect(ops[i]).toBe(ref[i]!.op === 'read' ? OP_READ : OP_WRITE);
      expect(offsets[i]).toBe(ref[i]!.offsetBytes);
      expect(lengths[i]).toBe(ref[i]!.lengthBytes);
    }
    const small = gen({ rw: 'read', bs: '4k', size: '16k' });
    expect(small.fill(ops, offsets, lengths)).toBe(4);
  });
});

describe('regions and errors', () => {
  it('resolves percentages against the device, as fio does', () => {
    const spec = jobFromRecord({ rw: 'randread', bs: '4k', offset: '10%', size: '50%', io_size: '50%' });
    // 10% of 1000 MiB is 100 MiB, already 4 KiB-aligned; 50% is capped at what is left
    expect(resolveRegion(spec, 1000 * MiB)).toEqual({ startBytes: 100 * MiB, sizeBytes: 500 * MiB, ioLimitBytes: 250 * MiB });
    expect(resolveRegion(jobFromRecord({ bs: '4k', offset: '60%', size: '50%' }), 1000 * MiB).sizeBytes).toBe(400 * MiB);
    // an odd percentage offset is rounded up to the block size
    expect(resolveRegion(jobFromRecord({ bs: '64k', offset: '33%' }), GiB).startBytes % 65536).toBe(0);
    expect(resolveRegion(jobFromRecord({ time_based: true, runtime: 1 }), GiB).ioLimitBytes).toBe(Infinity);
  });

  it('refuses regions that do not fit the device, with the option and its source', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        if (e instanceof WorkloadSpecError) return e.message;
        throw e;
      }
      throw new Error('expected an error');
    };
    expect(err(() => gen({ size: '2g' }))).toBe('scenario: size: offset + size (2 GiB) exceeds the device (1 GiB)');
    expect(err(() => gen({ offset: '1g' }))).toBe('scenario: offset: 1 GiB is at or beyond the end of the device (1 GiB)');
    expect(err(() => gen({ rw: 'randrw', bs: '4k,64k', size: '16k' }))).toBe(
      "scenario: size: the job's region (16 KiB) is smaller than its block size (64 KiB)",
    );
    expect(err(() => gen({ bs: '512' }, GiB, { alignBytes: 4096 }))).toBe(
      "scenario: bs: read block size 512 is not a multiple of the device's 4096-byte logical block size",
    );
    expect(() => createGenerator(jobFromRecord({}), { deviceBytes: 0 })).toThrow(RangeError);
  });
});

describe('never out of range (property)', () => {
  const bsChoices = [512, 1024, 4096, 8192, 65536];
  const job = fc.record({
    rw: fc.constantFrom('read', 'write', 'trim', 'randread', 'randwrite', 'randtrim', 'rw', 'randrw'),
    sizes: fc.oneof(
      fc.record({ bs: fc.constantFrom(...bsChoices), bs2: fc.option(fc.constantFrom(...bsChoices), { nil: undefined }) }),
      fc.record({ lo: fc.constantFrom(...bsChoices), hi: fc.constantFrom(...bsChoices) }),
      fc.array(fc.record({ bs: fc.constantFrom(...bsChoices), perc: fc.integer({ min: 0, max: 25 }) }), { minLength: 1, maxLength: 4 }),
    ),
    ba: fc.option(fc.constantFrom(512, 1024, 4096), { nil: undefined }),
    norandommap: fc.boolean(),
    dist: fc.constantFrom('random', 'zipf:1.2', 'pareto:0.3', 'normal:20', 'zipf:0.7:0.9'),
    modifier: fc.option(fc.integer({ min: 2, max: 5 }), { nil: undefined }),
    skip: fc.constantFrom(0, 512, 4096),
    offsetSectors: fc.integer({ min: 0, max: 300 }),
    regionSectors: fc.integer({ min: 128, max: 5000 }),
    tailSectors: fc.integer({ min: 0, max: 50 }),
    ioSizeFactor: fc.option(fc.double({ min: 0.1, max: 3, noNaN: true }), { nil: undefined }),
    timeBased: fc.boolean(),
    seed: fc.integer({ min: 0, max: 2 ** 31 }),
  });

  it('keeps every I/O inside the region and the device, sector-aligned, with a valid size', () => {
    fc.assert(
      fc.property(job, (j) => {
        const record: Record<string, string | number | boolean> = { rw: j.rw, randseed: j.seed, random_distribution: j.dist };
        if ('bs' in j.sizes) record.bs = j.sizes.bs2 ? `${j.sizes.bs},${j.sizes.bs2}` : String(j.sizes.bs);
        else if ('lo' in j.sizes) record.bsrange = `${j.sizes.lo}-${j.sizes.hi}`;
        else record.bssplit = j.sizes.map((s) => `${s.bs}/${s.perc}`).join(':');
        if (j.ba) record.ba = j.ba;
        if (j.norandommap) record.norandommap = true;
        if (j.modifier && j.rw.startsWith('rand')) record.rw = `${j.rw}:${j.modifier}`;
        if (j.skip && !j.rw.startsWith('rand')) record.rw = `${j.rw}:${j.skip}`;
        const regionBytes = j.regionSectors * 512;
        record.offset = j.offsetSectors * 512;
        record.size = regionBytes;
        if (j.ioSizeFactor) record.io_size = Math.max(512, Math.floor((regionBytes * j.ioSizeFactor) / 512) * 512);
        if (j.timeBased) Object.assign(record, { time_based: true, runtime: 1 });
        const deviceBytes = (j.offsetSectors + j.regionSectors + j.tailSectors) * 512;

        const spec = jobFromRecord(record);
        const maxMin = Math.max(...spec.directions.map((d) => spec.blockSizes[d].min));
        fc.pre(regionBytes >= maxMin);
        const g = createGenerator(spec, { deviceBytes });
        const start = j.offsetSectors * 512;
        const end = start + regionBytes;
        const r = newIoRequest();
        let n = 0;
        let bytes = 0;
        // plain checks in the loop: expect() per I/O would dominate the run time
        const bad = (why: string) => {
          throw new Error(`I/O #${n} ${r.op} @${r.offsetBytes}+${r.lengthBytes} in [${start}, ${end}) of ${deviceBytes}: ${why}`);
        };
        while (n < 3000 && g.next(r)) {
          n++;
          bytes += r.lengthBytes;
          if (!spec.directions.includes(r.op)) bad('unexpected op');
          if (r.offsetBytes < start || r.offsetBytes + r.lengthBytes > end || end > deviceBytes) bad('out of range');
          if (r.offsetBytes % 512 !== 0 || r.lengthBytes % 512 !== 0 || r.lengthBytes <= 0) bad('not sector-aligned');
          if (r.lengthBytes > spec.blockSizes[r.op].max) bad('longer than the largest block size');
          if (spec.random && spec.rwSequence === 1 && spec.norandommap && (r.offsetBytes - start) % spec.blockAlign[r.op] !== 0)
            bad('not aligned to blockalign');
        }
        if (!j.timeBased && n < 3000) {
          expect(bytes).toBeGreaterThanOrEqual(g.region.ioLimitBytes);
          expect(bytes - r.lengthBytes).toBeLessThan(g.region.ioLimitBytes);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('speed', () => {
  it('generates millions of random I/Os per second without slowing down at the end of a pass', () => {
    const g = gen({ rw: 'randrw', bs: '4k', time_based: true, runtime: 1 }, 4 * GiB); // 1M blocks
    const r = newIoRequest();
    const n = 3 * 2 ** 20; // three full passes of the random map
    const t0 = performance.now();
    for (let i = 0; i < n; i++) g.next(r);
    const seconds = (performance.now() - t0) / 1000;
    expect(g.passes).toBe(2);
    // about 0.5 s on the development machine; the bound only catches a regression to a scan per I/O
    expect(seconds).toBeLessThan(6);
  });
});

function fioAvailable(): boolean {
  try {
    execFileSync('fio', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Runs jobs with fio's null engine in one fio process and returns each job's I/O log. */
function fioIologs(jobs: Record<string, string[]>): Record<string, IoRequest[]> {
  const { dir, cleanup } = tmpDir();
  try {
    const args = ['--output=/dev/null'];
    for (const [name, opts] of Object.entries(jobs)) args.push(`--name=${name}`, '--ioengine=null', ...opts, `--write_iolog=${path.join(dir, name)}.log`);
    execFileSync('fio', args, { stdio: 'ignore', timeout: 60_000 });
    const out: Record<string, IoRequest[]> = {};
    for (const name of Object.keys(jobs)) {
      out[name] = fs
        .readFileSync(path.join(dir, `${name}.log`), 'utf8')
        .split('\n')
        .map((l) => l.split(' '))
        .filter((f) => f.length === 5 && ['read', 'write', 'trim'].includes(f[2]!))
        .map((f) => ({ op: f[2] as IoRequest['op'], code: ['read', 'write', 'trim'].indexOf(f[2]!), offsetBytes: Number(f[3]), lengthBytes: Number(f[4]) }));
    }
    return out;
  } finally {
    cleanup();
  }
}

describe.skipIf(!fioAvailable())('against fio 3.33 iologs', () => {
  it('issues what fio issues for sequential jobs, and covers blocks as fio does for random ones', () => {
    const jobs: Record<string, string[]> = {
      wrap: ['--rw=read', '--bs=16k', '--size=64k', '--io_size=160k'],
      holes: ['--rw=write:4k', '--bs=4k', '--size=32k', '--io_size=16k'],
      mixed: ['--rw=rw', '--bs=8k', '--size=256k', '--rwmixread=30'],
      twice: ['--rw=randread', '--bs=8k', '--size=512k', '--io_size=1m'],
      shared: ['--rw=randrw', '--bs=4k', '--size=1m'],
    };
    const fio = fioIologs(jobs);
    const ours = Object.fromEntries(Object.entries(jobs).map(([name, argv]) => [name, drain(createGenerator(jobsFromArgv(argv)[0]!, { deviceBytes: GiB }))]));
    const key = (r: IoRequest) => `${r.op}@${r.offsetBytes}+${r.lengthBytes}`;
    for (const name of ['wrap', 'holes']) expect(ours[name]!.map(key), name).toEqual(fio[name]!.map(key));
    // rw: each direction walks on its own; only the interleaving is random
    for (const op of ['read', 'write']) {
      const a = ours.mixed!.filter((r) => r.op === op).map(key);
      const b = fio.mixed!.filter((r) => r.op === op).map(key);
      const n = Math.min(a.length, b.length);
      expect(n).toBeGreaterThan(3);
      expect(a.slice(0, n), op).toEqual(b.slice(0, n));
    }
    expect(ours.mixed!.length).toBe(fio.mixed!.length);
    // random with the map: the same coverage, block for block
    const coverage = (ios: IoRequest[]) => {
      const counts = new Map<number, number>();
      for (const r of ios) counts.set(r.offsetBytes, (counts.get(r.offsetBytes) ?? 0) + 1);
      return [...counts.entries()].sort((a, b) => a[0] - b[0]);
    };
    expect(coverage(ours.twice!)).toEqual(coverage(fio.twice!));
    expect(coverage(ours.shared!)).toEqual(coverage(fio.shared!));
  });
});
