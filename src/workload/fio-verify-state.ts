/**
 * fio's verify state file (verify-state.h and verify.c of fio 3.33), what
 * `verify_state_save` writes when a verifying write job ends and
 * `verify_state_load` reads before a verify_only pass, one file per job
 * thread: `<dir>/local-<job name, '/' as '.'>-<thread index>-verify.state`.
 * Little-endian:
 *
 *   verify_state_hdr:  u64 version (3), u64 size (of what follows), u64 crc
 *                      (fio's crc32c of what follows)
 *   thread_io_list:    u64 no_comps, u32 depth (iodepth), u32 nofiles,
 *                      u64 numberio (writes issued), u64 index (thread),
 *                      56 bytes of random state (fio restores none of it;
 *                      remapsim writes zeroes), u8 name[64],
 *                      depth x nofiles file_comp { u64 fileno, u64 offset }:
 *                      the offsets of the last writes completed, newest first
 *
 * At load, fio verifies the first numberio - depth writes it replays, then
 * only those whose offset is among the completions, and stops at the first
 * other one (verify_state_should_stop).
 */
import { fioCrc32c } from './fio-verify.js';

export interface FioThreadState {
  /** The job's name (fio's td->o.name). */
  name: string;
  /** fio's thread index: jobs in order, each clone (numjobs) one thread. */
  index: number;
  /** iodepth. */
  depth: number;
  /** Writes issued. */
  numberio: number;
  /** Offsets of the last min(writes completed, depth) writes completed, newest first. */
  comps: number[];
}

export class FioStateError extends Error {
  override readonly name = 'FioStateError';
}

export const FIO_VSTATE_VERSION = 3;
/** Bytes of verify_state_hdr, of thread_io_list before its completions, of one file_comp, of the name. */
const [HDR, LIST, COMP, NAME] = [24, 152, 16, 64];

/** fio's verify_state_gen_name with the "local" prefix. */
export function fioStateFileName(name: string, index: number): string {
  return `local-${name.replace(/\//g, '.')}-${index}-verify.state`;
}

export function encodeFioState(s: FioThreadState): Uint8Array {
  const size = LIST + s.depth * COMP;
  const out = new Uint8Array(HDR + size);
  const dv = new DataView(out.buffer);
  const u64 = (at: number, v: number): void => dv.setBigUint64(at, BigInt(v), true);
  const list = HDR;
  u64(list, s.comps.length);
  dv.setUint32(list + 8, s.depth, true);
  dv.setUint32(list + 12, 1, true);
  u64(list + 16, s.numberio);
  u64(list + 24, s.index);
  out.set(new TextEncoder().encode(s.name).subarray(0, NAME - 1), list + 88);
  s.comps.forEach((off, i) => {
    u64(list + LIST + i * COMP, 0);
    u64(list + LIST + i * COMP + 8, off);
  });
  u64(0, FIO_VSTATE_VERSION);
  u64(8, size);
  u64(16, fioCrc32c(out.subarray(HDR)));
  return out;
}

export function decodeFioState(bytes: Uint8Array): FioThreadState {
  if (bytes.length < HDR + LIST) throw new FioStateError(`${bytes.length} bytes is too short for a verify state (at least ${HDR + LIST})`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const u64 = (at: number): number => Number(dv.getBigUint64(at, true));
  const version = u64(0);
  if (version !== FIO_VSTATE_VERSION) throw new FioStateError(`unsupported version ${version} (fio 3.33 writes ${FIO_VSTATE_VERSION})`);
  const size = u64(8);
  if (size !== bytes.length - HDR) throw new FioStateError(`the header says ${size} bytes follow, the file has ${bytes.length - HDR}`);
  if (u64(16) !== fioCrc32c(bytes.subarray(HDR))) throw new FioStateError('the checksum does not match: the state is corrupt');
  const list = HDR;
  const noComps = u64(list);
  const depth = dv.getUint32(list + 8, true);
  const nofiles = dv.getUint32(list + 12, true);
  if (nofiles !== 1) throw new FioStateError(`it covers ${nofiles} files; remapsim runs a job on one target`);
  if (size !== LIST + depth * nofiles * COMP || noComps > depth)
    throw new FioStateError(`depth ${depth} and ${noComps} completions do not fit its ${size} bytes`);
  const nameBytes = bytes.subarray(list + 88, list + 88 + NAME);
  const nul = nameBytes.indexOf(0);
  const comps: number[] = [];
  for (let i = 0; i < noComps; i++) comps.push(u64(list + LIST + i * COMP + 8));
  return { name: new TextDecoder().decode(nameBytes.subarray(0, nul < 0 ? NAME : nul)), index: u64(list + 24), depth, numberio: u64(list + 16), comps };
}

/**
 * fio's verify_state_should_stop: whether the verify pass stops before the
 * read of `offset`, having completed `reads` verify reads.
 */
export function fioStateStops(s: FioThreadState, reads: number, offset: number): boolean {
  const behind = s.numberio - reads; // fio subtracts unsigned: past numberio it is huge
  if ((reads < s.depth || behind < 0 || behind > s.depth) && s.numberio > s.depth) return false;
  return !s.comps.includes(offset);
}

/** What a write job's clone must record for its state: writes issued, and the last `depth` completed. */
export class FioWriteLog {
  issued = 0;
  private completed = 0;
  private readonly ring: number[];
  private at = 0;

  constructor(readonly depth: number) {
    this.ring = new Array<number>(depth).fill(0);
  }

  /** fio's file_log_write_comp, for a write that completed without error. */
  complete(offset: number): void {
    this.completed++;
    this.ring[this.at] = offset;
    this.at = (this.at + 1) % this.depth;
  }

  state(name: string, index: number): FioThreadState {
    const n = Math.min(this.completed, this.depth);
    const comps: number[] = [];
    for (let i = 1; i <= n; i++) comps.push(this.ring[(this.at - i + this.depth) % this.depth]!);
    return { name, index, depth: this.depth, numberio: this.issued, comps };
  }
}
