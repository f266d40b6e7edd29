/**
 * The option names fio knows, and which of them remapsim implements. Names
 * and aliases are those of fio 3.33 (`fio --cmdhelp=all`, `--enghelp=<engine>`)
 * so a job file written for fio gets, for each option, one of three answers:
 * implemented, known to fio but not implemented here, or unknown.
 */
import { JOB_OPTIONS } from './job-options.js';

export type OptionKind =
  /** Takes a value. */
  | 'value'
  /** May be given bare (`time_based`) or as 0/1: fio's FIO_OPT_STR_SET. */
  | 'flag';

export interface OptionDef {
  /** fio's name for it (the canonical key of an option map). */
  name: string;
  aliases: readonly string[];
  kind: OptionKind;
  /** What remapsim does with it, where help should say (listed after the option's name). */
  note?: string;
}

/** The options a JobSpec is built from: the names, aliases and notes of job-options.ts's table. */
export const SUPPORTED_OPTIONS: readonly OptionDef[] = Object.entries(JOB_OPTIONS).map(([name, o]) => ({
  name,
  aliases: o.aliases ?? [],
  kind: o.kind.bare ? 'flag' : 'value',
  ...(o.note !== undefined ? { note: o.note } : {}),
}));

/** The implemented options for a help text: names (notes in parentheses), comma-separated, wrapped at `width`. */
export function supportedOptionsText(width = 78): string {
  const items = SUPPORTED_OPTIONS.filter((d) => d.name !== 'name' && d.name !== 'description').map((d) => (d.note ? `${d.name} (${d.note})` : d.name));
  const lines: string[] = [];
  let line = '';
  for (const [i, item] of items.entries()) {
    const word = i < items.length - 1 ? `${item},` : `${item}.`;
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.join('\n');
}

/** Every job option fio 3.33 accepts, aliases included (`fio --cmdhelp=all`). */
const FIO_OPTIONS = `allow_file_create allow_mounted_write allrandrepeat atomic ba block_error_percentiles blockalign
blocksize blocksize_range blocksize_unaligned bs bs_unaligned bsrange bssplit buffer_compress_chunk
buffer_compress_percentage buffer_pattern buffered bwavgtime cgroup cgroup_nodelete cgroup_weight
clat_percentiles clocksource continue_on_error cpumask cpus_allowed cpus_allowed_policy create_fsync
create_on_open create_only create_serialize dedupe_global dedupe_mode dedupe_percentage
dedupe_working_set_percentage description direct directory disable_bw disable_bw_measurement disable_clat
disable_lat disable_slat disk_util do_verify end_fsync error_dump exec_postrun exec_prerun exit_what exitall
exitall_on_error experimental_verify fadvise_hint fallocate fdatasync file_append file_service_type filename
filename_format fileoffset filesize fill_device fill_fs flow flow_id flow_sleep fsync fsync_on_close gid
group_reporting gtod_cpu gtod_reduce hugepage-size ignore_error ignore_zone_limits invalidate io_limit io_size
io_submit_mode iodepth iodepth_batch iodepth_batch_complete iodepth_batch_complete_max
iodepth_batch_complete_min iodepth_batch_submit iodepth_low ioengine iomem iopsavgtime ioscheduler
job_max_open_zones kb_base lat_percentiles latency_percentile latency_run latency_target latency_window
lockfile lockmem log_alternate_epoch log_alternate_epoch_clock_id log_avg_msec log_compression
log_compression_cpus log_entries log_hist_coarseness log_hist_msec log_max_value log_offset log_prio
log_store_compressed log_unix_epoch loops max_latency max_open_zones mem merge_blktrace_file
merge_blktrace_iters merge_blktrace_scalars name new_group nice norandommap nr_files nrfiles numa_cpu_nodes
numa_mem_policy number_ios numjobs offset offset_align offset_increment opendir openfiles overwrite
per_job_logs percentage_random percentile_list pre_read prio prioclass profile ramp_time random_distribution
random_generator randrepeat randseed rate rate_cycle rate_ignore_thinktime rate_iops rate_iops_min rate_min
rate_process ratecycle ratemin read_beyond_wp read_iolog read_iolog_chunked readwrite refill_buffers
replay_align replay_no_stall replay_redirect replay_scale replay_skip replay_time_scale runtime rw
rw_sequencer rwmixread rwmixwrite scramble_buffers serialize_overlap significant_figures size
slat_percentiles ss ss_dur ss_ramp startdelay stats steadystate steadystate_duration steadystate_ramp_time
stonewall sync sync_file_range thinktime thinktime_blocks thinktime_blocks_type thinktime_iotime
thinktime_spin thread time_based timeout trim_backlog trim_backlog_batch trim_percentage trim_verify_zero uid
unified_rw_reporting unique_filename unit_base unlink unlink_each_loop verify verify_async verify_backlog
verify_backlog_batch verify_dump verify_fatal verify_interval verify_offset verify_only verify_pattern
verify_state_load verify_state_save wait_for wait_for_previous write_barrier write_bw_log write_hint
write_hist_log write_iolog write_iops_log write_lat_log zero_buffers zone_reset_frequency
zone_reset_threshold zonecapacity zonemode zonerange zonesize zoneskip`;

/** Options that belong to one of fio's I/O engines (`fio --enghelp=<engine>`). */
const FIO_ENGINE_OPTIONS = `arguments bindname brick busy_poll clientname clustername cmd_type cmdprio cmdprio_bssplit
cmdprio_class cmdprio_percentage conf cpuchunks cpuload cpumode donorname exit_on_io_done fixedbufs force_async
grace_time hipri hipri_percentage hostname inplace interface listen mss nodelay nonvectored nowait pingpong pool
port program protocol rbdname readfua registerfiles sg_write_mode skip_bad sqthread_poll sqthread_poll_cpu
stat_type std_redirect stream_id thp touch_objects ttl uncached uri userspace_reap verb volume window_size
writefua`;

const fioNames = new Set(FIO_OPTIONS.split(/\s+/).filter(Boolean));
const engineNames = new Set(FIO_ENGINE_OPTIONS.split(/\s+/).filter(Boolean));

const supportedByKey = new Map<string, OptionDef>();
for (const def of SUPPORTED_OPTIONS) {
  supportedByKey.set(def.name, def);
  for (const a of def.aliases) supportedByKey.set(a, def);
}

/** fio's own aliases for options remapsim does not implement, so messages use fio's main name. */
const FIO_ALIASES: Record<string, string> = {
  blocksize_unaligned: 'bs_unaligned',
  disable_bw: 'disable_bw_measurement',
  fill_fs: 'fill_device',
  iodepth_batch_submit: 'iodepth_batch',
  iodepth_batch_complete: 'iodepth_batch_complete_min',
  iomem: 'mem',
  nr_files: 'nrfiles',
  ratecycle: 'rate_cycle',
  ratemin: 'rate_min',
  ss: 'steadystate',
  ss_dur: 'steadystate_duration',
  ss_ramp: 'steadystate_ramp_time',
  wait_for_previous: 'stonewall',
};

export type OptionLookup = { status: 'supported'; def: OptionDef } | { status: 'unsupported'; name: string; engine: boolean } | { status: 'unknown' };

/** What `key` (as written in a job file or flag, case-sensitive like fio) refers to. */
export function lookupOption(key: string): OptionLookup {
  const def = supportedByKey.get(key);
  if (def) return { status: 'supported', def };
  if (fioNames.has(key)) return { status: 'unsupported', name: FIO_ALIASES[key] ?? key, engine: false };
  if (engineNames.has(key)) return { status: 'unsupported', name: key, engine: true };
  return { status: 'unknown' };
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The known option name closest to a misspelt one, if one is close enough to suggest. */
export function suggestOption(key: string): string | undefined {
  const limit = Math.max(1, Math.floor(key.length / 4));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of [...supportedByKey.keys(), ...fioNames]) {
    const d = editDistance(key.toLowerCase(), name);
    if (d < bestDistance) {
      bestDistance = d;
      best = name;
    }
  }
  return bestDistance <= limit ? best : undefined;
}
