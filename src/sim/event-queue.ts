/**
 * The simulator's agenda: events ordered by virtual time, ties broken by the
 * order they were scheduled in (so a run is the same on every machine). A
 * binary heap; an event is cancelled by marking it, and skipped when it
 * comes up.
 */
import type { VTime } from './time.js';

export interface SimEvent<P> {
  at: VTime;
  seq: number;
  payload: P;
  cancelled: boolean;
}

export class EventQueue<P> {
  private readonly heap: Array<SimEvent<P>> = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(at: VTime, payload: P): SimEvent<P> {
    const e: SimEvent<P> = { at, seq: this.seq++, payload, cancelled: false };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
    return e;
  }

  /** The earliest live event, without removing it. */
  peek(): SimEvent<P> | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.removeTop();
    return this.heap[0];
  }

  pop(): SimEvent<P> | undefined {
    const top = this.peek();
    if (top) this.removeTop();
    return top;
  }

  private removeTop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const m = r < n && before(h[r]!, h[l]!) ? r : l;
      if (!before(h[m]!, last)) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
  }
}

function before<P>(a: SimEvent<P>, b: SimEvent<P>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
