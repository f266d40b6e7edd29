/** What the process used between two process.resourceUsage() readings, in fio's terms (all threads count). */
export function resourceDelta(a: NodeJS.ResourceUsage, b: NodeJS.ResourceUsage): { userMs: number; systemMs: number; ctx: number; majf: number; minf: number } {
  return {
    userMs: (b.userCPUTime - a.userCPUTime) / 1e3,
    systemMs: (b.systemCPUTime - a.systemCPUTime) / 1e3,
    ctx: b.voluntaryContextSwitches - a.voluntaryContextSwitches + b.involuntaryContextSwitches - a.involuntaryContextSwitches,
    majf: b.majorPageFault - a.majorPageFault,
    minf: b.minorPageFault - a.minorPageFault,
  };
}
