// The maintenance loop that runs compaction and rollups (src/agent/maintenance.ts): passes on a steady
// timer while they finish within their budget, close together while they do not, so the store keeps
// up with any ingest rate in slices no longer than the budget. Fake timers: the pass "takes" its time
// by moving the clock, which is what the loop measures.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAINTENANCE_BEHIND_MS, MaintenanceLoop } from '../src/agent/maintenance.js';

const EVERY_MS = 1000;
const BUDGET_MS = 40;

describe('MaintenanceLoop', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
  });
  afterEach(() => vi.useRealTimers());

  /** Runs the loop for `forMs` with passes that take `durations[i]` ms (0 once they run out); returns when each pass began. */
  function run(durations: number[], forMs: number): number[] {
    const began: number[] = [];
    const t0 = performance.now();
    const loop = new MaintenanceLoop(
      () => {
        began.push(performance.now() - t0);
        const took = durations[began.length - 1] ?? 0;
        if (took > 0) vi.advanceTimersByTime(took);
      },
      EVERY_MS,
      BUDGET_MS,
    );
    loop.start();
    vi.advanceTimersByTime(forMs);
    loop.stop();
    return began;
  }

  it('runs a pass every interval while passes finish within their budget', () => {
    expect(run([5, 10, 39], 3500)).toEqual([1000, 2000 + 5, 3000 + 15]);
  });

  it('runs the next pass soon after one that used its whole budget, until the work is done', () => {
    // 50, 40 and 45 ms reach the 40 ms budget: each is followed MAINTENANCE_BEHIND_MS later; the
    // 3 ms pass finished the work, and the loop is back to its interval.
    const soon = MAINTENANCE_BEHIND_MS;
    expect(run([50, 40, 45, 3], 3000)).toEqual([1000, 1050 + soon, 1190 + soon, 1335 + soon, 1438 + EVERY_MS]);
  });

  it('hands each pass the budget it is measured against', () => {
    const budgets: number[] = [];
    const loop = new MaintenanceLoop((budgetMs) => budgets.push(budgetMs), EVERY_MS, BUDGET_MS);
    loop.start();
    vi.advanceTimersByTime(2 * EVERY_MS);
    loop.stop();
    expect(budgets).toEqual([BUDGET_MS, BUDGET_MS]);
  });

  it('runs no pass after stop, not even one already due', () => {
    let passes = 0;
    const loop = new MaintenanceLoop(() => passes++, EVERY_MS, BUDGET_MS);
    loop.start();
    vi.advanceTimersByTime(EVERY_MS);
    loop.stop();
    vi.advanceTimersByTime(10 * EVERY_MS);
    expect(passes).toBe(1);
  });
});
