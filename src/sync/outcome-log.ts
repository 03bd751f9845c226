// What an output tells the operator about failures and refusals: the first failure at once, then at
// most one loud line per logEveryMs while it lasts, so a day-long outage is a handful of lines and not
// one per retry. Kept apart from the engine so its wording is in one place (the drivers' READMEs
// quote these lines).
import type { Logger, OutputError } from '../core/component.js';
import { LogThrottle } from '../core/log-throttle.js';

/** How often a refusal for good is logged (each refusal is counted in any case). */
const REJECT_LOG_EVERY_MS = 60_000;

export interface FailureContext {
  /** Where the failure happened: a lane's request, or null for the connect before any request. */
  lane: 'live' | 'backfill' | null;
  retryInMs: number;
  /** When this run of failures began (null: this is its first). */
  failingSinceMs: number | null;
  attempts: number;
}

export class OutcomeLog {
  private lastLoudLogMs = -Infinity;
  private readonly rejectLog = new LogThrottle(REJECT_LOG_EVERY_MS);

  constructor(
    private readonly log: Logger,
    private readonly logEveryMs: number,
  ) {}

  failure(e: OutputError, ctx: FailureContext, now: number): void {
    const details = { err: e.message, status: e.details.status, category: e.category, retry_in_ms: ctx.retryInMs, lane: ctx.lane ?? undefined };
    if (e.category === 'auth' || e.category === 'fatal') {
      if (now - this.lastLoudLogMs < this.logEveryMs) return;
      this.lastLoudLogMs = now;
      this.log.error(
        details,
        e.category === 'auth'
          ? 'OUTPUT PAUSED: the upstream refuses our credentials; every point is kept and will be sent once they are fixed'
          : 'OUTPUT PAUSED: the upstream refuses our configuration; every point is kept and will be sent once it is fixed',
      );
    } else if (ctx.failingSinceMs === null) {
      this.lastLoudLogMs = now;
      this.log.warn(details, ctx.lane === null ? 'upstream connect failed; keeping the data and retrying with backoff' : 'upstream write failed; keeping the data and retrying with backoff');
    } else if (now - this.lastLoudLogMs >= this.logEveryMs) {
      this.lastLoudLogMs = now;
      this.log.warn({ ...details, failing_for_ms: now - ctx.failingSinceMs, attempts: ctx.attempts }, 'upstream still failing; keeping the data');
    }
  }

  /** `quarantined`: how many of them the store's quarantine kept (sluice quarantine). */
  rejects(points: number, reason: string, now: number, quarantined = 0): void {
    const heldBack = this.rejectLog.pass(now);
    if (heldBack === undefined) return;
    const fate = quarantined > 0 ? 'kept in the quarantine (sluice quarantine list)' : 'not sent again';
    this.log.warn({ points, reason, ...(heldBack > 0 ? { held_back: heldBack } : {}) }, `the upstream refused points for good; they are counted as rejected and ${fate}`);
  }
}
