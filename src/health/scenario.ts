/**
 * A scenario's `scanner` section as a health monitor on the built target.
 * Returns undefined when the scenario has no scanner section. Option
 * errors name their field (`scanner.slice ...`).
 */
import type { SafeRemapTarget } from '../remap/safe-target.js';
import type { DmRemapV4Target } from '../remap/v4-target.js';
import type { Clock } from '../util/clock.js';
import { attachHealthMonitor, type DetectionTracker, type HealthMonitor } from './monitor.js';
import type { ScanOrder } from './scanner.js';

export interface ScannerSpecLike {
  enabled: boolean;
  /** MB/s. */
  rate: number;
  busyFactor: number;
  idle: number;
  slice: number;
  slow: number;
  retries: number;
  order: ScanOrder;
  staggerRegions: number;
  sampleEvery: number;
  horizon: number;
  confidence: number;
}

export function scenarioHealthMonitor(
  target: SafeRemapTarget | DmRemapV4Target,
  spec: ScannerSpecLike | undefined,
  opts: { clock: Clock; tracker?: DetectionTracker },
): HealthMonitor | undefined {
  if (!spec) return undefined;
  return attachHealthMonitor(target, {
    clock: opts.clock,
    tracker: opts.tracker,
    scan: spec.enabled,
    rate: spec.rate * 1e6,
    busyFactor: spec.busyFactor,
    idleNs: spec.idle,
    sliceBytes: spec.slice,
    slowNs: spec.slow,
    retries: spec.retries,
    order: spec.order,
    staggerRegions: spec.staggerRegions,
    sampleEveryNs: spec.sampleEvery,
    horizonNs: spec.horizon,
    confidence: spec.confidence,
  });
}
