/**
 * The kernel agent's process: it makes the calls into the kernel (DM ioctls,
 * loop ioctls, I/O on kernel block devices) that the parent asks for, one at
 * a time, and answers each. A call the kernel never returns from leaves this
 * process stuck, not the parent: the parent gives up on it after its time
 * limit (client.ts).
 */
import * as fs from 'node:fs';
import { FileDevice } from '../../block/file-device.js';
import { DmControl } from '../dm-control.js';
import { detachLoop, loopDeviceInfo } from '../loop.js';
import { addBadSectors, buildKernelStack } from '../stack.js';
import type { AgentCall, AgentReply, AgentRequest } from './protocol.js';

let dm: DmControl | undefined;
const devices = new Map<number, FileDevice>();
let nextHandle = 1;

function control(): DmControl {
  dm ??= DmControl.open();
  return dm;
}

function device(handle: number): FileDevice {
  const d = devices.get(handle);
  if (!d) throw new Error(`no open device with handle ${handle}`);
  return d;
}

function run(req: AgentRequest): unknown {
  switch (req.op) {
    case 'ping':
      return process.pid;
    case 'dm': {
      const c = control() as unknown as Record<string, (...a: unknown[]) => unknown>;
      return c[req.method].apply(control(), req.args);
    }
    case 'stack.build':
      return buildKernelStack(req.spec, { control: control() });
    case 'stack.addBad':
      return addBadSectors(req.state, req.sectors, { control: control() });
    case 'loop.detach':
      return detachLoop(req.device);
    case 'loop.info':
      return loopDeviceInfo(req.device) ?? null;
    case 'dev.open': {
      const h = nextHandle++;
      devices.set(h, FileDevice.open(req.path, { direct: req.direct, logicalBlockSize: req.logicalBlockSize }));
      return h;
    }
    case 'dev.read': {
      const data = new Uint8Array(req.bytes);
      const status = device(req.handle).read(req.sector, data);
      return { status, data };
    }
    case 'dev.write':
      return device(req.handle).write(req.sector, req.data, { fua: req.fua });
    case 'dev.flush':
      return device(req.handle).flush();
    case 'dev.discard':
      return device(req.handle).discard(req.sector, req.count);
    case 'dev.close':
      devices.get(req.handle)?.close();
      devices.delete(req.handle);
      return null;
    case 'file.unlink':
      fs.unlinkSync(req.path);
      return null;
  }
}

process.on('message', (msg: AgentCall) => {
  let reply: AgentReply;
  try {
    reply = { id: msg.id, ok: true, value: run(msg.request) };
  } catch (err) {
    const e = err as Error & { errno?: number };
    reply = {
      id: msg.id,
      ok: false,
      error: { name: e.name ?? 'Error', message: e.message ?? String(err), errno: typeof e.errno === 'number' ? Math.abs(e.errno) : undefined },
    };
  }
  process.send!(reply);
});
process.on('disconnect', () => process.exit(0));
