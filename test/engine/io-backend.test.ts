import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { type AlignedBuffer, allocAligned } from '../../src/block/aligned.js';
import {
  createIoBackend,
  ioBackendInfo,
  IO_FDATASYNC,
  IO_READ,
  IO_WRITE,
  type IoBackend,
  IoBackendError,
  type IoBackendOptions,
} from '../../src/engine/io-backend.js';
import {
  encodeOp,
  loadNativeIo,
  NATIVE_LIB_PATH,
  type NativeIoStatus,
  nativeIoStatus,
  OP_WORDS,
  QUEUE_MODE_URING,
  resetNativeIo,
} from '../../src/sys/native-io.js';
import { skipReason } from '../helpers/tmp.js';

const EBADF = 9;
const EINVAL = 22;

/** The native library: built here first when it is missing and gcc is present. */
function nativeForTests(): NativeIoStatus {
  if (process.env.REMAPSIM_NATIVE === '0') return nativeIoStatus();
  if (!fs.existsSync(NATIVE_LIB_PATH)) {
    const cc = spawnSync(process.env.CC ?? 'gcc', ['--version'], { stdio: 'ignore' });
    if (cc.status !== 0) return { available: false, reason: 'the native library is not built and gcc is not installed' };
    const root = path.resolve(path.dirname(NATIVE_LIB_PATH), '..', '..');
    const b = spawnSync('bash', [path.join(root, 'scripts', 'build-native.sh')], { encoding: 'utf8' });
    if (b.status !== 0) return { available: false, reason: `npm run build:native failed: ${b.stderr.trim().split('\n').pop()}` };
    resetNativeIo();
  }
  return nativeIoStatus();
}

const native = nativeForTests();
const nativeMissing = native.available ? undefined : native.reason;

function uringUnavailable(): string | undefined {
  if (!native.available) return native.reason;
  const r = native.io.queueOpen(4, QUEUE_MODE_URING, 0);
  if ('errno' in r) return `io_uring_setup refused (errno ${r.errno}): seccomp, io_uring_disabled or an old kernel`;
  native.io.queueClose(r.queue);
  return undefined;
}
const uringMissing = uringUnavailable();

// O_DIRECT needs a real filesystem (tmpfs refuses it): /var/tmp, not os.tmpdir().
const dir = fs.mkdtempSync(path.join(fs.existsSync('/var/tmp') ? '/var/tmp' : os.tmpdir(), 'remapsim-io-backend-'));
const buffers: AlignedBuffer[] = [];
afterAll(() => {
  for (const b of buffers) b.free();
  fs.rmSync(dir, { recursive: true, force: true });
});

function aligned(size: number): Uint8Array {
  const b = allocAligned(size);
  buffers.push(b);
  return b.buf;
}

function fillBlock(buf: Uint8Array, block: number): void {
  for (let i = 0; i < buf.length; i += 4) {
    buf[i] = block & 0xff;
    buf[i + 1] = (block >>> 8) & 0xff;
    buf[i + 2] = (i >>> 2) & 0xff;
    buf[i + 3] = 0xa5;
  }
}

function directUnavailable(): string | undefined {
  const f = path.join(dir, 'probe-direct');
  fs.writeFileSync(f, Buffer.alloc(4096));
  try {
    fs.closeSync(fs.openSync(f, fs.constants.O_RDONLY | fs.constants.O_DIRECT));
    return undefined;
  } catch (err) {
    return `${dir} refuses O_DIRECT (${(err as NodeJS.ErrnoException).code})`;
  }
}
const directMissing = directUnavailable();

/** Runs one operation to completion and returns its result. */
function once(io: IoBackend, op: 0 | 1 | 2, fd: number, off: number, buf: Uint8Array | null, tag = 7): number {
  const tags = new Uint32Array(4);
  const res = new Int32Array(4);
  io.submit(op, fd, off, buf, tag);
  expect(io.waitAtLeast(1)).toBeGreaterThanOrEqual(1);
  expect(io.poll(4, tags, res)).toBe(1);
  expect(tags[0]).toBe(tag);
  expect(io.inFlight).toBe(0);
  return res[0];
}

interface Variant {
  name: string;
  opts: IoBackendOptions & { kind: 'js' | 'native' };
  skip: string | undefined;
}

const variants: Variant[] = [
  { name: 'js', opts: { kind: 'js' }, skip: undefined },
  { name: 'native batch', opts: { kind: 'native', mechanism: 'batch', depth: 32 }, skip: nativeMissing },
  { name: 'native io_uring', opts: { kind: 'native', mechanism: 'io_uring', depth: 32 }, skip: uringMissing },
];

for (const v of variants) {
  const skip = skipReason(v.skip, `io backend '${v.name}' tests`);
  describe.skipIf(skip)(`io backend: ${v.name}`, () => {
    const make = (): IoBackend => createIoBackend(v.opts.kind, v.opts);

    it('reports what it is', () => {
      const io = make();
      try {
        expect(io.kind).toBe(v.opts.kind);
        expect(io.mechanism).toBe(v.opts.kind === 'js' ? 'sync' : v.opts.mechanism);
        expect(io.depth).toBe(v.opts.kind === 'js' ? 1 : 32);
        expect(io.fallbackReason).toBeUndefined();
        const info = ioBackendInfo(io);
        if (io.mechanism === 'io_uring') expect(info?.sqEntries).toBeGreaterThanOrEqual(32);
        else expect(info?.sqEntries ?? 0).toBe(0);
      } finally {
        io.close();
      }
    });

    it('writes and reads back a file, and fdatasyncs it', () => {
      const file = path.join(dir, `rt-${v.name}.img`);
      const fd = fs.openSync(file, 'w+');
      const io = make();
      try {
        const out = aligned(8192);
        fillBlock(out, 3);
        expect(once(io, IO_WRITE, fd, 65536, out)).toBe(8192);
        expect(once(io, IO_FDATASYNC, fd, 0, null)).toBe(0);
        const back = aligned(8192);
        expect(once(io, IO_READ, fd, 65536, back)).toBe(8192);
        expect(back).toEqual(out);
        // A sub-view: the address is the view's, not its buffer's start.
        const part = back.subarray(4096, 4096 + 512);
        part.fill(0);
        expect(once(io, IO_READ, fd, 65536 + 4096, part)).toBe(512);
        expect(part).toEqual(out.subarray(4096, 4096 + 512));
        expect(back.subarray(4096 + 512, 4096 + 1024)).toEqual(out.subarray(4096 + 512, 4096 + 1024));
        // The hole before the data reads as zeroes.
        expect(once(io, IO_READ, fd, 0, back)).toBe(8192);
        expect(back.every((b) => b === 0)).toBe(true);
      } finally {
        io.close();
        fs.closeSync(fd);
      }
    });

    it('returns a short read at end of file, then 0', () => {
      const file = path.join(dir, `eof-${v.name}.img`);
      fs.writeFileSync(file, Buffer.alloc(40960 + 100, 0x5a));
      const fd = fs.openSync(file, 'r');
      const io = make();
      try {
        const buf = aligned(4096);
        buf.fill(0);
        expect(once(io, IO_READ, fd, 40960, buf)).toBe(100);
        expect(buf.subarray(0, 100).every((b) => b === 0x5a)).toBe(true);
        expect(buf[100]).toBe(0);
        expect(once(io, IO_READ, fd, 40960 + 4096, buf)).toBe(0);
      } finally {
        io.close();
        fs.closeSync(fd);
      }
    });

    it('returns errors as -errno: EBADF for a bad fd or a write to a read-only fd', () => {
      const file = path.join(dir, `err-${v.name}.img`);
      fs.writeFileSync(file, Buffer.alloc(8192));
      const fd = fs.openSync(file, 'r');
      const io = make();
      try {
        const buf = aligned(4096);
        expect(once(io, IO_READ, 0x7ffffff0, 0, buf)).toBe(-EBADF);
        expect(once(io, IO_WRITE, fd, 0, buf)).toBe(-EBADF);
        expect(once(io, IO_READ, fd, 0, buf)).toBe(4096);
      } finally {
        io.close();
        fs.closeSync(fd);
      }
    });

    const dskip = skipReason(directMissing, `O_DIRECT tests (${v.name})`);
    it.skipIf(dskip)('O_DIRECT: aligned buffers round-trip; misaligned offsets and buffers give -EINVAL', () => {
      const file = path.join(dir, `direct-${v.name}.img`);
      fs.writeFileSync(file, Buffer.alloc(1 << 20));
      const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_DIRECT);
      const io = make();
      try {
        const out = aligned(16384);
        fillBlock(out, 11);
        expect(once(io, IO_WRITE, fd, 4096 * 9, out)).toBe(16384);
        const back = aligned(16384);
        expect(once(io, IO_READ, fd, 4096 * 9, back)).toBe(16384);
        expect(back).toEqual(out);
        // The page cache was not involved: a buffered read sees the same bytes.
        expect(new Uint8Array(fs.readFileSync(file).subarray(4096 * 9, 4096 * 9 + 16384))).toEqual(out);

        expect(once(io, IO_READ, fd, 100, back.subarray(0, 4096))).toBe(-EINVAL);
        const mis = aligned(8192).subarray(1, 1 + 4096);
        expect(once(io, IO_READ, fd, 0, mis)).toBe(-EINVAL);
        expect(once(io, IO_WRITE, fd, 0, mis)).toBe(-EINVAL);
      } finally {
        io.close();
        fs.closeSync(fd);
      }
    });

    it('refuses misuse with a RangeError before any I/O', () => {
      const io = make();
      try {
        const buf = aligned(4096);
        expect(() => io.submit(IO_READ, 0, -1, buf, 1)).toThrow(/offset must be an integer in 0\.\.2\^53-1/);
        expect(() => io.submit(IO_READ, 0, 1.5, buf, 1)).toThrow(RangeError);
        expect(() => io.submit(IO_READ, -1, 0, buf, 1)).toThrow(/fd must be/);
        expect(() => io.submit(IO_READ, 0, 0, buf, -1)).toThrow(/tag must be/);
        expect(() => io.submit(7 as 0, 0, 0, buf, 1)).toThrow(/op must be/);
        expect(() => io.submit(IO_READ, 0, 0, null, 1)).toThrow(/buffer is required/);
        expect(io.inFlight).toBe(0);
      } finally {
        io.close();
      }
      expect(() => io.submit(IO_FDATASYNC, 0, 0, null, 1)).toThrow(/closed/);
    });
  });
}

describe('io backend selection', () => {
  it('explains why it is unavailable: disabled, or not built', () => {
    const off = loadNativeIo(NATIVE_LIB_PATH, '0');
    expect(off.available).toBe(false);
    if (!off.available) expect(off.reason).toMatch(/REMAPSIM_NATIVE=0/);
    const missing = loadNativeIo(path.join(dir, 'nope.so'), undefined);
    expect(missing.available).toBe(false);
    if (!missing.available) expect(missing.reason).toMatch(/not built.*npm run build:native/);
    const junk = path.join(dir, 'junk.so');
    fs.writeFileSync(junk, 'not an ELF file');
    const bad = loadNativeIo(junk, undefined);
    expect(bad.available).toBe(false);
    if (!bad.available) expect(bad.reason).toMatch(/did not load/);
    expect(() => createIoBackend('native', { native: missing })).toThrow(IoBackendError);
    const auto = createIoBackend('auto', { native: off });
    expect(auto.kind).toBe('js');
    expect(auto.fallbackReason).toMatch(/REMAPSIM_NATIVE=0/);
    expect(() => createIoBackend('native', { depth: 0 })).toThrow(/io depth must be an integer in 1\.\.4096, got 0/);
    expect(() => createIoBackend('fast' as 'js')).toThrow(/one of js, native, auto/);
  });
});

describe.skipIf(skipReason(nativeMissing, 'native-only io backend tests'))('io backend: native specifics', () => {
  it('refuses a JavaScript-heap buffer (the kernel may write into it after submit returns)', () => {
    const io = createIoBackend('native', { mechanism: 'batch', depth: 4 });
    try {
      expect(() => io.submit(IO_READ, 0, 0, new Uint8Array(4096), 1)).toThrow(/native memory/);
      expect(io.inFlight).toBe(0);
    } finally {
      io.close();
    }
  });

  it('koffi hands the library the memory of a view, not a copy', () => {
    if (!native.available) throw new Error(native.reason); // the describe skips without the library
    const buf = aligned(8192);
    const base = native.io.addressOf(buf.buffer);
    expect(base % 4096).toBe(0);
    expect(native.io.pointerSeenByC(buf)).toBe(base);
    expect(native.io.pointerSeenByC(buf.subarray(100))).toBe(base + 100);
  });

  it('runs a synchronous batch of mixed operations in one call (rs_batch)', () => {
    if (!native.available) throw new Error(native.reason); // the describe skips without the library
    const file = path.join(dir, 'batch.img');
    const fd = fs.openSync(file, 'w+');
    try {
      const bufs = [aligned(4096), aligned(4096), aligned(4096), aligned(4096)];
      fillBlock(bufs[0], 1);
      fillBlock(bufs[1], 2);
      const addr = (b: Uint8Array): number => native.io.addressOf(b.buffer) + b.byteOffset;
      const table = new Uint32Array(5 * OP_WORDS);
      encodeOp(table, 0, IO_WRITE, fd, 0, 4096, addr(bufs[0]), 0);
      encodeOp(table, 1, IO_WRITE, fd, 5 * 2 ** 32, 4096, addr(bufs[1]), 1); // an offset beyond 4 GiB (sparse)
      encodeOp(table, 2, IO_READ, fd, 0, 4096, addr(bufs[2]), 2);
      encodeOp(table, 3, IO_READ, fd, 5 * 2 ** 32, 4096, addr(bufs[3]), 3);
      encodeOp(table, 4, IO_READ, 0x7ffffff0, 0, 4096, addr(bufs[3]), 4);
      const res = new Int32Array(5);
      expect(native.io.batch(table, 5, res)).toBe(5);
      expect([...res]).toEqual([4096, 4096, 4096, 4096, -EBADF]);
      expect(bufs[2]).toEqual(bufs[0]);
      expect(bufs[3]).toEqual(bufs[1]);
      expect(fs.fstatSync(fd).size).toBe(5 * 2 ** 32 + 4096);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('works in a worker thread, where the engine runs it', async () => {
    const file = path.join(dir, 'worker.img');
    const data = Buffer.alloc(8192);
    fillBlock(data, 42);
    fs.writeFileSync(file, data);
    // Inline worker (from TypeScript sources it must register tsx itself, as src/util/worker.ts does).
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const fs = require('node:fs');
      import('tsx/esm/api').then((api) => { api.register(); return Promise.all([import(workerData.backend), import(workerData.aligned)]); })
        .then(([m, a]) => {
          const io = m.createIoBackend('auto', { depth: 4 });
          const b = a.allocAligned(8192);
          const fd = fs.openSync(workerData.file, 'r');
          io.submit(m.IO_READ, fd, 4096, b.buf.subarray(0, 4096), 77);
          io.submit(m.IO_READ, fd, 0, b.buf.subarray(4096), 78);
          io.waitAtLeast(2);
          const t = new Uint32Array(4), r = new Int32Array(4);
          const n = io.poll(4, t, r);
          parentPort.postMessage({ kind: io.kind, mechanism: io.mechanism, n, tags: [...t.subarray(0, n)].sort(), res: [...r.subarray(0, n)], bytes: Buffer.from(b.buf).toString('hex') });
          io.close();
          fs.closeSync(fd);
          b.free();
        })
        .catch((err) => setImmediate(() => { throw err; }));`;
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(code, {
      eval: true,
      workerData: {
        file,
        backend: new URL('../../src/engine/io-backend.ts', import.meta.url).href,
        aligned: new URL('../../src/block/aligned.ts', import.meta.url).href,
      },
    });
    const msg = await new Promise<{ kind: string; mechanism: string; n: number; tags: number[]; res: number[]; bytes: string }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`worker exited with ${code} before answering`)));
    });
    await w.terminate();
    expect(msg.kind).toBe('native');
    expect(msg.mechanism).toBe(uringMissing ? 'batch' : 'io_uring');
    expect(msg.n).toBe(2);
    expect(msg.tags).toEqual([77, 78]);
    expect(msg.res).toEqual([4096, 4096]);
    const swapped = Buffer.concat([data.subarray(4096), data.subarray(0, 4096)]);
    expect(msg.bytes).toBe(swapped.toString('hex'));
  });

  it('auto picks native when the library is there', () => {
    const io = createIoBackend('auto');
    try {
      expect(io.kind).toBe('native');
      expect(io.mechanism).toBe(uringMissing ? 'batch' : 'io_uring');
    } finally {
      io.close();
    }
  });
});

// io_uring with the default setup flags (DEFER_TASKRUN on 6.1+) and with none (completions posted without our help).
const queueVariants = [
  { label: 'io_uring', mechanism: 'io_uring', uringFlags: undefined },
  { label: 'io_uring (no setup flags)', mechanism: 'io_uring', uringFlags: 0 },
  { label: 'batch', mechanism: 'batch', uringFlags: undefined },
] as const;

for (const { label, mechanism, uringFlags } of queueVariants) {
  const why = mechanism === 'io_uring' ? uringMissing : nativeMissing;
  describe.skipIf(skipReason(why, `native ${label} queue tests`))(`native ${label} queue`, () => {
    it('at depth 32 completes every operation exactly once, with its tag and its data, never more than depth in flight', () => {
      const BLOCKS = 256;
      const file = path.join(dir, `qd-${label}.img`);
      const init = Buffer.alloc(BLOCKS * 4096);
      for (let b = 0; b < BLOCKS; b++) fillBlock(init.subarray(b * 4096, (b + 1) * 4096), b);
      fs.writeFileSync(file, init);
      const useDirect = directMissing === undefined;
      const fd = fs.openSync(file, fs.constants.O_RDONLY | (useDirect ? fs.constants.O_DIRECT : 0));
      const io = createIoBackend('native', { mechanism, uringFlags, depth: 32 });
      const region = aligned(32 * 4096);
      try {
        const TOTAL = 4000;
        const blockOf = new Int32Array(TOTAL);
        const seen = new Uint8Array(TOTAL);
        const slotOf = new Int32Array(TOTAL);
        const freeBufs: number[] = [];
        for (let i = 0; i < 32; i++) freeBufs.push(i);
        const tags = new Uint32Array(32);
        const res = new Int32Array(32);
        const expected = new Uint8Array(4096);
        const expectedWords = new Uint32Array(expected.buffer);
        const words = new Uint32Array(region.buffer, region.byteOffset, region.length / 4);
        let next = 0;
        let done = 0;
        let x = 12345;
        while (done < TOTAL) {
          while (next < TOTAL && io.inFlight < io.depth) {
            x = (x * 1103515245 + 12345) >>> 0;
            const block = x % BLOCKS;
            const slot = freeBufs.pop()!;
            blockOf[next] = block;
            slotOf[next] = slot;
            // Tags far from slot numbers, so a mix-up of tag and slot cannot pass.
            io.submit(IO_READ, fd, block * 4096, region.subarray(slot * 4096, (slot + 1) * 4096), next * 3 + 1_000_000);
            next++;
          }
          if (next < TOTAL && next % 97 === 0) expect(() => io.submit(IO_READ, fd, 0, region.subarray(0, 4096), 1)).toThrow(/queue full/);
          if (io.inFlight > 32) throw new Error(`${io.inFlight} in flight at depth 32`);
          const ready = io.waitAtLeast(1);
          expect(ready).toBeGreaterThanOrEqual(1);
          const n = io.poll(32, tags, res);
          if (n !== ready) throw new Error(`poll returned ${n}, waitAtLeast said ${ready} were ready`);
          for (let i = 0; i < n; i++) {
            const id = (tags[i] - 1_000_000) / 3;
            if (!(Number.isInteger(id) && id >= 0 && id < next)) throw new Error(`unknown tag ${tags[i]}`);
            if (seen[id]) throw new Error(`op ${id} completed twice`);
            seen[id] = 1;
            if (res[i] !== 4096) throw new Error(`op ${id}: result ${res[i]}`);
            fillBlock(expected, blockOf[id]);
            const base = slotOf[id] * 1024;
            for (let j = 0; j < 1024; j++) if (words[base + j] !== expectedWords[j]) throw new Error(`op ${id}: wrong data for block ${blockOf[id]}`);
            freeBufs.push(slotOf[id]);
          }
          done += n;
        }
        expect(seen.every((s) => s === 1)).toBe(true);
        expect(io.inFlight).toBe(0);
        expect(io.poll(32, tags, res)).toBe(0);
        expect(io.waitAtLeast(5)).toBe(0); // nothing in flight: returns at once instead of waiting forever
      } finally {
        io.close();
        fs.closeSync(fd);
      }
    });

    it('poll alone (no waitAtLeast) makes progress', () => {
      const file = path.join(dir, `pollonly-${label}.img`);
      fs.writeFileSync(file, Buffer.alloc(64 * 4096, 3));
      const fd = fs.openSync(file, fs.constants.O_RDONLY | (directMissing === undefined ? fs.constants.O_DIRECT : 0));
      const io = createIoBackend('native', { mechanism, uringFlags, depth: 16 });
      const region = aligned(16 * 4096);
      try {
        for (let i = 0; i < 16; i++) io.submit(IO_READ, fd, i * 4096, region.subarray(i * 4096, (i + 1) * 4096), i);
        const tags = new Uint32Array(16);
        const res = new Int32Array(16);
        let got = 0;
        let mask = 0;
        const deadline = Date.now() + 5000;
        while (got < 16 && Date.now() < deadline) {
          const n = io.poll(16, tags, res);
          for (let i = 0; i < n; i++) {
            expect(res[i]).toBe(4096);
            mask |= 1 << tags[i];
          }
          got += n;
        }
        expect(got).toBe(16);
        expect(mask).toBe(0xffff);
      } finally {
        io.close();
        fs.closeSync(fd);
      }
    });

    it('poll hands back at most max, keeps the rest, and close waits for what is still in flight', () => {
      const file = path.join(dir, `part-${label}.img`);
      fs.writeFileSync(file, Buffer.alloc(64 * 4096, 1));
      const fd = fs.openSync(file, 'r');
      const io = createIoBackend('native', { mechanism, uringFlags, depth: 8 });
      const region = aligned(8 * 4096);
      try {
        for (let i = 0; i < 8; i++) io.submit(IO_READ, fd, i * 4096, region.subarray(i * 4096, (i + 1) * 4096), 100 + i);
        expect(io.flush()).toBe(8);
        expect(io.flush()).toBe(0);
        expect(io.waitAtLeast(8)).toBe(8);
        const tags = new Uint32Array(8);
        const res = new Int32Array(8);
        const got: number[] = [];
        expect(io.poll(3, tags, res)).toBe(3);
        got.push(...tags.subarray(0, 3));
        // Refill three while five are still waiting to be polled.
        for (let i = 0; i < 3; i++) io.submit(IO_READ, fd, (8 + i) * 4096, region.subarray(i * 4096, (i + 1) * 4096), 200 + i);
        expect(io.inFlight).toBe(8);
        expect(io.waitAtLeast(8)).toBe(8);
        expect(io.poll(8, tags, res)).toBe(8);
        got.push(...tags);
        expect(got.sort((a, b) => a - b)).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 200, 201, 202]);
        for (let i = 0; i < 4; i++) io.submit(IO_READ, fd, i * 4096, region.subarray(i * 4096, (i + 1) * 4096), i);
        io.flush();
      } finally {
        io.close(); // four reads are in flight: close must wait for them, not hang or crash
        fs.closeSync(fd);
      }
      expect(io.inFlight).toBe(0);
    });
  });
}
