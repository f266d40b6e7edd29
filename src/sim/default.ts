/**
 * What `remapsim simulate` runs without a scenario: a 4 TB drive over five
 * years at field latent-error rates (the same text as
 * examples/sim/field-4tb.yaml, which the README explains).
 */
export const DEFAULT_SIM_SCENARIO_NAME = 'field-4tb (built-in)';

export const DEFAULT_SIM_SCENARIO = `# A 4 TB drive in service for five years: 150 IOPS of 4 KiB random I/O, 70% reads,
# latent sector errors at the rate field data gives for nearline drives, a weekly scan.
#
# Rate: Bairavasundaram et al., "An Analysis of Latent Sector Errors in Disk Drives",
# SIGMETRICS 2007: 8.5% of nearline drives developed latent sector errors within
# 32 months, a first-error rate of -ln(1 - 0.085) / (32/12) = 0.0333 per drive-year.
# Burst size, spread and follow-ups give the spatial and temporal locality that study
# and Schroeder et al. (FAST 2010) report; they are shape parameters, not fitted values.
name: field-4tb
seed: 1
devices:
  main: { size: 4TB }
  spare: { size: 64MiB }
target: { policy: safe }
scanner: { rate: 64 }
jobs:
  - { name: oltp, rw: randrw, rwmixread: 70, bs: 4k, verify: crc32c, continue_on_error: all }
simulate:
  horizon: 5y
  workload: { iops: 150 }
  faults:
    latentErrors:
      - { rate: 0.0333/y, burstMean: 4, spread: 2, followProbability: 0.5, followMean: 1d, followDistance: 4096 }
  scanner: { every: 1w }
`;
