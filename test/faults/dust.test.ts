import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EINVAL, EIO, OK, type BlockDevice } from '../../src/block/device.js';
import { FileDevice } from '../../src/block/file-device.js';
import { MemoryDevice } from '../../src/block/memory-device.js';
import { DustDevice } from '../../src/faults/dust.js';
import { KernelMessageError, KernelTableError, type FaultLogLevel } from '../../src/faults/errors.js';
import { tmpDir } from '../helpers/tmp.js';
import { defineDustSpec, type DustGeometry, type DustHarness, type SpecRunner } from './dust-spec.js';

const vitestRunner: SpecRunner = {
  describe,
  it,
  beforeEach,
  afterEach,
  assert: { equal: (a, e, m) => expect(a, m).toBe(e), deepEqual: (a, e, m) => expect(a, m).toEqual(e) },
};

function harnessFor(inner: BlockDevice, g: DustGeometry): DustHarness {
  const dust = DustDevice.fromTable(inner, [inner.name, '0', String(g.blockSize)]);
  const spb = g.blockSize / 512;
  return {
    message: (...args) => dust.message(args),
    read: (block, count = 1) => {
      const data = new Uint8Array(count * g.blockSize);
      const status = dust.read(block * spb, data);
      return { status, data };
    },
    write: (block, data) => dust.write(block * spb, data),
    status: () => dust.statusParams(),
    table: () => dust.tableParams(),
    close: () => dust.close(),
  };
}

defineDustSpec(vitestRunner, 'DustDevice over a MemoryDevice', (g) =>
  harnessFor(new MemoryDevice({ sectors: (g.blocks * g.blockSize) / 512, name: 'mem0' }), g),
);

const tmp = tmpDir('remapsim-dust-');
afterAll(() => tmp.cleanup());
let fileNo = 0;
defineDustSpec(
  vitestRunner,
  'DustDevice over a FileDevice',
  (g) => {
    const file = path.join(tmp.dir, `dust-${fileNo++}.img`);
    FileDevice.createSparse(file, g.blocks * g.blockSize);
    return harnessFor(FileDevice.open(file), g);
  },
  [{ blockSize: 4096, blocks: 16 }],
);

function mem(sectors: number, lbs: 512 | 4096 = 512): MemoryDevice {
  return new MemoryDevice({ sectors, logicalBlockSize: lbs, name: 'mem0' });
}

function tableError(fn: () => unknown): KernelTableError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KernelTableError) return err;
    throw err;
  }
  throw new Error('expected a KernelTableError');
}

function messageError(fn: () => unknown): KernelMessageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KernelMessageError) return err;
    throw err;
  }
  throw new Error('expected a KernelMessageError');
}

describe('DustDevice table line', () => {
  it.each([
    [['mem0', '0'], 'Invalid argument count'],
    [['mem0', '0', '512', 'x'], 'Invalid argument count'],
    [['mem0', '0', 'abc'], 'Invalid block size parameter'],
    [['mem0', '0', '0'], 'Invalid block size parameter'],
    [['mem0', '0', '-512'], 'Invalid block size parameter'],
    [['mem0', '0', '0x200'], 'Invalid block size parameter'],
    [['mem0', '0', '4294967296'], 'Invalid block size parameter'],
    [['mem0', '0', '256'], 'Block size must be at least 512'],
    [['mem0', '0', '1536'], 'Block size must be a power of 2'],
    [['mem0', '0', '2147483648'], 'Block size is too large'],
    [['mem0', '0', '2097152'], 'Block size is too large'],
    [['mem0', 'x', '512'], 'Invalid device offset sector'],
    [['mem0', '-1', '512'], 'Invalid device offset sector'],
    [['mem0', '4097', '512'], 'Device too small for target'],
  ])('%j is refused with "%s" (EINVAL)', (args, text) => {
    const err = tableError(() => DustDevice.fromTable(mem(2048), args));
    expect(err.kernelText).toBe(text);
    expect(err.message.startsWith(text)).toBe(true);
    expect(err.errno).toBe(EINVAL);
  });

  it('checks block size against the target length and the 1 GiB limit', () => {
    expect(tableError(() => DustDevice.fromTable(mem(8), ['m', '0', '8192'])).kernelText).toBe('Block size is too large');
    expect(DustDevice.fromTable(mem(16), ['m', '0', '8192']).blockSize).toBe(8192);
    expect(DustDevice.fromTable(mem(2097152 * 2), ['m', '0', '1073741824']).sectorsPerBlock).toBe(2097152);
  });

  it('accepts what kstrtouint and sscanf accept', () => {
    expect(DustDevice.fromTable(mem(64), ['m', '0', '+512']).blockSize).toBe(512);
    expect(DustDevice.fromTable(mem(64), ['m', '0', '512\n']).blockSize).toBe(512);
    expect(DustDevice.fromTable(mem(64), ['m', '008', '0512']).offset).toBe(8);
  });

  it('prints table and status lines that parse back', () => {
    const dust = DustDevice.fromTable(mem(2048), ['/dev/loop7', '1024', '4096']);
    expect(dust.sectors).toBe(1024);
    expect(dust.table()).toBe('0 1024 dust /dev/loop7 1024 4096');
    expect(dust.status()).toBe('0 1024 dust /dev/loop7 bypass verbose');
    const again = DustDevice.fromTableLine(mem(2048), dust.table());
    expect(again.table()).toBe(dust.table());
    dust.message(['enable']);
    dust.message(['quiet']);
    expect(dust.status()).toBe('0 1024 dust /dev/loop7 fail_read_on_bad_block quiet');
    expect(DustDevice.fromTableLine(mem(2048), '0 512 dust d 0 512').sectors).toBe(512);
    expect(tableError(() => DustDevice.fromTableLine(mem(2048), '0 512 flakey d 0 1 1')).message).toMatch(/expected 'dust'/);
  });
});

describe('DustDevice messages beyond the shared spec', () => {
  it('logs what the kernel logs, and quiet silences only the add/remove lines', () => {
    const lines: string[] = [];
    const dust = DustDevice.fromTable(mem(1024), ['m', '0', '4096'], { log: (level: FaultLogLevel, line) => lines.push(`${level}: ${line}`) });
    dust.message(['addbadblock', '5', '2']);
    dust.message(['enable']);
    expect(() => dust.message(['addbadblock', '5'])).toThrow();
    dust.message(['removebadblock', '5']);
    dust.message(['quiet']);
    dust.message(['addbadblock', '6']);
    expect(() => dust.message(['removebadblock', '9'])).toThrow();
    dust.message(['disable']);
    expect(lines).toEqual([
      'info: dust_add_block: badblock added at block 5 with write fail count 2',
      'info: enabling read failures on bad sectors',
      'error: dust_add_block: block 5 already in badblocklist',
      'info: dust_remove_block: badblock removed at block 5',
      'info: disabling read failures on bad sectors',
    ]);
  });

  it('logs a removal by write with the block number divided by sectors-per-block once more', () => {
    const lines: string[] = [];
    const dust = DustDevice.fromTable(mem(1024), ['m', '0', '4096'], { log: (_l, line) => lines.push(line) });
    dust.message(['addbadblock', '17']);
    dust.message(['enable']);
    expect(dust.write(17 * 8, new Uint8Array(4096))).toBe(OK);
    expect(lines.at(-1)).toBe('block 2 removed from badblocklist by write');
  });

  it('carries the kernel log line of each failure', () => {
    const dust = DustDevice.fromTable(mem(64), ['m', '0', '512']);
    expect(messageError(() => dust.message(['frobnicate'])).kernelLog).toBe("unrecognized message 'frobnicate' received");
    expect(messageError(() => dust.message(['queryblock', '1', '2'])).kernelLog).toBe("unrecognized message 'queryblock' received");
    expect(messageError(() => dust.message(['addbadblock'])).kernelLog).toBe('addbadblock requires an additional argument');
    expect(messageError(() => dust.message(['addbadblock', '65'])).kernelLog).toBe('selected block value out of range');
    expect(messageError(() => dust.message(['addbadblock', '1', '256'])).kernelLog).toBe('selected write fail count out of range');
    expect(messageError(() => dust.message(['a', 'b', 'c', 'd'])).kernelLog).toBe("invalid number of arguments '4'");
    expect(messageError(() => dust.message(['addbadblock', 'x'])).kernelLog).toBeUndefined();
    expect(messageError(() => dust.message([])).errno).toBe(EINVAL);
    const e = messageError(() => dust.message(['addbadblock', '']));
    expect(e.errno).toBe(EINVAL);
    expect(e.message).toMatch(/not a decimal block number/);
  });

  it('parses numbers as the kernel sscanf does: modulo 2^64, counts truncated to 32 bits', () => {
    const dust = DustDevice.fromTable(mem(64), ['m', '0', '512']);
    expect(dust.message(['addbadblock', '18446744073709551617'])).toBe('');
    expect(dust.message(['addbadblock', '2', '4294967297'])).toBe('');
    expect(dust.listBadBlocks()).toEqual([1, 2]);
    expect(dust.writeFailCount(2)).toBe(1);
  });

  it('typed API: same checks and effects as the messages', () => {
    const dust = new DustDevice(mem(256), { blockSize: 1024 });
    expect(dust.maxMessageBlock).toBe(128);
    dust.addBadBlock(3, 1);
    dust.addBadBlock(128);
    expect(messageError(() => dust.addBadBlock(129)).kernelLog).toBe('selected block value out of range');
    expect(messageError(() => dust.addBadBlock(4, 256)).kernelLog).toBe('selected write fail count out of range');
    expect(messageError(() => dust.removeBadBlock(5)).kernelLog).toBe('dust_remove_block: block 5 not found in badblocklist');
    expect(dust.message(['listbadblocks'])).toBe('3\n128\n');
    dust.enable();
    expect(dust.read(6, new Uint8Array(1024))).toBe(EIO);
    expect(dust.write(6, new Uint8Array(1024))).toBe(EIO);
    expect(dust.write(6, new Uint8Array(1024))).toBe(OK);
    expect(dust.isBadBlock(3)).toBe(false);
    expect(dust.clearBadBlocks()).toBe(1);
    expect(() => new DustDevice(mem(256), { blockSize: 1000 })).toThrow('Block size must be a power of 2');
  });
});

describe('DustDevice I/O beyond the shared spec', () => {
  it('numbers blocks on the underlying device: the table offset shifts them', () => {
    const inner = mem(2048);
    const dust = DustDevice.fromTable(inner, ['m', '8', '4096']);
    dust.message(['addbadblock', '1']);
    dust.message(['enable']);
    expect(dust.read(0, new Uint8Array(4096))).toBe(EIO);
    expect(dust.read(8, new Uint8Array(4096))).toBe(OK);
    // the message range is the underlying device's size in blocks
    expect(dust.maxMessageBlock).toBe(256);
    expect(dust.message(['addbadblock', '256'])).toBe('');
  });

  it('with an offset that is not block-aligned, each block-sized piece is looked up by its first sector', () => {
    const dust = DustDevice.fromTable(mem(2048), ['m', '4', '4096']);
    dust.message(['addbadblock', '1']);
    dust.message(['enable']);
    // target sectors 0..7 are underlying 4..11: one piece, looked up as block 0
    expect(dust.read(0, new Uint8Array(4096))).toBe(OK);
    // target sectors 8..15 are underlying 12..19: block 1
    expect(dust.read(8, new Uint8Array(4096))).toBe(EIO);
    expect(dust.read(4, new Uint8Array(4096))).toBe(EIO);
  });

  it('an empty flush looks up the block at the target start, like a write', () => {
    const dust = DustDevice.fromTable(mem(64), ['m', '0', '512']);
    dust.message(['addbadblock', '0', '1']);
    expect(dust.flush()).toBe(OK);
    dust.message(['enable']);
    expect(dust.flush()).toBe(EIO);
    expect(dust.isBadBlock(0)).toBe(true);
    expect(dust.flush()).toBe(OK);
    expect(dust.isBadBlock(0)).toBe(false);
  });

  it('a discard takes the write path for its first block only', () => {
    const inner = mem(64);
    const dust = DustDevice.fromTable(inner, ['m', '0', '512']);
    inner.write(0, new Uint8Array(64 * 512).fill(0xaa));
    dust.message(['addbadblock', '2', '1']);
    dust.message(['addbadblock', '5', '1']);
    dust.message(['enable']);
    expect(dust.discard(2, 4)).toBe(EIO);
    expect(dust.writeFailCount(2)).toBe(0);
    expect(dust.discard(3, 4)).toBe(OK);
    expect(dust.writeFailCount(5)).toBe(1);
    const out = new Uint8Array(512);
    inner.read(5, out);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it('works with a 4096-byte logical block size below 512-byte dust blocks', () => {
    const dust = DustDevice.fromTable(mem(256, 4096), ['m', '0', '512']);
    expect(dust.logicalBlockSize).toBe(4096);
    dust.message(['addbadblock', '13']);
    dust.message(['enable']);
    expect(dust.read(8, new Uint8Array(4096))).toBe(EIO);
    expect(dust.read(16, new Uint8Array(4096))).toBe(OK);
    expect(() => dust.read(4, new Uint8Array(4096))).toThrow(/aligned/);
  });

  it('stacks: an inner device error reaches the caller', () => {
    const inner = DustDevice.fromTable(mem(64), ['m', '0', '512']);
    inner.message(['addbadblock', '9']);
    inner.message(['enable']);
    const outer = DustDevice.fromTable(inner, ['inner', '0', '512']);
    outer.message(['enable']);
    expect(outer.read(8, new Uint8Array(1024))).toBe(EIO);
    expect(outer.read(10, new Uint8Array(1024))).toBe(OK);
  });

  it('a large request over clean space stays fast with a long list elsewhere', () => {
    const sectors = 1 << 24; // 8 GiB, sparse
    const dust = DustDevice.fromTable(new MemoryDevice({ sectors, name: 'big' }), ['big', '0', '512']);
    for (let b = 0; b < 100_000; b++) dust.addBadBlock(1_000_000 + b * 7);
    dust.enable();
    const buf = new Uint8Array(1 << 20);
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) expect(dust.read(i * 2048, buf)).toBe(OK);
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(2000);
    expect(dust.read(1_000_000 - 1024, buf)).toBe(EIO);
  });
});
