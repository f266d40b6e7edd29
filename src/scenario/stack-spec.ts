/** The kernel test stack (src/kernel/stack.ts) a scenario asks for. */
import type { StackSpec } from '../kernel/stack.js';
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
