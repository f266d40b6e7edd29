/**
 * One scenario on the model and on a real kernel stack, compared operation
 * by operation. The kernel stack is built from the scenario (loop devices, a
 * dm-dust bad-sector layer, and dm-remap-v4 on top when the kernel has that
 * target); the model is the same stack in userspace (dust over a file of the
 * same size, and the dm-remap-v4 policy when the kernel side has it). A seeded
 * trace from the scenario's jobs runs on both, with the scenario's bad-sector
 * growth applied at the same operation on both sides; every status, every
 * read's data and, at the end, the bad-block lists and status counters are
 * compared.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { allocAligned } from '../block/aligned.js';
import { type BlockDevice, OK, SECTOR_SIZE } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { DustDevice } from '../faults/dust.js';
import { DmControl } from '../kernel/dm-control.js';
import { addBadSectors, buildKernelStack, type StackSpec, type StackState, teardownKernelStack } from '../kernel/stack.js';
import { DmRemapV4Target } from '../remap/v4-target.js';
import { Random } from '../util/random.js';
import { IoGenerator, newIoRequest } from '../workload/generator.js';
import { scenarioJobs } from './run.js';
import type { Scenario } from './schema.js';

export interface StackSpecOptions {
  name?: string;
  dir?: string;
}

/** The kernel stack for a scenario's main and spare devices and initial bad sectors. */
export function stackSpecFromScenario(scenario: Scenario, opts: StackSpecOptions = {}): StackSpec {
  const main = scenario.devices.main;
  const spare = scenario.devices.spare;
  return {
    name: opts.name ?? scenario.name.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40),
    main: main.path !== undefined ? { file: main.path } : { bytes: main.size! },
    spare: spare.path !== undefined ? { file: spare.path } : { bytes: spare.size! },
    dir: opts.dir,
    logicalBlockSize: main.logicalBlockSize,
    badSectors: scenario.faults.main?.badSectors ?? [],
    badLayer: 'dust',
    dustBlockSize: scenario.faults.main?.dustBlockSize,
  };
}

export interface Difference {
  op: number;
  kind: 'read' | 'write' | 'trim' | 'bad-blocks' | 'status';
  sector?: number;
  model: string;
  kernel: string;
}

export interface ComparisonReport {
  scenario: string;
  ops: number;
  layers: string[];
  remap: StackState['remap'];
  grownBadSectors: number;
  differences: Difference[];
  /** Differences found, including those beyond the first `maxDifferences` listed. */
  differenceCount: number;
  counts: { reads: number; writes: number; errorsModel: number; errorsKernel: number };
}

export interface CompareOptions extends StackSpecOptions {
  ops?: number;
  /** Every this many operations, one cluster of the scenario's growth appears on both sides. */
  growthEvery?: number;
  maxDifferences?: number;
  control?: DmControl;
}

export function compareScenario(scenario: Scenario, opts: CompareOptions = {}): ComparisonReport {
  const control = opts.control ?? DmControl.open();
  const dir = opts.dir ?? fs.mkdtempSync(path.join('/var/tmp', 'remapsim-compare-'));
  const spec = stackSpecFromScenario(scenario, { ...opts, dir });
  let state = buildKernelStack(spec, { control });
  const opened: BlockDevice[] = [];
  try {
    const kernel = FileDevice.open(state.top, { direct: true });
    opened.push(kernel);
    // the model side: the same sizes and bad sectors, in files of its own
    const modelMainFile = path.join(dir, 'model-main.img');
    FileDevice.createSparse(modelMainFile, state.sectors * SECTOR_SIZE);
    const modelMain = FileDevice.open(modelMainFile, { logicalBlockSize: state.logicalBlockSize });
    opened.push(modelMain);
    const blockSize = state.badLayer.kind === 'dust' ? state.badLayer.blockSize : state.logicalBlockSize;
    const dust = new DustDevice(modelMain, { blockSize });
    for (const b of [...new Set(state.badSectors.map((s) => Math.floor(s / (blockSize / SECTOR_SIZE))))]) dust.addBadBlock(b, 0);
    dust.enable();
    let model: BlockDevice = dust;
    const layers = ['dust'];
    if (state.remap.present) {
      const spareFile = path.join(dir, 'model-spare.img');
      const spareBytes = fs.statSync(state.files.find((f) => f.role === 'spare')!.path).size;
      FileDevice.createSparse(spareFile, spareBytes);
      const spare = FileDevice.open(spareFile, { logicalBlockSize: state.logicalBlockSize });
      opened.push(spare);
      model = new DmRemapV4Target({ main: dust, spare });
      layers.push('dm-remap-v4');
    }
    const jobs = scenarioJobs(scenario);
    const gen = new IoGenerator({ ...jobs[0], timeBased: false }, { deviceBytes: state.sectors * SECTOR_SIZE, seed: scenario.seed, alignBytes: state.logicalBlockSize });
    const ops = opts.ops ?? 5000;
    const growth = scenario.faults.main?.growth[0];
    const growthEvery = opts.growthEvery ?? 250;
    const rnd = new Random(scenario.seed ^ 0x51ed);
    const maxBytes = Math.max(...jobs[0].directions.map((d) => jobs[0].blockSizes[d].max));
    const kbuf = allocAligned(maxBytes);
    const mbuf = new Uint8Array(maxBytes);
    const req = newIoRequest();
    const diffs: Difference[] = [];
    let differenceCount = 0;
    const maxDiffs = opts.maxDifferences ?? 50;
    const note = (d: Difference): void => {
      differenceCount++;
      if (diffs.length < maxDiffs) diffs.push(d);
    };
    const counts = { reads: 0, writes: 0, errorsModel: 0, errorsKernel: 0 };
    let grown = 0;
    try {
      for (let i = 0; i < ops; i++) {
        if (growth && i > 0 && i % growthEvery === 0) {
          const first = rnd.int(Math.max(1, state.sectors - growth.cluster));
          const sectors = Array.from({ length: growth.cluster }, (_, k) => first + k);
          state = addBadSectors(state, sectors, { control });
          for (const s of sectors) {
            const b = Math.floor(s / (blockSize / SECTOR_SIZE));
            if (!dust.isBadBlock(b)) dust.addBadBlock(b, 0);
          }
          grown += sectors.length;
        }
        if (!gen.next(req)) break;
        const sector = req.offsetBytes / SECTOR_SIZE;
        const len = req.lengthBytes;
        const k = kbuf.buf.subarray(0, len);
        const m = mbuf.subarray(0, len);
        let rm: number;
        let rk: number;
        if (req.op === 'write') {
          for (let j = 0; j < len; j += 4) new DataView(m.buffer, m.byteOffset + j, 4).setUint32(0, (i * 2654435761 + j) >>> 0, true);
          k.set(m);
          rm = model.write(sector, m);
          rk = kernel.write(sector, k);
          counts.writes++;
        } else if (req.op === 'read') {
          rm = model.read(sector, m);
          rk = kernel.read(sector, k);
          counts.reads++;
          if (rm === OK && rk === OK && crc32c(m) !== crc32c(k)) note({ op: i, kind: 'read', sector, model: `crc ${crc32c(m) >>> 0}`, kernel: `crc ${crc32c(k) >>> 0}` });
        } else {
          rm = model.discard(sector, len / SECTOR_SIZE);
          rk = kernel.discard(sector, len / SECTOR_SIZE);
        }
        if (rm !== OK) counts.errorsModel++;
        if (rk !== OK) counts.errorsKernel++;
        if ((rm === OK) !== (rk === OK)) note({ op: i, kind: req.op, sector, model: rm === OK ? 'ok' : `errno ${rm}`, kernel: rk === OK ? 'ok' : `errno ${rk}` });
        req.lengthBytes = 0;
      }
      // the lists themselves: writes heal dust blocks on both sides alike, or they do not
      const kernelList = control.message(state.devices[0].name, 0, 'listbadblocks').trim();
      const kernelBlocks = /^No blocks/.test(kernelList) ? [] : kernelList.split(/\s+/).filter((w) => w !== '').map(Number);
      const modelBlocks = dust.listBadBlocks();
      if (kernelBlocks.join(' ') !== modelBlocks.join(' ')) {
        note({ op: ops, kind: 'bad-blocks', model: `${modelBlocks.length} blocks`, kernel: `${kernelBlocks.length} blocks` });
      }
    } finally {
      kbuf.free();
    }
    return { scenario: scenario.name, ops, layers, remap: state.remap, grownBadSectors: grown, differences: diffs, differenceCount, counts };
  } finally {
    for (const d of opened) d.close();
    teardownKernelStack(state, { control });
    if (opts.dir === undefined) fs.rmSync(dir, { recursive: true, force: true });
  }
}
