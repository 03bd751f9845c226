// The upstream's "not before": one gate per output that every request passes on its way out, whichever
// lane or probe sends it. A 429/503 with Retry-After closes it until that time, counted from when the
// answer arrived; a later success does not open it early (a request that was already in flight when
// the 429 came says nothing about the upstream's wish). Requests already on the wire are not recalled.

export class ThrottleGate {
  private untilMs = 0;

  constructor(private readonly now: () => number) {}

  /** The upstream asked for `waitMs` of quiet, in an answer that arrived at `arrivedMs`. */
  hold(arrivedMs: number, waitMs: number): void {
    if (!(waitMs > 0)) return;
    this.untilMs = Math.max(this.untilMs, arrivedMs + waitMs);
  }

  /** Milliseconds until a request may start (0: now). */
  waitMs(nowMs: number = this.now()): number {
    return Math.max(0, this.untilMs - nowMs);
  }

  /** Resolves when a request may start; rejects with the signal's reason when it aborts first. */
  async pass(signal: AbortSignal): Promise<void> {
    for (let wait = this.waitMs(); wait > 0; wait = this.waitMs()) {
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(timer);
          reject(signal.reason as Error);
        };
        const timer = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        }, wait);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
  }
}
