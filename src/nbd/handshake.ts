/**
 * A connection's fixed newstyle handshake: the greeting, then the options
 * (NBD_OPT_GO, INFO, LIST, ABORT, EXPORT_NAME, STRUCTURED_REPLY,
 * LIST_META_CONTEXT, SET_META_CONTEXT; STARTTLS and the rest refused)
 * answered for the server's one export. What they settle (structured
 * replies, the selected metadata contexts) is read by the request phase
 * (connection.ts) once transmission starts.
 */
import type * as net from 'node:net';
import { log } from '../util/log.js';
import {
  encodeExportNameReply,
  encodeGreeting,
  encodeOptionReply,
  HandshakeFlag,
  Info,
  type NbdServerParser,
  optionCode,
  type OptionReply,
  Rep,
  SERVER_HANDSHAKE_FLAGS,
} from './protocol.js';
import type { ClientMessage, NbdRequest } from './messages.js';
import type { SelectedContext } from './block-status.js';
import { selectMetaContexts } from './meta-context.js';
import type { NbdServer } from './server.js';

export type HandshakeMessage = Exclude<ClientMessage, NbdRequest>;

/**
 * What the connection does after a handshake message: wait for more, start
 * transmission, take nothing more (NBD_OPT_ABORT), or hang up at once.
 */
export type HandshakeStep = 'options' | 'transmission' | 'abort' | 'hang-up';

export class Handshake {
  /** NBD_OPT_STRUCTURED_REPLY was acknowledged. */
  structured = false;
  /** Metadata contexts selected by the last NBD_OPT_SET_META_CONTEXT. */
  contexts: SelectedContext[] = [];
  private noZeroes = false;

  constructor(
    private readonly srv: NbdServer,
    private readonly sock: net.Socket,
    private readonly parser: NbdServerParser,
  ) {}

  greet(): void {
    this.sock.write(encodeGreeting(SERVER_HANDSHAKE_FLAGS));
  }

  private reply(r: OptionReply): void {
    if (this.sock.writable) this.sock.write(encodeOptionReply(r));
  }

  message(m: HandshakeMessage): HandshakeStep {
    const srv = this.srv;
    switch (m.kind) {
      case 'client-flags':
        this.noZeroes = (m.flags & HandshakeFlag.NO_ZEROES) !== 0;
        return 'options';
      case 'export-name':
        if (m.name !== srv.exportName) {
          // The protocol has no way to refuse NBD_OPT_EXPORT_NAME but to hang up.
          log.info(`nbd client asked for unknown export '${m.name}'; closing`);
          return 'hang-up';
        }
        this.sock.write(encodeExportNameReply({ size: srv.size, transmissionFlags: srv.transmissionFlags }, this.noZeroes));
        return 'transmission';
      case 'info':
      case 'go': {
        const option = optionCode(m);
        if (m.name !== srv.exportName) {
          this.reply({ kind: 'rep-error', option, reply: Rep.ERR_UNKNOWN, message: `no export named '${m.name}' (this server exports '${srv.exportName}')` });
          if (m.kind === 'go') this.parser.goRefused();
          return 'options';
        }
        this.reply({ kind: 'rep-info', option, info: { kind: 'export', size: srv.size, transmissionFlags: srv.transmissionFlags } });
        if (m.infoRequests.includes(Info.NAME)) this.reply({ kind: 'rep-info', option, info: { kind: 'name', name: srv.exportName } });
        if (m.infoRequests.includes(Info.DESCRIPTION) && srv.description) {
          this.reply({ kind: 'rep-info', option, info: { kind: 'description', description: srv.description } });
        }
        // Sent whether asked or not: clients must learn the minimum (the logical block size).
        this.reply({
          kind: 'rep-info',
          option,
          info: { kind: 'block-size', minimum: srv.minBlockSize, preferred: srv.preferredBlockSize, maximum: srv.maxBlockSize },
        });
        this.reply({ kind: 'rep-ack', option });
        if (m.kind === 'go') {
          this.parser.goAccepted();
          return 'transmission';
        }
        return 'options';
      }
      case 'list':
        this.reply({ kind: 'rep-server', option: optionCode(m), name: srv.exportName, description: srv.description });
        this.reply({ kind: 'rep-ack', option: optionCode(m) });
        return 'options';
      case 'abort':
        this.reply({ kind: 'rep-ack', option: optionCode(m) });
        return 'abort';
      case 'structured-reply':
        this.structured = true;
        this.reply({ kind: 'rep-ack', option: optionCode(m) });
        return 'options';
      case 'list-meta-context':
      case 'set-meta-context':
        this.metaContext(m.kind === 'set-meta-context' ? 'set' : 'list', optionCode(m), m.name, m.queries);
        return 'options';
      case 'starttls':
        this.reply({ kind: 'rep-error', option: optionCode(m), reply: Rep.ERR_UNSUP, message: 'TLS is not supported' });
        return 'options';
      case 'extended-headers':
      case 'unknown-option':
        this.reply({ kind: 'rep-error', option: optionCode(m), reply: Rep.ERR_UNSUP, message: 'option not supported' });
        return 'options';
      case 'invalid-option':
        if (this.parser.phase === 'closed') return 'hang-up';
        this.reply({ kind: 'rep-error', option: m.option, reply: Rep.ERR_INVALID, message: m.error.message.slice(0, 1024) });
        return 'options';
    }
  }

  /** NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT; a SET replaces the selection, also when it fails. */
  private metaContext(kind: 'list' | 'set', option: number, name: string, queries: string[]): void {
    if (kind === 'set') this.contexts = [];
    if (!this.structured) {
      this.reply({ kind: 'rep-error', option, reply: Rep.ERR_INVALID, message: 'negotiate structured replies first' });
      return;
    }
    if (name !== this.srv.exportName) {
      this.reply({ kind: 'rep-error', option, reply: Rep.ERR_UNKNOWN, message: `no export named '${name}' (this server exports '${this.srv.exportName}')` });
      return;
    }
    const sources = this.srv.blockStatus?.contexts ?? [];
    const names = sources.map((c) => c.name);
    const sel = selectMetaContexts(kind, queries, names);
    if (!sel.ok) {
      this.reply({ kind: 'rep-error', option, reply: sel.reply, message: sel.message });
      return;
    }
    const chosen: SelectedContext[] = sel.names.map((n) => ({ id: names.indexOf(n) + 1, source: sources[names.indexOf(n)] }));
    for (const c of chosen) this.reply({ kind: 'rep-meta-context', option, contextId: kind === 'set' ? c.id : 0, name: c.source.name });
    this.reply({ kind: 'rep-ack', option });
    if (kind === 'set') this.contexts = chosen;
  }
}
