/**
 * The crash child: opens (recovers) the model on the files it is given, then
 * runs the crash workload until it is killed. Reports go to fd 3, one line
 * each, written only after the write they describe returned:
 *   O <info>            opened (recovery done)
 *   A <unit> <gen>      acknowledged write
 *   F <unit> <gen> <e>  failed write
 *   R <key> <spare>     remap made (or moved)
 *   B <sector> <fails>  main sector made bad
 * With crashAtWrite it kills itself with SIGKILL at that write to the spare
 * (torn: after letting half of that write through).
 *
 * Run: node --import tsx scripts/crash/child.ts '<json ChildConfig>'
 */
import * as fs from 'node:fs';
import { FileDevice } from '../../src/block/file-device.js';
import { CrashPointDevice } from './crash-device.js';
import { type CrashGeometry, type CrashPolicy, CrashWorkload, crashDust, crashPattern, openCrashModel } from './workload.js';

export interface ChildConfig {
  policy: CrashPolicy;
  main: string;
  spare: string;
  geometry: CrashGeometry;
  patternSeed: number;
  seed: number;
  genBase: number;
  bad: Array<[number, number]>;
  crashAtWrite?: number;
  torn?: boolean;
  /** Stop (exit 0) after this many steps if nobody killed us. */
  maxSteps: number;
}

const REPORT_FD = 3;

function send(line: string): void {
  fs.writeSync(REPORT_FD, `${line}\n`);
}

function main(): void {
  const cfg = JSON.parse(process.argv[2] ?? '') as ChildConfig;
  const mainDev = FileDevice.open(cfg.main);
  const spareFile = FileDevice.open(cfg.spare);
  const spare =
    cfg.crashAtWrite === undefined
      ? spareFile
      : new CrashPointDevice(spareFile, {
          crashAtWrite: cfg.crashAtWrite,
          torn: cfg.torn,
          onCrash: () => {
            process.kill(process.pid, 'SIGKILL');
            throw new Error('SIGKILL did not stop the process');
          },
        });
  const dust = crashDust(mainDev, cfg.bad);
  const model = openCrashModel(cfg.policy, dust, spare, cfg.geometry);
  send(
    `O ${model.policy === 'safe' ? `remaps=${model.target.remapCount} torn_tail=${model.store.recovery?.result.tornTail ? 1 : 0} repairs=${model.store.recovery?.actions.length ?? 0}` : `remaps=${model.target.entries.length} reset=${model.store.initialized ? 1 : 0}`}`,
  );
  const work = new CrashWorkload(
    model,
    dust,
    {
      ack: (u, g) => send(`A ${u} ${g}`),
      fail: (u, g, e) => send(`F ${u} ${g} ${e}`),
      remap: (k, s) => send(`R ${k} ${s}`),
      bad: (s, f) => send(`B ${s} ${f}`),
    },
    { seed: cfg.seed, genBase: cfg.genBase, geometry: cfg.geometry, pattern: crashPattern(cfg.patternSeed, cfg.geometry.unitSize) },
  );
  for (let i = 0; i < cfg.maxSteps; i++) work.step();
}

try {
  main();
} catch (err) {
  process.stderr.write(`crash child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(70);
}
