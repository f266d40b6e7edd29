/**
 * The watch loop: one line per sample when piped (in this process and through
 * a real pipe to a child), in-place redraws on a terminal, CSV with one
 * header, JSON Lines; sampling a served model through its control socket.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { UsageError } from '../../src/util/errors.js';
import { DustDevice } from '../../src/faults/dust.js';
import { ControlServer, collectLayers } from '../../src/nbd/control-socket.js';
import { SafeRemapTarget } from '../../src/remap/safe-target.js';
import { DmRemapV4Target } from '../../src/remap/v4-target.js';
import { parseStatusViewOptions, parseWatchInterval, runStatusView } from '../../src/cli/status.js';
import { controlTargetSource, servedSource } from '../../src/status/sources.js';
import { everyInterval, watchStatus } from '../../src/status/watch.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-status-');
afterAll(() => tmp.cleanup());
const here = path.dirname(fileURLToPath(import.meta.url));
const ESC = '\x1b';

class Sink {
  chunks: string[] = [];
  constructor(readonly isTTY: boolean) {}
  write(s: string): boolean {
    this.chunks.push(s);
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

function v4Model(): DmRemapV4Target {
  return new DmRemapV4Target({
    main: new MemoryDevice({ sectors: 8192, name: 'm' }),
    spare: new MemoryDevice({ sectors: 4096, name: 's' }),
    mainPath: '/dev/loop1',
    sparePath: '/dev/loop2',
  });
}

/** Reads on `t` every few ms while the loop runs. */
function busy(t: DmRemapV4Target): () => void {
  const buf = new Uint8Array(512);
  let n = 0;
  const timer = setInterval(() => {
    for (let i = 0; i < 50; i++) t.read((n++ * 8) % 8000, buf);
  }, 3);
  return () => clearInterval(timer);
}

describe('watch loop, piped', () => {
  it('prints one line per sample, no escape codes, with the counters moving', async () => {
    const t = v4Model();
    const stop = busy(t);
    const out = new Sink(false);
    try {
      expect(await watchStatus({ source: controlTargetSource(t, 'model'), format: 'human', out, intervalMs: 60, count: 4 })).toBe(4);
    } finally {
      stop();
    }
    const lines = out.text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(4);
    expect(out.text).not.toContain(ESC);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d rd\/s - wr\/s - maps 0 /);
    for (const l of lines.slice(1)) expect(l).toMatch(/^\d\d:\d\d:\d\d rd\/s [\d.]+k? wr\/s 0 maps 0 rmp-io 0 health 100% hot 0 hit \d+%$/);
    expect(lines.slice(1).some((l) => !/rd\/s 0 /.test(l))).toBe(true);
  });

  it('through a real pipe: a child process running the view on its stdout, one line per sample', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'watch-main.ts'), ...args], {
        encoding: 'utf8',
        timeout: 20_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    const human = run(['--watch', '0.1', '--count', '3']);
    expect(human.stderr).toBe('');
    expect(human.status).toBe(0);
    expect(human.stdout).not.toContain(ESC);
    expect(human.stdout.trimEnd().split('\n')).toHaveLength(3);
    // the counters move between samples in the child too
    const rates = human.stdout
      .trimEnd()
      .split('\n')
      .slice(1)
      .map((l) => /rd\/s (\S+) /.exec(l)?.[1]);
    expect(rates.every((r) => r !== undefined && r !== '-' && r !== '0')).toBe(true);
  });
});

describe('one sample', () => {
  it('prints the full block (even piped) or one JSON line', async () => {
    const once = new Sink(false);
    expect(await runStatusView(controlTargetSource(v4Model(), 'model'), {}, once)).toBe(1);
    expect(once.text).not.toContain(ESC);
    expect(once.text).toMatch(/^remapsim status model {2,}\d\d:\d\d:\d\d\n/);
    expect(once.text).toMatch(/^slow path +0 +health scans +0$/m);
    expect(once.text).toMatch(/^health +100% +hotspots +0$/m);
    const json = new Sink(false);
    await runStatusView(controlTargetSource(v4Model(), 'model'), { format: 'json' }, json);
    expect(
      json.text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).lines[0].fields.mainPath),
    ).toEqual(['/dev/loop1']);
  });
});

describe('watch loop, terminal', () => {
  it('redraws in place: cursor up over the last frame, clear, new frame; the cursor comes back', async () => {
    const t = v4Model();
    const out = new Sink(true);
    await watchStatus({ source: controlTargetSource(t, 'model'), format: 'human', out, intervalMs: 20, count: 3 });
    const [hide, f1, f2, f3, show] = out.chunks;
    expect(hide).toBe(`${ESC}[?25l`);
    expect(show).toBe(`${ESC}[?25h`);
    const frame1 = f1.split('\n').length - 1;
    expect(f1.startsWith('remapsim status model')).toBe(true);
    expect(f2.startsWith(`${ESC}[${frame1}A\r${ESC}[J`)).toBe(true);
    expect(f3.startsWith(`${ESC}[${f2.split('\n').length - 1}A\r${ESC}[J`)).toBe(true);
    for (const l of f2.replace(/^\x1b\[\d+A\r\x1b\[J/, '').split('\n')) expect(l.length).toBeLessThanOrEqual(80);
  });

  it('stops when aborted (Ctrl-C), even mid-wait', async () => {
    const ac = new AbortController();
    const out = new Sink(false);
    setTimeout(() => ac.abort(), 150);
    const t0 = Date.now();
    const n = await watchStatus({ source: controlTargetSource(v4Model(), 'model'), format: 'json', out, intervalMs: 60_000, signal: ac.signal });
    expect(n).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('a served model through its control socket', () => {
  it('samples the top and a dust layer, with the bad-block count', async () => {
    const dust = new DustDevice(new MemoryDevice({ sectors: 8192, name: 'main' }), { devName: 'main' });
    dust.enable();
    const target = new SafeRemapTarget({
      main: dust,
      spare: new MemoryDevice({ sectors: 4096, name: 'spare' }),
      mainPath: 'main',
      sparePath: 'spare',
      reservedSectors: 8,
    });
    const server = new ControlServer(collectLayers(target));
    const sock = path.join(tmp.dir, 'model.sock.ctl');
    await server.listen(sock);
    try {
      const out = new Sink(false);
      let step = 0;
      const source = servedSource(sock);
      const stepping = {
        label: source.label,
        close: () => undefined,
        read: async () => {
          // a bad block appears and a write remaps it between samples
          dust.addBadBlock(100 + step, 1);
          target.write(100 + step, new Uint8Array(512));
          step++;
          return source.read();
        },
      };
      await watchStatus({ source: stepping, format: 'csv', out, intervalMs: 20, count: 3 });
      const rows = out.text.trimEnd().split('\n');
      expect(rows[0]).toBe('time,type,start,length,version,mainPath,sparePath,remaps,pending,spareUsed,spareTotal,readErrors,writeErrors,enospc,state,health');
      expect(rows.slice(1).map((r) => r.split(',')[7])).toEqual(['1', '2', '3']);
      const dOut = new Sink(false);
      await watchStatus({ source: servedSource(sock, { layer: 'main.dust' }), format: 'human', out: dOut, intervalMs: 20, count: 1 });
      // the three blocks stay listed after their one failed write (the remaps took the data)
      expect(dOut.text).toMatch(/dust main failing reads verbose bad blocks 3\n$/);
      dust.addBadBlock(7);
      const block = new Sink(false);
      await watchStatus({ source: servedSource(sock, { layer: 'main.dust' }), format: 'human', out: block });
      expect(block.text).toMatch(/^remapsim status .*model\.sock\.ctl main\.dust/);
      expect(block.text).toMatch(/bad blocks +4\n/);
    } finally {
      await server.close();
    }
    // the server is gone: a one-line usage error naming the source
    await expect(runStatusView(servedSource(sock), { format: 'json' }, new Sink(false))).rejects.toThrow(UsageError);
    await expect(runStatusView(servedSource(sock), { format: 'json' }, new Sink(false))).rejects.toThrow(
      /model\.sock\.ctl: cannot reach the control socket .*: no such socket/,
    );
  });
});

describe('watch intervals', () => {
  it('take seconds (1, 0.5) or a unit (500ms, 2s, 1m), from 0.1 s to a day; anything else is one line naming the option', () => {
    const cases: Array<[string, number]> = [
      ['1', 1000],
      ['0.5', 500],
      ['.25', 250],
      ['500ms', 500],
      ['2s', 2000],
      ['1.5s', 1500],
      ['1m', 60_000],
      ['100MS', 100],
      ['86400', 86_400_000],
      [' 3 ', 3000],
    ];
    for (const [text, ms] of cases) expect(parseWatchInterval(text), text).toBe(ms);
    for (const bad of ['0', '0.05', '50ms', '86401', '2d', '-1', '1e3', 'soon', '', '1 s', 'ms']) {
      expect(() => parseWatchInterval(bad), bad).toThrow(UsageError);
      expect(() => parseWatchInterval(bad, '--every'), bad).toThrow(
        `--every: must be a time from 0.1 s to 86400 s: seconds (1, 0.5) or with a unit (500ms, 2s, 1m), got '${bad}'`,
      );
    }
  });

  it('take count samples an interval apart; an abort ends the wait at once; a sample returning false ends the loop uncounted', async () => {
    const at: number[] = [];
    const t0 = Date.now();
    expect(await everyInterval({ intervalMs: 40, count: 4 }, () => void at.push(Date.now() - t0))).toBe(4);
    expect(at[3]).toBeGreaterThanOrEqual(115);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const started = Date.now();
    expect(await everyInterval({ intervalMs: 60_000, signal: ac.signal }, () => undefined)).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await everyInterval({}, () => false)).toBe(0);
  });

  it('SIGTERM and SIGINT end a piped watch cleanly: exit 0, nothing on stderr, whole lines only', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'watch-main.ts'), '--watch', '100ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      await new Promise<void>((resolve) =>
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.split('\n').length > 3) resolve();
        }),
      );
      child.kill(signal);
      expect(await exited, signal).toBe(0);
      expect(stderr, signal).toBe('');
      expect(stdout.endsWith('\n'), signal).toBe(true);
    }
  }, 60_000);
});

describe('view options', () => {
  it('parses --watch, --count and --format, refusing bad values in one line', () => {
    expect(parseStatusViewOptions({ watch: '0.5', count: '10', format: 'csv' })).toEqual({ format: 'csv', intervalMs: 500, count: 10 });
    expect(parseStatusViewOptions({})).toEqual({ format: 'human', intervalMs: undefined, count: undefined });
    expect(() => parseStatusViewOptions({ format: 'xml' })).toThrow("--format: must be one of human, json, csv, openmetrics, got 'xml'");
    expect(() => parseStatusViewOptions({ watch: '0' })).toThrow(
      "--watch: must be a time from 0.1 s to 86400 s: seconds (1, 0.5) or with a unit (500ms, 2s, 1m), got '0'",
    );
    expect(() => parseStatusViewOptions({ watch: 'soon' })).toThrow(UsageError);
    expect(() => parseStatusViewOptions({ count: '3' })).toThrow('--count: only with --watch');
    expect(() => parseStatusViewOptions({ watch: '1', count: '-1' })).toThrow("--count: must be an integer from 1 to 1000000000, got '-1'");
  });
});
