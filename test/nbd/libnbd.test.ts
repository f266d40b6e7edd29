/**
 * The server-side encoders against real clients: libnbd's nbdinfo and nbdcopy
 * talk to a minimal test server built on the codec (mini-server.ts).
 * Skipped, with the reason printed, when libnbd-bin is missing.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipReason, tmpDir } from '../helpers/tmp.js';
import { type MiniServer, startMiniServer } from './mini-server.js';

const run = promisify(execFile);

function libnbdVersion(): string | undefined {
  try {
    return execFileSync('nbdinfo', ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return undefined;
  }
}

const version = libnbdVersion();
const skip = skipReason(version === undefined ? 'nbdinfo/nbdcopy (libnbd-bin) are not installed' : undefined, 'NBD codec interop tests against libnbd');
if (version) console.log(`NBD server-side interop tests run against ${version}`);

const SIZE = 1024 * 1024;

describe.skipIf(skip)('NBD server-side encoding against libnbd clients', () => {
  const tmp = tmpDir('remapsim-libnbd-');
  let srv: MiniServer;
  let uri = '';

  beforeAll(async () => {
    const disk = Buffer.alloc(SIZE);
    for (let i = 0; i < 64 * 1024; i++) disk[256 * 1024 + i] = (i * 7 + 1) & 0xff; // one data region, the rest zero
    srv = await startMiniServer(path.join(tmp.dir, 'mini.sock'), disk);
    uri = `nbd+unix:///?socket=${srv.path}`;
  });

  afterAll(async () => {
    await srv.close();
    tmp.cleanup();
  });

  it('nbdinfo reads the handshake: size, flags, block sizes, description, meta context', async () => {
    const { stdout } = await run('nbdinfo', ['--json', uri]);
    const info = JSON.parse(stdout);
    const exp = info.exports[0];
    expect(exp['export-size']).toBe(SIZE);
    expect(exp.description).toBe('mini server');
    expect([exp.block_size_minimum, exp.block_size_preferred, exp.block_size_maximum]).toEqual([1, 4096, 32 * 1024 * 1024]);
    expect(exp.is_read_only).toBe(false);
    expect(exp.can_flush).toBe(true);
    expect(exp.can_multi_conn).toBe(true);
    expect(exp.can_df).toBe(false);
    expect(info.structured).toBe(true);
    expect(exp.contexts).toContain('base:allocation');
    expect(srv.seen).toEqual(expect.arrayContaining(['client-flags', 'structured-reply', 'info', 'list-meta-context', 'go']));
  });

  it('nbdinfo --map decodes our block status chunks', async () => {
    const { stdout } = await run('nbdinfo', ['--map', '--json', uri]);
    const map = JSON.parse(stdout) as { offset: number; length: number; type: number }[];
    expect(map).toEqual([
      { offset: 0, length: 256 * 1024, type: 3, description: 'hole,zero' },
      { offset: 256 * 1024, length: 64 * 1024, type: 0, description: 'data' },
      { offset: 320 * 1024, length: SIZE - 320 * 1024, type: 3, description: 'hole,zero' },
    ]);
  });

  it('nbdcopy reads the export (data and hole chunks) and writes it back (WRITE payloads)', async () => {
    const out = path.join(tmp.dir, 'out.img');
    await run('nbdcopy', ['--no-extents', uri, out]);
    expect(fs.readFileSync(out).equals(srv.disk)).toBe(true);

    const src = Buffer.alloc(SIZE);
    for (let i = 0; i < SIZE; i += 4096) src.fill((i / 4096) & 0xff, i, i + 1000);
    const inFile = path.join(tmp.dir, 'in.img');
    fs.writeFileSync(inFile, src);
    await run('nbdcopy', ['--flush', '--request-size=65536', inFile, uri]);
    expect(srv.disk.equals(src)).toBe(true);
    expect(srv.seen).toEqual(expect.arrayContaining(['cmd-0', 'cmd-1', 'cmd-3']));
  });
});
