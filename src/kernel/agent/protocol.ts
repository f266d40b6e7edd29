/**
 * What the parent asks the kernel agent (a child process, see client.ts) and
 * what it answers. Messages travel over node's IPC channel with the
 * 'advanced' serialization, so Uint8Arrays pass as they are.
 */
import type { StackSpec, StackState } from '../stack.js';

/** DmControl's methods the agent runs, by name. */
export type DmMethod =
  | 'create'
  | 'load'
  | 'suspend'
  | 'resume'
  | 'remove'
  | 'clear'
  | 'info'
  | 'exists'
  | 'status'
  | 'table'
  | 'message'
  | 'messageReply'
  | 'targetVersion'
  | 'listDevices';

export type AgentRequest =
  | { op: 'ping' }
  | { op: 'dm'; method: DmMethod; args: unknown[] }
  | { op: 'stack.build'; spec: StackSpec }
  | { op: 'stack.addBad'; state: StackState; sectors: number[] }
  | { op: 'loop.detach'; device: number }
  | { op: 'loop.info'; device: number }
  | { op: 'dev.open'; path: string; direct: boolean; logicalBlockSize?: 512 | 4096 }
  | { op: 'dev.read'; handle: number; sector: number; bytes: number }
  | { op: 'dev.write'; handle: number; sector: number; data: Uint8Array; fua: boolean }
  | { op: 'dev.flush'; handle: number }
  | { op: 'dev.discard'; handle: number; sector: number; count: number }
  | { op: 'dev.close'; handle: number }
  | { op: 'file.unlink'; path: string };

export interface AgentCall {
  id: number;
  request: AgentRequest;
}

export type AgentReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: { name: string; message: string; errno?: number } };
