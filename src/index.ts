/**
 * remapsim as a library: the pieces the CLI is built from, for programs that
 * drive them directly. See the README's "As a library" section.
 */

// devices
export { type BlockDevice, type IoStatus, type WriteFlags, SECTOR_SIZE, OK, EIO, ENOSPC, errnoName, BlockRequestError } from './block/device.js';
export { FileDevice, type FileDeviceOptions, DeviceOpenError, DeviceBusyError } from './block/file-device.js';
export { MemoryDevice, type MemoryDeviceOptions } from './block/memory-device.js';
export { PassThroughLayer } from './block/pass-through.js';

// fault layers
export { DustDevice, type DustOptions } from './faults/dust.js';
export { FlakeyDevice, type FlakeyOptions } from './faults/flakey.js';
export { LatencyDevice, type LatencyOptions } from './faults/latency.js';
export { WeakSectorDevice } from './faults/weak.js';
export { TransientErrorDevice } from './faults/transient.js';

// remap targets and their metadata
export { SafeRemapTarget } from './remap/safe-target.js';
export { DmRemapV4Target } from './remap/v4-target.js';
export { openSafeModel, openV4Model, type SafeModel, type V4Model } from './stack/models.js';
export { openTarget, type ModelTarget } from './stack/table.js';

// workloads and the oracle
export { jobFromRecord, parseJobs, loadJobs, type JobSpec } from './workload/job.js';
export { runJobs, type RunJobsOptions, type RunResult } from './workload/runner.js';
export { Oracle, type OracleOptions, type OracleReport } from './workload/oracle.js';
export { VerifyPattern } from './workload/verify-pattern.js';

// scenarios
export { loadScenario } from './scenario/load.js';
export { validateScenario, type Scenario } from './scenario/schema.js';
export { runScenario, type ScenarioResult } from './scenario/run.js';

// serving and the kernel
export { NbdServer, type NbdServerOptions } from './nbd/server.js';
export { DmControl, DmError } from './kernel/dm-control.js';
