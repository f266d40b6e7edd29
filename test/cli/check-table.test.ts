import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir();
afterAll(() => tmp.cleanup());
const main = path.join(tmp.dir, 'main.img');
const spare = path.join(tmp.dir, 'spare.img');
const tiny = path.join(tmp.dir, 'tiny.img');
FileDevice.createSparse(main, 100 << 20);
FileDevice.createSparse(spare, 20 << 20);
FileDevice.createSparse(tiny, 1 << 20);

describe('remapsim check-table', () => {
  it('prints the resolved target, as JSON when asked', () => {
    const r = runCli(['check-table', `0 204800 dm-remap-v4 ${main} ${spare}`, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ ok: true, type: 'dm-remap-v4', sectors: 204800, minSpareSectors: 5541, remapCapacity: 20480 });
    expect(j.status.split(' ')).toHaveLength(31);
    const human = runCli(['check-table', `0 204800 remap ${main} ${spare}`]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^valid remap target: 204800 sectors \(100 MiB\)/);
  });

  it('refuses bad lines in one line, exit status 2, no stack trace', () => {
    const cases: Array<[string, RegExp]> = [
      [`0 204800 dm-remap-v4 ${main}`, /Invalid argument count: dm-remap-v4 <main_device> <spare_device>/],
      [`0 204800 dm-remap-v4 ${main} ${main}`, /Cannot open spare device: .* already claimed/],
      [`0 204800 dm-remap-v4 ${main} ${tiny}`, /Spare device insufficient: 2048 < 5541 sectors/],
      [`0 204800 dm-remap-v4 ${main} ${path.join(tmp.dir, 'nope.img')}`, /Cannot open spare device: .*nope.img: no such file or directory/],
      [`0 409600 remap ${main} ${spare}`, /smaller than the declared length/],
      [`0 204800 remap ${main} ${spare} 1 turbo`, /unknown feature 'turbo'/],
      ['0 x remap a b', /length must be a whole number of sectors, got 'x'/],
      [`0 204800 striped 2 8 ${main} 0 ${spare} 0`, /target type 'striped' is not modelled/],
    ];
    for (const [line, msg] of cases) {
      const r = runCli(['check-table', line]);
      expect(r.code, line).toBe(2);
      expect(r.stderr, line).toMatch(msg);
      expect(r.stderr.trim().split('\n'), line).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\s+at /);
    }
  });

  it('teaches in --help and rejects unknown options', () => {
    const help = runCli(['check-table', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Target types: dm-remap-v4/);
    const top = runCli(['--help']);
    expect(top.stdout).toMatch(/check-table/);
    const bad = runCli(['check-table', '--frob', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown option '--frob'/);
    expect(runCli(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
