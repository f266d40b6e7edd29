/**
 * Where a scenario's new backing files (main.img, spare.img) go.
 *
 * Without a work directory: a temporary one (remapsim-<scenario>-XXXXXX in
 * the system temp directory), removed when the run ends, also when a signal
 * ends it or the process exits early (the exit hook below).
 *
 * With one (--workdir D, or the scenario's `workdir`): D, created when
 * missing, holds the images and remapsim-workdir.json, the record of what
 * made them (scenario, policy, each image's size, block size and inode). A
 * later run recognises its images and reuses them as existing devices whose
 * earlier content is unknown: the oracle does not judge units the new run
 * did not write (priorContent 'unknown'), and the spare's metadata is loaded
 * as the target would load it. `fresh` removes the images and the record
 * first. Images remapsim has no record of, images replaced since, or ones of
 * another size, block size or policy are refused, never written to.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeFsError } from '../block/file-device.js';
import { formatSize } from '../util/format-size.js';
import { fileIdOf, statIfAny } from '../util/file-identity.js';
import { type Policy, type Scenario, ScenarioError } from './schema.js';

export type ImageRole = 'main' | 'spare';

const RECORD = 'remapsim-workdir.json';
const FORMAT = 'remapsim-workdir';

interface ImageRecord {
  file: string;
  bytes: number;
  logicalBlockSize: number;
  dev: number;
  ino: number;
}

interface WorkdirRecord {
  format: typeof FORMAT;
  version: 1;
  scenario: string;
  policy: Policy;
  createdAt: string;
  lastRunAt: string;
  images: Partial<Record<ImageRole, ImageRecord>>;
}

export interface Workdir {
  dir: string;
  /** A temporary directory this run made (and removes). */
  temporary: boolean;
  /** The image of a role the scenario sizes, and whether an earlier run's image is there to reuse. */
  image(role: ImageRole): { file: string; reuse: boolean };
  /** Records a role's image, once it is made or reused (a given work directory only). */
  record(role: ImageRole, image: { bytes: number; logicalBlockSize: number }): void;
  /** Removes a temporary directory; a given one stays. */
  close(): void;
}

// ------------------------------------------------------------------ temporary directories

const temporary = new Set<string>();
let exitHook = false;

/** Removes the temporary work directories still there: at exit, however the process ends short of a kill. */
export function removeTemporaryWorkdirs(): void {
  for (const dir of temporary) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // the process is ending: nothing better to do
    }
  }
  temporary.clear();
}

function makeTemporary(scenarioName: string): string {
  const safeName = scenarioName.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `remapsim-${safeName}-`));
  temporary.add(dir);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', removeTemporaryWorkdirs);
  }
  return dir;
}

// ------------------------------------------------------------------ checks

/** The roles whose backing file the run makes (a size, not a path). */
function sizedRoles(scenario: Scenario): ImageRole[] {
  return (['main', 'spare'] as const).filter((r) => scenario.devices[r].size !== undefined);
}

function readRecord(dir: string, what: string, fresh: string): WorkdirRecord | undefined {
  const file = path.join(dir, RECORD);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ScenarioError(`${what}: cannot read ${file}: ${describeFsError(err)}`);
  }
  try {
    const r = JSON.parse(text) as WorkdirRecord;
    if (r?.format === FORMAT && r.version === 1 && typeof r.images === 'object' && r.images !== null) return r;
  } catch {
    // refused below
  }
  throw new ScenarioError(`${what}: ${file} is not a remapsim work directory record; ${fresh}`);
}

/** What `dir` holds for this scenario and policy; throws a ScenarioError naming what cannot be reused. Changes nothing. */
function inspect(dir: string, scenario: Scenario, policy: Policy, what: string, fresh: string): Record<ImageRole, boolean> {
  const reuse = { main: false, spare: false };
  const st = statIfAny(dir);
  if (st === undefined) {
    checkCreatable(dir, what);
    return reuse;
  }
  if (!st.isDirectory()) throw new ScenarioError(`${what}: ${dir} is not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw new ScenarioError(`${what}: cannot write in ${dir}: ${describeFsError(err)}`);
  }
  const record = readRecord(dir, what, fresh);
  for (const role of sizedRoles(scenario)) {
    const file = path.join(dir, `${role}.img`);
    const id = fileIdOf(file);
    if (id === undefined) continue;
    const img = record?.images[role];
    if (!record || !img) {
      throw new ScenarioError(
        `${what}: ${file} exists, but remapsim has no record of making it (no ${RECORD} naming it); ${fresh}, or name it as devices.${role}.path to use it as it is`,
      );
    }
    if (img.dev !== id.dev || img.ino !== id.ino) throw new ScenarioError(`${what}: ${file} was replaced since remapsim made it (another inode); ${fresh}`);
    const spec = scenario.devices[role];
    if (img.bytes !== spec.size) {
      throw new ScenarioError(
        `${what}: ${file} is ${formatSize(img.bytes)} from an earlier run; devices.${role}.size asks for ${formatSize(spec.size!)}: ${fresh}`,
      );
    }
    if (img.logicalBlockSize !== spec.logicalBlockSize) {
      throw new ScenarioError(
        `${what}: ${file} has ${img.logicalBlockSize}-byte blocks from an earlier run; devices.${role}.logicalBlockSize is ${spec.logicalBlockSize}: ${fresh}`,
      );
    }
    if (record.policy !== policy)
      throw new ScenarioError(`${what}: the images in ${dir} hold the ${record.policy} policy's metadata from an earlier run, not ${policy}'s; ${fresh}`);
    reuse[role] = true;
  }
  return reuse;
}

function checkCreatable(dir: string, what: string): void {
  let parent = path.dirname(path.resolve(dir));
  for (;;) {
    const st = statIfAny(parent);
    if (st !== undefined) {
      if (!st.isDirectory()) throw new ScenarioError(`${what}: cannot create ${dir}: ${parent} is not a directory`);
      try {
        fs.accessSync(parent, fs.constants.W_OK | fs.constants.X_OK);
      } catch (err) {
        throw new ScenarioError(`${what}: cannot create ${dir} in ${parent}: ${describeFsError(err)}`);
      }
      return;
    }
    parent = path.dirname(parent);
  }
}

export interface WorkdirOptions {
  /** Remove the images and the record first. */
  fresh?: boolean;
  /** The option or field naming the directory, for messages (default --workdir). */
  what?: string;
}

const FRESH_HINT = 'start afresh with `remapsim run --fresh` (it removes the images), or remove them';

/**
 * Checks a work directory before any work starts: that it is (or can be
 * made) a directory, and that images in it are ones an earlier run of this
 * scenario and policy recorded (unless `fresh`). Changes nothing.
 */
export function checkWorkdir(dir: string, scenario: Scenario, policy: Policy, opts: WorkdirOptions = {}): void {
  const what = opts.what ?? '--workdir';
  if (opts.fresh) {
    const st = statIfAny(dir);
    if (st === undefined) checkCreatable(dir, what);
    else if (!st.isDirectory()) throw new ScenarioError(`${what}: ${dir} is not a directory`);
    return;
  }
  inspect(dir, scenario, policy, what, FRESH_HINT);
}

/** Opens the work directory for a build: a temporary one when `given` is undefined. */
export function openWorkdir(given: string | undefined, scenario: Scenario, policy: Policy, opts: WorkdirOptions = {}): Workdir {
  const images = (dir: string): Record<ImageRole, string> => ({ main: path.join(dir, 'main.img'), spare: path.join(dir, 'spare.img') });
  if (given === undefined) {
    const dir = makeTemporary(scenario.name);
    return {
      dir,
      temporary: true,
      image: (role) => ({ file: images(dir)[role], reuse: false }),
      record: () => undefined,
      close() {
        fs.rmSync(dir, { recursive: true, force: true });
        temporary.delete(dir);
      },
    };
  }
  const what = opts.what ?? '--workdir';
  const dir = path.resolve(given);
  checkWorkdir(dir, scenario, policy, { ...opts, what });
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new ScenarioError(`${what}: cannot create ${dir}: ${describeFsError(err)}`);
  }
  if (opts.fresh) {
    for (const f of [...Object.values(images(dir)), path.join(dir, RECORD)]) {
      try {
        fs.rmSync(f, { force: true });
      } catch (err) {
        throw new ScenarioError(`${what}: --fresh cannot remove ${f}: ${describeFsError(err)}`);
      }
    }
  }
  const reuse = inspect(dir, scenario, policy, what, FRESH_HINT);
  const now = new Date().toISOString();
  // images this scenario does not size (a path instead) are no longer this directory's
  const rec: WorkdirRecord = {
    format: FORMAT,
    version: 1,
    scenario: scenario.name,
    policy,
    createdAt: readRecord(dir, what, FRESH_HINT)?.createdAt ?? now,
    lastRunAt: now,
    images: {},
  };
  return {
    dir,
    temporary: false,
    image: (role) => ({ file: images(dir)[role], reuse: reuse[role] }),
    record(role, image) {
      const id = fileIdOf(images(dir)[role]);
      if (!id) return;
      rec.images[role] = { file: `${role}.img`, bytes: image.bytes, logicalBlockSize: image.logicalBlockSize, dev: id.dev, ino: id.ino };
      const file = path.join(dir, RECORD);
      fs.writeFileSync(`${file}.tmp-${process.pid}`, `${JSON.stringify(rec, null, 2)}\n`);
      fs.renameSync(`${file}.tmp-${process.pid}`, file);
    },
    close: () => undefined,
  };
}
