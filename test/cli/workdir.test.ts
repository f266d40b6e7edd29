/**
 * Issue 17, finding 9: a reused --workdir is recognised (its record names
 * the images an earlier run made; they are reused as devices whose earlier
 * content is unknown, never judged as corruption) or started afresh
 * (--fresh); images it has no record of, or ones that no longer fit, are
 * refused in one line and left as they are.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers/tmp.js';
import { runInProcess } from './in-process.js';

const tmp = tmpDir('remapsim-workdir-');
afterAll(() => tmp.cleanup());

function oneLine(r: { code: number; stderr: string }, message: RegExp): void {
  expect(r.stderr).toMatch(/^remapsim: [^\n]+\n$/);
  expect(r.stderr).toMatch(message);
  expect(r.code).toBe(2);
}

describe('run --workdir', () => {
  it('two runs in a row under the safe policy: the second reuses the images and reports no findings; --fresh starts afresh', async () => {
    const d = path.join(tmp.dir, 'w');
    const json = path.join(tmp.dir, 'second.json');
    const first = await runInProcess(['run', '--workdir', d, '--duration', '1500ms']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/earlier content: zeroes/);
    const record = JSON.parse(fs.readFileSync(path.join(d, 'remapsim-workdir.json'), 'utf8'));
    expect(record).toMatchObject({
      format: 'remapsim-workdir',
      version: 1,
      scenario: 'default',
      policy: 'safe',
      images: { main: { file: 'main.img', bytes: 256 << 20 }, spare: { file: 'spare.img', bytes: 32 << 20 } },
    });
    expect(record.images.main.ino).toBe(fs.statSync(path.join(d, 'main.img')).ino);

    const second = await runInProcess(['run', '--workdir', d, '--duration', '1500ms', '--json', json, '--no-report']);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/earlier content: unknown/);
    expect(second.stdout).not.toMatch(/^\s+\d+\s+(lost|stale|corrupt|unexpected)/m);
    expect(second.stdout).toMatch(/verdict: no acknowledged data lost, stale or corrupt; no unexpected errors/);
    const fio = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(fio.jobs[0].verify.run.findings).toBe(0);
    expect(fio.jobs[0].verify.run.priorContent).toBe('unknown');
    expect(fs.statSync(path.join(d, 'main.img')).ino).toBe(record.images.main.ino);

    // the images hold the safe policy's metadata: another policy starts afresh, or is refused
    oneLine(
      await runInProcess(['run', '--workdir', d, '--duration', '1s', '--policy', 'dm-remap-v4']),
      /--workdir: the images in .* hold the safe policy's metadata from an earlier run, not dm-remap-v4's; start afresh with `remapsim run --fresh`/,
    );
    fs.linkSync(path.join(d, 'main.img'), path.join(tmp.dir, 'old-main.img')); // keeps the old inode from being reused
    const fresh = await runInProcess(['run', '--workdir', d, '--duration', '1s', '--policy', 'dm-remap-v4', '--fresh']);
    expect(fresh.code).toBe(0);
    expect(fresh.stdout).toMatch(/earlier content: zeroes/);
    expect(fs.statSync(path.join(d, 'main.img')).ino).not.toBe(record.images.main.ino);
    expect(JSON.parse(fs.readFileSync(path.join(d, 'remapsim-workdir.json'), 'utf8')).policy).toBe('dm-remap-v4');
  });

  it('refuses images it has no record of, images replaced since, and images of another size; touches none of them', async () => {
    const d = path.join(tmp.dir, 'foreign');
    fs.mkdirSync(d);
    const main = path.join(d, 'main.img');
    fs.writeFileSync(main, 'somebody else’s data');
    oneLine(
      await runInProcess(['run', '--workdir', d, '--duration', '1s']),
      /--workdir: .*main\.img exists, but remapsim has no record of making it \(no remapsim-workdir\.json naming it\); start afresh .*, or name it as devices\.main\.path to use it as it is/,
    );
    expect(fs.readFileSync(main, 'utf8')).toBe('somebody else’s data');

    const small = path.join(tmp.dir, 'small.yaml');
    const write = (size: string): void =>
      fs.writeFileSync(
        small,
        `name: small\ndevices:\n  main: { size: ${size} }\n  spare: { size: 1MiB }\njobs:\n  - { rw: randrw, bs: 4k, size: 256k, verify: crc32c }\n`,
      );
    write('8MiB');
    const e = path.join(tmp.dir, 'e');
    expect((await runInProcess(['run', small, '--workdir', e])).code).toBe(0);
    write('16MiB');
    oneLine(
      await runInProcess(['run', small, '--workdir', e]),
      /--workdir: .*main\.img is 8 MiB from an earlier run; devices\.main\.size asks for 16 MiB: start afresh/,
    );
    write('8MiB');
    const spare = path.join(e, 'spare.img');
    fs.renameSync(spare, `${spare}.old`); // another file at the same path (the old one kept, so its inode is not reused)
    fs.copyFileSync(`${spare}.old`, spare);
    oneLine(await runInProcess(['run', small, '--workdir', e]), /--workdir: .*spare\.img was replaced since remapsim made it \(another inode\)/);
    fs.writeFileSync(path.join(e, 'remapsim-workdir.json'), '{"nope": 1}');
    oneLine(await runInProcess(['run', small, '--workdir', e]), /remapsim-workdir\.json is not a remapsim work directory record/);
    expect((await runInProcess(['run', small, '--workdir', e, '--fresh'])).code).toBe(0);
    expect(fs.existsSync(`${spare}.old`)).toBe(true); // only main.img, spare.img and the record go
  });

  it('--compare-policies keeps each policy’s images apart; --fresh needs a work directory', async () => {
    const small = path.join(tmp.dir, 'cmp.yaml');
    fs.writeFileSync(
      small,
      'name: cmp\ndevices:\n  main: { size: 8MiB }\n  spare: { size: 4MiB }\njobs:\n  - { rw: randrw, bs: 4k, size: 256k, verify: crc32c }\n',
    );
    const d = path.join(tmp.dir, 'cmp');
    for (let i = 0; i < 2; i++) expect((await runInProcess(['run', small, '--workdir', d, '--compare-policies'])).code).toBe(0);
    expect(fs.readdirSync(d).sort()).toEqual(['dm-remap-v4', 'safe']);
    oneLine(await runInProcess(['run', small, '--fresh']), /--fresh: only with --workdir/);
  });
});
