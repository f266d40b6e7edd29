/**
 * Shared by the lifecycle tests: each file runs in a VM of its own
 * (scripts/vm/test-kernel.sh), because they drive the real dm-remap-v4
 * module into hangs and oopses. Without the module they skip, with one line.
 */
import { DmControl } from '../../../src/kernel/dm-control.js';
import { validateScenario, type Scenario } from '../../../src/scenario/schema.js';

const dm = DmControl.open();
const loaded = dm.targetVersion('dm-remap-v4');
dm.close();

/** `skip` for node:test: false with the module loaded, else why not. */
export const needsModule: false | string = loaded
  ? false
  : 'the dm-remap-v4 module is not loaded in this VM (scripts/vm/setup.sh builds it from ../shared/third_party/dm-remap-v4 or $REMAPSIM_DM_REMAP_SRC)';

/** A small stack: 16 MiB main with bad sectors at 64 and 72, an 8 MiB spare. */
export function smallScenario(name: string, badSectors: number[] = [64, 72]): Scenario {
  return validateScenario({
    name,
    seed: 1,
    devices: { main: { size: '16M' }, spare: { size: '8M' } },
    faults: { main: { badSectors } },
    target: { policy: 'dm-remap-v4' },
    jobs: [{ rw: 'randrw', bs: '4k', size: '1m' }],
  });
}
