// Compaction and rollups run on the event loop (better-sqlite3 is synchronous), in passes cut short by
// a time budget so inputs are never held up for long. A fixed timer alone is not enough: a pass that used
// its whole budget left work behind, and falling behind is not stable (a growing backlog of fresh chunks
// makes every later pass dearer), so the next pass comes soon instead.

/**
 * The pause after a pass that used its whole budget: work is left (an ingest burst, a backlog of
 * fresh chunks after a restart), so passes come this close together until it is done. At 10k points/s
 * compaction needs ~70 ms a second; at one 40 ms pass a second it fell behind, and a growing backlog
 * made every pass dearer (CPU 20 % → 37 % over ten minutes, ticks missed).
 */
export const MAINTENANCE_BEHIND_MS = 100;

/**
 * A maintenance pass on a timer: every `everyMs`, or MAINTENANCE_BEHIND_MS after a pass that used its
 * whole budget. The pass is handed the budget, so the limit it keeps and the one measured here are one.
 */
export class MaintenanceLoop {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly pass: (budgetMs: number) => void,
    private readonly everyMs: number,
    private readonly budgetMs: number,
  ) {}

  start(): void {
    this.running = true;
    this.next(this.everyMs);
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  private next(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => this.run(), delayMs);
    this.timer.unref();
  }

  private run(): void {
    const startedMs = performance.now();
    this.pass(this.budgetMs);
    this.next(performance.now() - startedMs >= this.budgetMs ? MAINTENANCE_BEHIND_MS : this.everyMs);
  }
}
