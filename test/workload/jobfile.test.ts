import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkloadSpecError } from '../../src/workload/errors.js';
import { loadJobs, parseJobs } from '../../src/workload/job.js';
import { parseJobFile, type JobFileOptions } from '../../src/workload/jobfile.js';
import { tmpDir } from '../helpers/tmp.js';

const JOBS = `; jobs.fio: two jobs sharing a global section
# a comment with # in the first column
[global]
rw=randrw
bs = 4k              ; blanks around '=' and a comment after the value
size=\${WL_SIZE}
direct=1
include common.inc

[job1]
rwmixread=70
time_based
runtime=10s
bs=8k
bs=16k               # set twice: the last one wins

[global]
iodepth=32

[job2]
rw=write
size=1g
norandommap
filename=/dev/\${WL_UNSET}loop0
`;

/** A little in-memory file system, so messages name short paths. */
function files(map: Record<string, string>): Pick<JobFileOptions, 'readFile' | 'exists'> {
  return {
    readFile: (f) => {
      const body = map[path.normalize(f)];
      if (body === undefined) throw new Error(`ENOENT: ${f}`);
      return body;
    },
    exists: (f) => path.normalize(f) in map,
  };
}

const FS = files({
  'common.inc': 'iodepth=16\ninclude nested/more.inc\n',
  'nested/more.inc': '; included twice removed\nnumjobs=2\n',
});
const ENV = { WL_SIZE: '256m' };

describe('parseJobFile', () => {
  it('gives each job the globals above it, then its own options, each with its file and line', () => {
    const jobs = parseJobFile(JOBS, { file: 'jobs.fio', env: ENV, ...FS });
    expect(jobs.map((j) => j.name)).toEqual(['job1', 'job2']);
    const [job1, job2] = jobs;
    const values = (j: typeof job1) => Object.fromEntries([...j!.options.values()].map((e) => [e.name, e.value]));
    expect(values(job1)).toEqual({
      rw: 'randrw',
      size: '256m',
      direct: '1',
      iodepth: '16',
      numjobs: '2',
      rwmixread: '70',
      time_based: null,
      runtime: '10s',
      bs: '16k',
    });
    expect(values(job2)).toEqual({
      rw: 'write',
      bs: '4k',
      size: '1g',
      direct: '1',
      iodepth: '32', // the second [global] applies to the jobs after it only
      numjobs: '2',
      norandommap: null,
      filename: '/dev/loop0', // an unset variable expands to nothing, as in fio
    });
    expect(job1!.source).toEqual({ file: 'jobs.fio', line: 10 });
    expect(job1!.options.get('bs')!.source).toEqual({ file: 'jobs.fio', line: 15 });
    expect(job1!.options.get('rw')!.source).toEqual({ file: 'jobs.fio', line: 4 });
    expect(job2!.options.get('bs')!.source).toEqual({ file: 'jobs.fio', line: 5 });
    expect(job1!.options.get('iodepth')!.source).toEqual({ file: 'common.inc', line: 1 });
    expect(job1!.options.get('numjobs')!.source).toEqual({ file: path.normalize('nested/more.inc'), line: 2 });
    expect(job2!.options.get('iodepth')!.source).toEqual({ file: 'jobs.fio', line: 18 });
  });

  it('trims blanks around string values too (fio 3.33 only manages it for numbers: it rejects "rw = randrw")', () => {
    const [job] = parseJobFile('[a]\nrw = randrw\n  iodepth =  4  \n', { file: 'a.fio' });
    expect(job!.options.get('rw')!.value).toBe('randrw');
    expect(job!.options.get('iodepth')!.value).toBe('4');
  });

  it('resolves aliases and keeps the key as written', () => {
    const [job] = parseJobFile('[a]\nblocksize=8k\nreadwrite=randread\nio_limit=1g\ntimeout=5\n', { file: 'a.fio' });
    const e = job!.options.get('bs')!;
    expect(e).toMatchObject({ name: 'bs', key: 'blocksize', value: '8k' });
    expect([...job!.options.keys()]).toEqual(['bs', 'rw', 'io_size', 'runtime']);
  });

  it("treats a section whose name starts with 'global' as global, as fio does", () => {
    const jobs = parseJobFile('[global-defaults]\nbs=8k\n[j]\n', { file: 'g.fio' });
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.options.get('bs')!.value).toBe('8k');
  });

  it('substitutes $ncpus and friends, and honours CRLF line ends', () => {
    const [job] = parseJobFile('[j]\r\nnumjobs=$ncpus\r\nsize=$mb_memory\r\n', { file: 'k.fio', keywords: { ncpus: 6, pagesize: 4096, mb_memory: 512 } });
    expect(job!.options.get('numjobs')!.value).toBe('6');
    expect(job!.options.get('size')!.value).toBe('512');
  });

  it('can keep only some job sections, like fio --section', () => {
    const jobs = parseJobFile('[global]\nbs=8k\n[a]\n[b]\nrw=write\n[c]\n', { file: 's.fio', sections: ['b'] });
    expect(jobs.map((j) => j.name)).toEqual(['b']);
    expect(jobs[0]!.options.get('bs')!.value).toBe('8k');
  });

  it('reports every problem with its file and line', () => {
    const text = `[global]
bs=4k
[job1]
rw=randread
size=1g

blocksizee=4k
[job2]
bs=x4k
`;
    expect(() => parseJobs(text, { file: 'jobs.fio' })).toThrow("jobs.fio:7: unknown option 'blocksizee' (did you mean 'blocksize'?)");
    expect(() => parseJobs(text.replace('blocksizee=4k\n', ''), { file: 'jobs.fio' })).toThrow("jobs.fio:8: bs: invalid size 'x4k'");

    let err: unknown;
    try {
      parseJobFile('bs=4k\n[j\n[ok]\nfoo\ninclude\ninclude missing.inc\nBS=4k\n', { file: 'bad.fio', ...files({}) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WorkloadSpecError);
    expect((err as Error).message.split('\n')).toEqual([
      "bad.fio:1: option 'bs=4k' is outside of a [job] section",
      "bad.fio:2: invalid section header '[j' (expected [name])",
      "bad.fio:4: unknown option 'foo'",
      'bad.fio:5: include needs a file name',
      "bad.fio:6: include file 'missing.inc' not found",
      "bad.fio:7: unknown option 'BS' (did you mean 'bs'?)",
    ]);
  });

  it('refuses sections and cycles in included files', () => {
    const fsys = files({ 'sect.inc': 'bs=4k\n[sneaky]\n', 'loop.inc': 'include loop.inc\n' });
    expect(() => parseJobFile('[j]\ninclude sect.inc\n', { file: 'i.fio', ...fsys })).toThrow(
      "sect.inc:2: sections are not allowed in an included file: '[sneaky]'",
    );
    expect(() => parseJobFile('[j]\ninclude loop.inc\n', { file: 'i.fio', ...fsys })).toThrow("loop.inc:1: include cycle: 'loop.inc' includes itself");
  });
});

describe('job files on disk', () => {
  it('finds includes next to the including file and reports a missing job file', () => {
    const { dir, cleanup } = tmpDir();
    try {
      fs.mkdirSync(path.join(dir, 'sub'));
      fs.writeFileSync(path.join(dir, 'sub', 'depth.inc'), 'iodepth=8\n');
      fs.writeFileSync(path.join(dir, 'main.fio'), '[j]\nrw=randread\nsize=64m\ninclude sub/depth.inc\n');
      const [job] = loadJobs(path.join(dir, 'main.fio'));
      expect(job!.iodepth).toBe(8);
      expect(job!.sources.iodepth).toEqual({ file: path.join(dir, 'sub', 'depth.inc'), line: 1 });
      expect(() => loadJobs(path.join(dir, 'nope.fio'))).toThrow(`cannot read job file '${path.join(dir, 'nope.fio')}': ENOENT`);
      fs.writeFileSync(path.join(dir, 'empty.fio'), '[global]\nbs=4k\n');
      expect(() => loadJobs(path.join(dir, 'empty.fio'))).toThrow('no jobs defined');
    } finally {
      cleanup();
    }
  });
});

describe('the golden file as JobSpecs', () => {
  it('validates into the expected jobs', () => {
    const [job1, job2] = parseJobs(JOBS, { file: 'jobs.fio', env: ENV, ...FS });
    expect(job1).toMatchObject({
      name: 'job1',
      rw: 'randrw',
      random: true,
      directions: ['read', 'write'],
      rwmixread: 70,
      blockSizes: { read: { min: 16384, max: 16384, split: [] }, write: { min: 16384, max: 16384 } },
      size: { kind: 'bytes', bytes: 256 * 2 ** 20 },
      direct: true,
      iodepth: 16,
      numjobs: 2,
      timeBased: true,
      runtimeUs: 10_000_000,
      norandommap: false,
    });
    expect(job2).toMatchObject({
      name: 'job2',
      rw: 'write',
      random: false,
      directions: ['write'],
      blockSizes: { write: { min: 4096, max: 4096 } },
      size: { kind: 'bytes', bytes: 2 ** 30 },
      iodepth: 32,
      norandommap: true,
      filename: '/dev/loop0',
      timeBased: false,
    });
    expect(job1!.sources.runtime).toEqual({ file: 'jobs.fio', line: 13 });
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

describe.skipIf(!fioAvailable())('against the installed fio', () => {
  it('accepts and rejects the same job files as fio --parse-only', () => {
    const { dir, cleanup } = tmpDir();
    try {
      fs.mkdirSync(path.join(dir, 'nested'));
      fs.writeFileSync(path.join(dir, 'common.inc'), 'iodepth=16\ninclude nested/more.inc\n');
      fs.writeFileSync(path.join(dir, 'nested', 'more.inc'), '; included twice removed\nnumjobs=2\n');
      fs.writeFileSync(path.join(dir, 'sect.inc'), 'bs=4k\n[sneaky]\n');
      const cases: [string, string][] = [
        ['golden', JOBS],
        ['typo', '[j]\nblocksizee=4k\n'],
        ['bad size', '[j]\nbs=x4k\n'],
        ['outside', 'bs=4k\n[j]\n'],
        ['section in include', '[j]\ninclude sect.inc\nbs=8k\n'], // fio exits 0 when the include is the last line, though it prints the error
        ['bare bool', '[j]\ndirect\n'],
        ['verify none', '[j]\nverify=none\n'],
        ['rwmix range', '[j]\nrwmixread=101\n'],
        ['zipf 1', '[j]\nrandom_distribution=zipf:1\n'],
        ['center range', '[j]\nrandom_distribution=zipf:1.2:1.5\n'],
        ['bsrange without range', '[j]\nbsrange=4k\n'],
        ['mixed', '[j]\nrw=randread:8\nbs=4k,8k\nbssplit=4k/50:8k/\ntime_based=1\nruntime=1\nrate=,10m\n'],
        ['percentages', '[j]\nsize=50%\noffset=10%\nrandom_distribution=pareto:0.9:0.25\nkb_base=1000\n'],
        ['flags', '[j]\ntime_based=0\nnorandommap=1\ngroup_reporting\nthread\ncontinue_on_error=io\nverify=crc32c\n'],
      ];
      const env = { ...process.env, WL_SIZE: '256m' };
      for (const [what, text] of cases) {
        const file = path.join(dir, 'case.fio');
        fs.writeFileSync(file, text);
        const fio = spawnSync('fio', ['--parse-only', 'case.fio'], { cwd: dir, env, stdio: 'ignore', timeout: 60_000 });
        let ours = true;
        try {
          parseJobs(text, { file, env });
        } catch (e) {
          if (!(e instanceof WorkloadSpecError)) throw e;
          ours = false;
        }
        expect(ours, what).toBe(fio.status === 0);
      }
    } finally {
      cleanup();
    }
  });
});
