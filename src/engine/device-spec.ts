/**
 * A device a worker thread can open for itself: files and block devices by
 * path (each thread has its own descriptor), shared-memory devices by their
 * buffer. The model's shared state joins in as it becomes shareable.
 */
import type { BlockDevice, LogicalBlockSize } from '../block/device.js';
import { FileDevice } from '../block/file-device.js';
import { SharedMemoryDevice, type SharedMemoryDeviceShared } from '../block/shared-memory-device.js';

export type EngineDeviceSpec =
  | { kind: 'file'; path: string; direct?: boolean; readOnly?: boolean; logicalBlockSize?: LogicalBlockSize; sectors?: number }
  | { kind: 'shared-memory'; shared: SharedMemoryDeviceShared };

export function openEngineDevice(spec: EngineDeviceSpec): BlockDevice {
  switch (spec.kind) {
    case 'file':
      return FileDevice.open(spec.path, { direct: spec.direct, readOnly: spec.readOnly, logicalBlockSize: spec.logicalBlockSize, sectors: spec.sectors });
    case 'shared-memory':
      return new SharedMemoryDevice(spec.shared);
  }
}
