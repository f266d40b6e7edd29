/**
 * The kernel agent's time limits, on this host: a real child process that
 * stops answering (SIGSTOP: it no longer runs, as a process stuck in the
 * kernel does not) is given up on after the call's limit, and the parent goes
 * on. The kernel-lane tests (test/vm/lifecycle/) show the same against
 * calls the dm-remap-v4 module never returns from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KernelAgent, KernelAgentGone, KernelCallError, KernelCallTimeout } from '../../src/kernel/agent/client.js';
import { tmpDir } from '../helpers/tmp.js';

const tmp = tmpDir('remapsim-agent-');
afterAll(() => tmp.cleanup());

describe('kernel agent', () => {
  it('runs calls in a child, returns data and errors, and gives up on a call that does not come back', async () => {
    const file = path.join(tmp.dir, 'dev.img');
    fs.writeFileSync(file, Buffer.alloc(1 << 20));
    const agent = await KernelAgent.start({ callTimeoutMs: 5000, startTimeoutMs: 30_000 });
    const pid = await agent.call<number>({ op: 'ping' });
    expect(pid).not.toBe(process.pid);
    const h = await agent.call<number>({ op: 'dev.open', path: file, direct: false });
    const data = new Uint8Array(4096).fill(0x5a);
    expect(await agent.call<number>({ op: 'dev.write', handle: h, sector: 8, data, fua: true })).toBe(0);
    const r = await agent.call<{ status: number; data: Uint8Array }>({ op: 'dev.read', handle: h, sector: 8, bytes: 4096 });
    expect(r.status).toBe(0);
    expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
    await expect(agent.call({ op: 'dev.open', path: path.join(tmp.dir, 'missing'), direct: false })).rejects.toBeInstanceOf(KernelCallError);

    process.kill(pid, 'SIGSTOP');
    const t0 = Date.now();
    const err = await agent.call({ op: 'dev.read', handle: h, sector: 0, bytes: 512 }, { timeoutMs: 400 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelCallTimeout);
    expect((err as KernelCallTimeout).message).toBe('read at sector 0 did not return within 0.4 s');
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(agent.gone).toMatch(/did not return within 0\.4 s/);
    await expect(agent.call({ op: 'ping' })).rejects.toBeInstanceOf(KernelAgentGone);
    // abandoned with SIGKILL: a stopped process dies of it
    await new Promise((r) => setTimeout(r, 200));
    expect(() => process.kill(pid, 0)).toThrow();
  }, 60_000);
});
