import type { ScenarioInput } from './schema.js';

/**
 * What `remapsim run` (and `npm start`) does without a scenario: a sparse
 * 256 MiB main and 32 MiB spare in a temporary directory; bad sectors appear
 * during a 10 s mixed read/write job that verifies every read, while a
 * monitor reads the target's status every second and the table is loaded
 * again every 3 s (a reboot: the target's metadata is all that carries over).
 */
export const DEFAULT_SCENARIO: ScenarioInput = {
  name: 'default',
  description: 'bad sectors appear under a verified 4 KiB random read/write job; status is polled, the target restarts',
  seed: 42,
  duration: '10s',
  devices: { main: { size: '256MiB' }, spare: { size: '32MiB' } },
  faults: {
    main: {
      badSectors: [4096, 4097, 4098, 100000],
      writeFailCount: 2,
      // new bad sectors land where the job works (its first 64 MiB), as latent errors under live data
      growth: [{ start: '1s', rate: 4, cluster: 8, writeFailCount: 2, region: { from: 0, to: 131072 } }],
    },
  },
  target: { policy: 'safe', statusEvery: '1s', restartEvery: '3s' },
  jobs: [{ name: 'mixed', rw: 'randrw', rwmixread: 50, bs: '4k', size: '64m', verify: 'crc32c', continue_on_error: 'all', time_based: 1 }],
};
