// Deliveries are recorded in the source together, at most SETTLE_EVERY_MS after the upstream
// acknowledged them: one durable write (an fsync, on an SD card) per window rather than per request.
// A crash inside the window only means those batches go again, which the upstream takes as a no-op.
import type { Logger } from '../core/component.js';
import type { SourceLease, SyncSource } from './source.js';

export const SETTLE_EVERY_MS = 100;
export const SETTLE_MAX_BATCHES = 32;

export class SettleQueue {
  private items: { lease: SourceLease; rejectedPoints: number }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: SyncSource,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** A lease the upstream acknowledged, `rejectedPoints` of it refused for good. */
  push(lease: SourceLease, rejectedPoints: number): void {
    this.items.push({ lease, rejectedPoints });
    if (this.items.length >= SETTLE_MAX_BATCHES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), SETTLE_EVERY_MS);
  }

  /** Records every queued delivery now (the cursor moves, durably). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const items = this.items;
    if (items.length === 0) return;
    this.items = [];
    try {
      this.source.settleAll(items, this.now());
    } catch (err) {
      // Delivered but not recorded: they will be sent again, which the upstream takes as a no-op.
      this.log.error({ err }, 'could not record deliveries; they will be sent again');
      for (const { lease } of items) {
        try {
          this.source.release(lease);
        } catch {
          // The store is gone; nothing is leased after a restart anyway.
        }
      }
    }
  }
}
