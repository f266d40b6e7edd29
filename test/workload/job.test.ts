import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkloadSpecError } from '../../src/workload/errors.js';
import { jobFromRecord, jobsFromArgv, optionMapFromRecord, optionsFromArgv, parseJobs, validateJob, type JobSpec } from '../../src/workload/job.js';
import { tmpDir } from '../helpers/tmp.js';

const KEYWORDS = { ncpus: 4, pagesize: 4096, mb_memory: 1024 };

function job(text: string, options: { allowUnsupported?: boolean } = {}): JobSpec {
  const jobs = parseJobs(`[j]\n${text}`, { file: 'jobs.fio', keywords: KEYWORDS, ...options });
  return jobs[0]!;
}

/** The message of the WorkloadSpecError a job body raises. */
function problems(text: string): string[] {
  try {
    job(text);
  } catch (e) {
    if (e instanceof WorkloadSpecError) return e.message.split('\n');
    throw e;
  }
  throw new Error('expected an error');
}

describe('JobSpec defaults', () => {
  it("uses fio's defaults for whatever is not set", () => {
    const j = job('size=1g');
    expect(j).toMatchObject({
      name: 'j',
      rw: 'read',
      random: false,
      directions: ['read'],
      rwSequence: 1,
      rwSkipBytes: 0,
      rwmixread: 50,
      blockSizes: { read: { min: 4096, max: 4096, split: [] } },
      blockAlign: { read: 4096 },
      iodepth: 1,
      numjobs: 1,
      offset: { kind: 'bytes', bytes: 0 },
      runtimeUs: 0,
      timeBased: false,
      rampTimeUs: 0,
      rate: { read: 0, write: 0, trim: 0 },
      distribution: { kind: 'random' },
      randrepeat: true,
      norandommap: false,
      verify: 'none',
      verifyBacklog: 0,
      continueOnError: 'none',
      direct: false,
      groupReporting: false,
      thread: false,
      kbBase: 1024,
      ignored: [],
      notes: [],
    });
    expect(j.ioSize).toBeUndefined();
    expect(j.randseed).toBeUndefined();
  });
});

describe('options', () => {
  it("accepts fio's aliases", () => {
    const j = job('readwrite=randwrite\nblocksize=8k\nblockalign=8k\nio_limit=1g\ntimeout=30\nfileoffset=1m\nblocksize_range=4k-16k');
    expect(j.rw).toBe('randwrite');
    expect(j.blockSizes.write).toEqual({ min: 4096, max: 16384, split: [] }); // bsrange over bs
    expect(j.blockAlign.write).toBe(8192);
    expect(j.ioSize).toEqual({ kind: 'bytes', bytes: 2 ** 30 });
    expect(j.runtimeUs).toBe(30e6);
    expect(j.offset).toEqual({ kind: 'bytes', bytes: 2 ** 20 });
  });

  it('reads every rw mode and the :N modifier', () => {
    const dirs: Record<string, string[]> = {
      read: ['read'],
      write: ['write'],
      trim: ['trim'],
      randread: ['read'],
      randwrite: ['write'],
      randtrim: ['trim'],
      rw: ['read', 'write'],
      readwrite: ['read', 'write'],
      randrw: ['read', 'write'],
    };
    for (const [mode, d] of Object.entries(dirs)) {
      const j = job(`rw=${mode}`);
      expect(j.directions, mode).toEqual(d);
      expect(j.random, mode).toBe(mode.startsWith('rand'));
    }
    expect(job('rw=readwrite').rw).toBe('rw');
    expect(job('rw=randread:8').rwSequence).toBe(8);
    expect(job('rw=write:4k').rwSkipBytes).toBe(4096);
  });

  it('lets the later of rwmixread and rwmixwrite win, as fio does', () => {
    expect(job('rw=randrw\nrwmixread=70').rwmixread).toBe(70);
    expect(job('rw=randrw\nrwmixwrite=30').rwmixread).toBe(70);
    expect(job('rw=randrw\nrwmixread=70\nrwmixwrite=10').rwmixread).toBe(90);
    expect(job('rw=randrw\nrwmixwrite=10\nrwmixread=70').rwmixread).toBe(70);
    const fromGlobal = parseJobs('[global]\nrwmixwrite=10\n[j]\nrw=rw\nrwmixread=60\n', { file: 'g.fio' })[0]!;
    expect(fromGlobal.rwmixread).toBe(60);
  });

  it('reads bs per direction and bsrange with the ends in either order', () => {
    const j = job('rw=randrw\nbs=4k,16k');
    expect(j.blockSizes.read.min).toBe(4096);
    expect(j.blockSizes.write.min).toBe(16384);
    expect(j.blockSizes.trim.min).toBe(16384);
    expect(job('bsrange=16k-4k').blockSizes.read).toEqual({ min: 4096, max: 16384, split: [] });
    expect(job('bsrange=4k:16k').blockSizes.read).toEqual({ min: 4096, max: 16384, split: [] });
  });

  it('shares what bssplit leaves among blank or zero percentages and sorts like fio', () => {
    expect(job('bssplit=4k/10:64k/50:32k/40').blockSizes.read.split).toEqual([
      { bs: 4096, perc: 10 },
      { bs: 32768, perc: 40 },
      { bs: 65536, perc: 50 },
    ]);
    // HOWTO example: 50% 4k, the rest split evenly
    expect(job('bssplit=4k/50:1k/:32k/').blockSizes.read).toEqual({
      min: 1024,
      max: 32768,
      split: [
        { bs: 1024, perc: 25 },
        { bs: 32768, perc: 25 },
        { bs: 4096, perc: 50 },
      ],
    });
    // 100 - 10 = 90 over three entries: 30 each
    expect(job('bssplit=4k/10:8k/0:16k:32k/').blockSizes.read.split.map((s) => s.perc)).toEqual([10, 30, 30, 30]);
    // a remainder fio cannot divide goes to the largest entry, so the total is always 100
    expect(job('bssplit=4k/:8k/:16k/').blockSizes.read.split.map((s) => s.perc)).toEqual([33, 33, 34]);
    expect(job('bssplit=4k/30:8k/30').blockSizes.read.split.map((s) => s.perc)).toEqual([30, 70]);
    // per direction: reads split, writes fixed by the second list
    const rw = job('rw=randrw\nbssplit=2k/50:4k/50,4k/90:8k/10');
    expect(rw.blockSizes.read).toMatchObject({ min: 2048, max: 4096 });
    expect(rw.blockSizes.write.split).toEqual([
      { bs: 8192, perc: 10 },
      { bs: 4096, perc: 90 },
    ]);
    expect(job('bssplit=4k/50:64k/50').blockSizes.read.min).toBe(4096);
  });

  it('reads random_distribution with its parameters, defaults and optional center', () => {
    expect(job('random_distribution=random').distribution).toEqual({ kind: 'random' });
    expect(job('random_distribution=zipf').distribution).toEqual({ kind: 'zipf', theta: 1.1 });
    expect(job('random_distribution=zipf:1.2').distribution).toEqual({ kind: 'zipf', theta: 1.2 });
    expect(job('random_distribution=zipf:1.2:0.25').distribution).toEqual({ kind: 'zipf', theta: 1.2, center: 0.25 });
    expect(job('random_distribution=pareto').distribution).toEqual({ kind: 'pareto', h: 0.2 });
    expect(job('random_distribution=pareto:0.9').distribution).toEqual({ kind: 'pareto', h: 0.9 });
    expect(job('random_distribution=normal').distribution).toEqual({ kind: 'normal', dev: 0 });
    expect(job('random_distribution=normal:10:0.75').distribution).toEqual({ kind: 'normal', dev: 10, center: 0.75 });
  });

  it('reads verify, continue_on_error, flags, rates and the rest', () => {
    expect(job('verify=crc32c').verify).toBe('crc32c');
    expect(job('verify=crc32c-intel').verify).toBe('crc32c');
    expect(job('verify=xxhash\nverify_backlog=1k').verifyBacklog).toBe(1024);
    expect(job('verify=0').verify).toBe('none');
    for (const [v, want] of [
      ['none', 'none'],
      ['read', 'read'],
      ['write', 'write'],
      ['io', 'io'],
      ['verify', 'verify'],
      ['all', 'all'],
      ['0', 'none'],
      ['1', 'all'],
    ]) {
      expect(job(`continue_on_error=${v}`).continueOnError, v).toBe(want);
    }
    const j = job(
      'rw=randrw\ntime_based\nruntime=1m\nramp_time=500ms\nnorandommap=1\ngroup_reporting\nthread=1\ndirect=1\nrandrepeat=0\nrate=1m,2m\niodepth=16\nnumjobs=$ncpus\nfilename=/dev/loop0\ndescription=a test\nsize=50%\noffset=10%\nio_size=50%',
    );
    expect(j).toMatchObject({
      timeBased: true,
      runtimeUs: 60e6,
      rampTimeUs: 500e3,
      norandommap: true,
      groupReporting: true,
      thread: true,
      direct: true,
      randrepeat: false,
      rate: { read: 2 ** 20, write: 2 ** 21, trim: 2 ** 21 },
      iodepth: 16,
      numjobs: 4,
      filename: '/dev/loop0',
      description: 'a test',
      size: { kind: 'percent', percent: 50 },
      offset: { kind: 'percent', percent: 10 },
      ioSize: { kind: 'percent', percent: 50 },
    });
    expect(job('time_based=0').timeBased).toBe(false);
    expect(job('rate_iops=500').rateIops).toEqual({ read: 500, write: 500, trim: 500 });
    expect(job('randseed=1234').randseed).toBe(1234);
    expect(job('randseed=1234').randrepeat).toBe(false); // randseed overrides randrepeat, as in fio
    expect(job('kb_base=1000\nbs=4KiB\nsize=1m').blockSizes.read.min).toBe(4096);
    expect(job('size=0').size).toBeUndefined(); // fio: size=0 is the whole device
  });

  it('turns the random map off where fio does, and says so', () => {
    const z = job('rw=randread\nrandom_distribution=zipf:1.2');
    expect(z.norandommap).toBe(true);
    expect(z.notes[0]).toMatch(/random_distribution=zipf turns off the random map/);
    const a = job('rw=randread\nbs=4k\nblockalign=512');
    expect(a.blockAlign.read).toBe(512);
    expect(a.norandommap).toBe(true);
    expect(a.notes[0]).toMatch(/blockalign/);
    // blockalign only affects random I/O
    expect(job('rw=read\nbs=4k\nba=512').blockAlign.read).toBe(4096);
  });
});

describe('validation errors', () => {
  it('name the option, the allowed range and the line', () => {
    expect(problems('rwmixread=101')).toEqual(['jobs.fio:2: rwmixread: 101 is out of range (allowed 0 to 100)']);
    expect(problems('iodepth=0')).toEqual([
      "jobs.fio:2: iodepth: 0 is out of range (allowed 1 to 65536: remapsim's limit, libaio's default in fio; fio's io_uring takes at most 32768)",
    ]);
    expect(problems('bs=x4k')).toEqual(["jobs.fio:2: bs: invalid size 'x4k'"]);
    expect(problems('bs=1000')).toEqual(['jobs.fio:2: bs: read block size 1000 is not a multiple of 512 (the sector size)']);
    expect(problems('direct')).toEqual(['jobs.fio:2: direct: missing value']);
    expect(problems('direct=2')).toEqual(["jobs.fio:2: direct: invalid value '2' (allowed 0 or 1)"]);
    expect(problems('time_based=yes')).toEqual(["jobs.fio:2: time_based: invalid value 'yes' (allowed 0 or 1)"]);
    expect(problems('size=1k')).toEqual(['jobs.fio:2: size: 1024 is smaller than the minimum block size (4 KiB)']);
    expect(problems('rw=sideways')).toEqual([
      "jobs.fio:2: rw: invalid value 'sideways' (allowed: read, write, trim, randread, randwrite, randtrim, rw, readwrite, randrw)",
    ]);
    expect(problems('rw=randread:0')).toEqual(['jobs.fio:2: rw: 0 is out of range (allowed 1 to 4294967295)']);
    expect(problems('kb_base=512')).toEqual(["jobs.fio:2: kb_base: invalid value '512' (allowed 1024 or 1000)"]);
    expect(problems('continue_on_error=constructor')).toEqual([
      "jobs.fio:2: continue_on_error: invalid value 'constructor' (allowed: none, read, write, io, verify, all, 0, 1)",
    ]);
    // names every JavaScript object has are not option values
    expect(problems('rw=constructor')).toEqual([
      "jobs.fio:2: rw: invalid value 'constructor' (allowed: read, write, trim, randread, randwrite, randtrim, rw, readwrite, randrw)",
    ]);
    expect(problems('verify=toString')[0]).toMatch(/^jobs\.fio:2: verify: invalid value 'toString' \(allowed: /);
    expect(problems('bsrange=4k')).toEqual(["jobs.fio:2: bsrange: invalid range '4k' (expected min-max, such as 1k-4k)"]);
    expect(problems('bssplit=4k/60:8k/60')).toEqual(['jobs.fio:2: bssplit: percentages add up to 120, more than 100']);
    expect(problems('bssplit=4k/101')).toEqual(["jobs.fio:2: bssplit: invalid percentage '101' in '4k/101' (allowed 0 to 100)"]);
    expect(problems('random_distribution=zipf:1')).toEqual(['jobs.fio:2: random_distribution: zipf theta 1 is out of range (allowed: greater than 0, not 1)']);
    expect(problems('random_distribution=pareto:1.5')).toEqual([
      'jobs.fio:2: random_distribution: pareto h 1.5 is out of range (allowed: greater than 0 and less than 1)',
    ]);
    expect(problems('random_distribution=normal:100')).toEqual([
      'jobs.fio:2: random_distribution: normal deviation 100 is out of range (allowed 0 to less than 100)',
    ]);
    expect(problems('random_distribution=zipf:1.2:1.5')).toEqual(['jobs.fio:2: random_distribution: center 1.5 is out of range (allowed 0 to 1)']);
    expect(problems('random_distribution=zoned:60/10:40/90')[0]).toMatch(/'zoned' is a fio distribution remapsim does not implement/);
    expect(problems('verify=sha512')).toEqual([
      "jobs.fio:2: verify: 'sha512' is a fio checksum remapsim does not implement (allowed: 0, crc32c, crc32c-intel, xxhash, md5, sha256, meta, pattern)",
    ]);
    expect(problems('verify=none')).toEqual(["jobs.fio:2: verify: invalid value 'none' (fio spells it verify=0)"]);
    expect(problems('rw=trimwrite')[0]).toMatch(/'trimwrite' is a fio mode remapsim does not implement/);
    expect(problems('time_based')).toEqual(['jobs.fio:2: time_based: needs a runtime (fio ignores time_based without one)']);
    expect(problems('rate=1m\nrate_iops=100')).toEqual(['jobs.fio:3: rate_iops: rate and rate_iops are mutually exclusive (as in fio)']);
    expect(problems('size=8*$mb_memory')).toEqual(["jobs.fio:2: size: arithmetic expressions are not supported: '8*1024'"]);
  });

  it("takes fio's verify options, and refuses what does not fit together in one line each", () => {
    expect(job('rw=write\nverify=md5').verify).toBe('md5');
    expect(job('rw=write\nverify=sha256\nverify_pattern=0xdeadbeef').verifyPattern).toEqual(Uint8Array.from([0xde, 0xad, 0xbe, 0xef]));
    // fio: verify_pattern alone is VERIFY_PATTERN, a header and then the pattern
    expect(job('rw=write\nverify_pattern="ab"').verify).toBe('pattern-header');
    expect(job('rw=write\nverify=pattern\nverify_pattern=-1024').verifyPattern).toEqual(Uint8Array.from([0x00, 0xfc, 0xff, 0xff]));
    expect(job('rw=write\nverify=meta\nverify_only')).toMatchObject({ verify: 'meta', verifyOnly: true, verifyStateSave: true, verifyStateLoad: false });
    expect(job('rw=write\nverify=md5\nverify_state_save=0').verifyStateSave).toBe(false);
    const refused: Array<[string, string]> = [
      ['rw=write\nverify=pattern', 'jobs.fio:3: verify: verify=pattern needs verify_pattern (the bytes every block must hold)'],
      [
        'rw=write\nverify=crc32c\nverify_pattern=0xff',
        "jobs.fio:4: verify_pattern: works with verify=md5, sha256, meta or pattern (fio's header); verify=crc32c writes remapsim's own unit header",
      ],
      [
        'rw=read\nverify=md5\nverify_only',
        'jobs.fio:4: verify_only: the job writes nothing to check (fio: verify_only makes sense only for workloads that write data)',
      ],
      [
        'rw=write\nverify=md5\nverify_only\nruntime=1\ntime_based',
        'jobs.fio:4: verify_only: does not support time_based (as in fio: the write pass it replays must have an end)',
      ],
      [
        'rw=write\nverify=md5\nverify_state_load=1',
        "jobs.fio:4: verify_state_load: needs verify_only: remapsim loads fio's verify state for a verify-only pass",
      ],
      [
        'rw=write\nverify=md5\nverify_pattern=%o',
        "jobs.fio:4: verify_pattern: '%o' (a format fio pastes into the pattern) is not implemented in remapsim; give the bytes",
      ],
      ['rw=write\nverify=md5\nverify_state_save=maybe', "jobs.fio:4: verify_state_save: invalid value 'maybe' (allowed 0 or 1)"],
    ];
    for (const [body, message] of refused) expect(problems(body), body).toEqual([message]);
  });

  it('lists all problems in file order', () => {
    expect(problems('iodepth=0\nbs=x4k\nrwmixread=101')).toEqual([
      "jobs.fio:2: iodepth: 0 is out of range (allowed 1 to 65536: remapsim's limit, libaio's default in fio; fio's io_uring takes at most 32768)",
      "jobs.fio:3: bs: invalid size 'x4k'",
      'jobs.fio:4: rwmixread: 101 is out of range (allowed 0 to 100)',
    ]);
  });

  it('reports a bad global option once, not once per job', () => {
    expect(() => parseJobs('[global]\nbs=x4k\n[a]\n[b]\n', { file: 'g.fio' })).toThrow(/^g\.fio:2: bs: invalid size 'x4k'$/);
  });

  it('reports options fio knows but remapsim does not implement, unless allowed', () => {
    expect(problems('ioengine=libaio\nhipri')).toEqual([
      "jobs.fio:2: 'ioengine' is a fio option remapsim does not implement",
      "jobs.fio:3: 'hipri' is an option of one of fio's I/O engines; remapsim does not use fio's engines",
    ]);
    const j = job('ioengine=libaio\nstonewall\nnrfiles=2', { allowUnsupported: true });
    expect(j.ignored.map((e) => `${e.key}=${e.value}`)).toEqual(['ioengine=libaio', 'stonewall=null', 'nrfiles=2']);
    expect(j.ignored[0]!.source).toEqual({ file: 'jobs.fio', line: 2 });
  });
});

describe('command-line flags', () => {
  it('give the same job as a job file', () => {
    const argv = ['--rw', 'randrw', '--bs', '4k', '--size', '256M', '--iodepth', '16', '--time-based', '--runtime=10', '--rwmixread=70', '--norandommap', '0'];
    const [fromArgv] = jobsFromArgv(argv, { keywords: KEYWORDS });
    const [fromFile] = parseJobs('[job]\nrw=randrw\nbs=4k\nsize=256M\niodepth=16\ntime_based\nruntime=10\nrwmixread=70\nnorandommap=0\n', { file: 'x.fio' });
    const strip = (j: JobSpec) => ({ ...j, sources: undefined, source: undefined });
    expect(strip(fromArgv!)).toEqual(strip(fromFile!));
    expect(fromArgv!.sources.bs).toEqual({ file: 'command line' });
  });

  it('start a job at each --name, with the options before it as globals', () => {
    const r = optionsFromArgv(['--bs=8k', 'jobs.fio', '--name', 'a', '--rw', 'randread', '--name=b', '--iodepth', '4', '--', '--not-an-option'], {
      keywords: KEYWORDS,
    });
    expect([...r.global.keys()]).toEqual(['bs']);
    expect(r.jobs.map((j) => [j.name, [...j.options.keys()]])).toEqual([
      ['a', ['bs', 'name', 'rw']],
      ['b', ['bs', 'name', 'iodepth']],
    ]);
    expect(r.positionals).toEqual(['jobs.fio', '--not-an-option']);
  });

  it('report unknown flags and missing values', () => {
    expect(() => optionsFromArgv(['--blocksizee', '4k'])).toThrow("command line: unknown option '--blocksizee' (did you mean '--blocksize'?)");
    expect(() => jobsFromArgv(['--rw', 'randread', '--bs'])).toThrow('command line: bs: missing value');
    expect(() => jobsFromArgv([])).toThrow('no jobs defined');
  });

  it('use command-line globals as defaults for job files, which may override them', () => {
    const { dir, cleanup } = tmpDir();
    try {
      const file = path.join(dir, 'j.fio');
      fs.writeFileSync(file, '[one]\nrw=randread\n[two]\nbs=16k\n');
      const [one, two] = jobsFromArgv(['--bs', '8k', '--size', '64m', file]);
      expect(one!.blockSizes.read.min).toBe(8192);
      expect(two!.blockSizes.read.min).toBe(16384);
      expect(two!.size).toEqual({ kind: 'bytes', bytes: 64 * 2 ** 20 });
    } finally {
      cleanup();
    }
  });
});

describe('records (scenarios)', () => {
  it('build the same job from plain values', () => {
    const j = jobFromRecord({ name: 'mix', rw: 'randrw', bs: '4k', iodepth: 16, time_based: true, runtime: 5, direct: true, norandommap: false });
    expect(j).toMatchObject({ name: 'mix', rw: 'randrw', iodepth: 16, timeBased: true, runtimeUs: 5e6, direct: true, norandommap: false });
    expect(() => optionMapFromRecord({ blocksizee: '4k' }, { file: 'scenario.yaml' })).toThrow("scenario.yaml: unknown option 'blocksizee'");
    expect(() => jobFromRecord({ iodepth: 0 })).toThrow(
      "scenario: iodepth: 0 is out of range (allowed 1 to 65536: remapsim's limit, libaio's default in fio; fio's io_uring takes at most 32768)",
    );
  });

  it('validate a section built by hand', () => {
    const options = optionMapFromRecord({ rw: 'write', bs: '64k' });
    expect(validateJob({ name: 'w', source: { file: 'test' }, options }).blockSizes.write.min).toBe(65536);
  });
});
