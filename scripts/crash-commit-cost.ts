/**
 * What a durable remap costs on files: the safe store's commit (data write,
 * barrier flush, log block to A and B, flush) against a plain write and a
 * bare fdatasync, for both durability modes.
 *
 *   tsx scripts/crash-commit-cost.ts [--dir DIR] [--n 200]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { OK } from '../src/block/device.js';
import { FileDevice } from '../src/block/file-device.js';
import { DustDevice } from '../src/faults/dust.js';
import { openSafeModel } from '../src/stack/models.js';
import type { SafeDurability } from '../src/metadata/safe-store.js';

const { values } = parseArgs({ options: { dir: { type: 'string' }, n: { type: 'string', default: '200' } } });
const n = Number(values.n);
if (!Number.isInteger(n) || n < 10 || n > 100000) {
  process.stderr.write(`--n must be an integer in [10, 100000], got '${values.n}'\n`);
  process.exit(2);
}
const dir = fs.mkdtempSync(path.join(values.dir ?? os.tmpdir(), 'remapsim-commit-'));

function stats(us: number[]): string {
  const s = [...us].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5).toFixed(0)} µs, p90 ${q(0.9).toFixed(0)} µs, p99 ${q(0.99).toFixed(0)} µs`;
}

function time(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1000;
}

try {
  const mainPath = path.join(dir, 'main.img');
  const sparePath = path.join(dir, 'spare.img');
  FileDevice.createSparse(mainPath, 64 << 20);
  const buf = new Uint8Array(512).fill(0x42);
  const out: string[] = [`commit cost on ${dir} (${n} remaps each):`];
  for (const durability of ['flush', 'fua'] as SafeDurability[]) {
    fs.rmSync(sparePath, { force: true });
    FileDevice.createSparse(sparePath, 64 << 20);
    const main = new DustDevice(FileDevice.open(mainPath), { log: () => {} });
    main.enable();
    const spare = FileDevice.open(sparePath);
    const scratchPath = path.join(dir, 'scratch.img');
    FileDevice.createSparse(scratchPath, 1 << 20);
    const scratch = FileDevice.open(scratchPath);
    const { target, store } = openSafeModel(main, spare, { durability });
    const remap: number[] = [];
    const plain: number[] = [];
    const sync: number[] = [];
    for (let i = 0; i < n; i++) {
      main.addBadBlock(i, 1);
      remap.push(
        time(() => {
          if (target.write(i, buf) !== OK) throw new Error('remapped write failed');
        }),
      );
      plain.push(time(() => target.write(100_000 + i, buf)));
      sync.push(
        time(() => {
          scratch.write(i % 2048, buf);
          scratch.flush();
        }),
      );
    }
    const s = store.stats();
    out.push(
      `  durability '${durability}': remapped write ${stats(remap)} (${(s.flushes / n).toFixed(1)} store flushes + ${durability === 'fua' ? '2 FUA writes' : '0 FUA writes'} per commit, ${s.checkpoints} checkpoints)`,
      `    plain write ${stats(plain)}; a 512-byte write + fdatasync ${stats(sync)}`,
    );
    target.close();
    scratch.close();
  }
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
