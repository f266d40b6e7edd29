/**
 * `remapsim serve` stops the same orderly way on SIGINT, SIGTERM and SIGHUP
 * (issue 17, finding 9: SIGHUP used to kill it with status 129, unflushed,
 * its sockets left behind): clients finished and disconnected, the target
 * flushed and closed, both sockets removed, exit 0.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDevice } from '../../src/block/file-device.js';
import { spawnCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { TestNbdClient } from './client.js';
import { pattern, until } from './serve-helpers.js';

const tmp = tmpDir('remapsim-serve-sig-');
afterAll(() => tmp.cleanup());

const MAIN_BYTES = 16 << 20;

describe('remapsim serve: stop signals', () => {
  it.each(['SIGHUP', 'SIGINT', 'SIGTERM'] as const)(
    '%s: clients finished, acknowledged writes kept, target flushed and closed, sockets removed, exit 0',
    async (signal) => {
      const main = path.join(tmp.dir, `${signal}-main.img`);
      const spare = path.join(tmp.dir, `${signal}-spare.img`);
      const sock = path.join(tmp.dir, `${signal}.sock`);
      FileDevice.createSparse(main, MAIN_BYTES);
      FileDevice.createSparse(spare, 4 << 20);
      const child = spawnCli(['serve', '--socket', sock, '--table', `0 ${MAIN_BYTES / 512} remap ${main} ${spare}`]);
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (out += d));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, sig) => resolve({ code, signal: sig })),
      );
      try {
        await until(() => out.includes('Stop with') || child.exitCode !== null, 30_000, 'remapsim serve to listen');
        expect(out).toContain('Stop with Ctrl-C, SIGTERM or SIGHUP');

        const writer = await TestNbdClient.connect(sock);
        await writer.go('');
        const data = pattern(256 * 1024, 17);
        expect((await writer.write(1 << 20, data)).error).toBe(0); // acknowledged, not flushed by the client
        const idle = await TestNbdClient.connect(sock);
        await idle.go('');

        child.kill(signal);
        expect(await exited).toEqual({ code: 0, signal: null });
        expect(out).toMatch(new RegExp(`${signal}: stopped after 2 connection\\(s\\), 1 request\\(s\\); flush OK; target closed`));
        await Promise.all([writer.closed, idle.closed]); // both were disconnected by the server
        expect(fs.existsSync(sock)).toBe(false);
        expect(fs.existsSync(`${sock}.ctl`)).toBe(false);
        const back = Buffer.alloc(data.length);
        const fd = fs.openSync(main, 'r');
        fs.readSync(fd, back, 0, back.length, 1 << 20);
        fs.closeSync(fd);
        expect(back.equals(data)).toBe(true);
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    },
    60_000,
  );
});
