// /healthz: is this agent doing its job? Pure: judged from a snapshot, so the rules are testable
// without waiting for the clock. Each check names what is wrong in words a person on call can act on.
import type { OutputStats } from '../core/component.js';
import type { StatusSnapshot } from './view.js';

export interface HealthOptions {
  /** An input with an interval is silent after this many intervals without a point. */
  silentIntervals: number;
  /** ...but never sooner than this: a GC pause or a slow SD card is not an outage. */
  minSilentMs: number;
  /** An output with a backlog that has delivered nothing for this long is failing. */
  outputStallMs: number;
  /** Free disk below this on the data directory's file system is unhealthy. */
  minFreeDiskBytes: number;
}

export const DEFAULT_HEALTH: HealthOptions = {
  silentIntervals: 3,
  minSilentMs: 10_000,
  outputStallMs: 5 * 60_000,
  minFreeDiskBytes: 16 * 1024 * 1024,
};

export interface HealthCheck {
  /** `store`, `input:<id>`, `output:<id>`. */
  name: string;
  ok: boolean;
  message: string;
}

export interface HealthReport {
  status: 'ok' | 'unhealthy';
  /** The failing checks' messages, for a quick look. */
  reasons: string[];
  checks: HealthCheck[];
}

export interface HealthContext {
  snapshot: StatusSnapshot;
  startedMs: number;
  /** The last group commit's failure, if the last one failed. */
  lastCommitError: Error | null;
  /** Free bytes on the data directory's file system (null: unknown). */
  freeDiskBytes: number | null;
  /** What the running outputs report about themselves, by id. */
  outputStats: Record<string, Pick<OutputStats, 'lastError' | 'paused' | 'lastSuccessMs'> | undefined>;
}

export function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.round(m / 60);
  return h < 48 ? `${h}h` : `${Math.round(h / 24)}d`;
}

export function evaluateHealth(ctx: HealthContext, options: HealthOptions = DEFAULT_HEALTH): HealthReport {
  const { snapshot, startedMs } = ctx;
  const now = snapshot.nowMs;
  const checks: HealthCheck[] = [];

  // The store: the one thing every reading goes through.
  if (ctx.lastCommitError) {
    checks.push({ name: 'store', ok: false, message: `store: the last group commit failed: ${ctx.lastCommitError.message}` });
  } else if (ctx.freeDiskBytes !== null && ctx.freeDiskBytes < options.minFreeDiskBytes) {
    const room = snapshot.store.capacity_bytes - snapshot.store.store_bytes;
    checks.push({
      name: 'store',
      ok: false,
      message: `store: only ${mib(ctx.freeDiskBytes)} free on the data directory's disk (the store may still grow by ${mib(Math.max(0, room))})`,
    });
  } else {
    checks.push({ name: 'store', ok: true, message: `store: ${mib(snapshot.store.store_bytes)} of ${mib(snapshot.store.capacity_bytes)}` });
  }

  for (const [id, input] of Object.entries(snapshot.inputs)) {
    const name = `input:${id}`;
    if (input.interval_ms === null) {
      // Event-driven inputs (MQTT, serial) may be quiet for good reasons; their errors show in metrics.
      checks.push({ name, ok: true, message: `input ${id}: event-driven, ${input.points} points` });
      continue;
    }
    const limitMs = Math.max(options.silentIntervals * input.interval_ms, options.minSilentMs);
    const since = input.lastPointMs ?? startedMs;
    const silentMs = now - since;
    if (silentMs > limitMs) {
      const what = input.lastPointMs === null ? 'no point since start' : `no point for ${formatAge(silentMs)}`;
      checks.push({ name, ok: false, message: `input ${id}: ${what} (expected one every ${formatAge(input.interval_ms)}; ${input.errors} errors)` });
    } else {
      checks.push({ name, ok: true, message: `input ${id}: last point ${formatAge(Math.max(0, silentMs))} ago` });
    }
  }

  for (const [id, out] of Object.entries(snapshot.store.outputs)) {
    const name = `output:${id}`;
    const stats = ctx.outputStats[id];
    const lastOk = Math.max(out.last_success_ms ?? 0, stats?.lastSuccessMs ?? 0, startedMs);
    const stalledMs = now - lastOk;
    const lastError = stats?.lastError ? `: ${stats.lastError}` : '';
    if (stats?.paused) {
      // Paused outputs (bad credentials, a fatal refusal) do not heal by waiting: say so at once.
      checks.push({ name, ok: false, message: `output ${id}: paused (${stats.paused}), ${out.backlog_points} points waiting${lastError}` });
    } else if (out.backlog_points > 0 && stalledMs > options.outputStallMs) {
      checks.push({
        name,
        ok: false,
        message: `output ${id}: nothing delivered for ${formatAge(stalledMs)}, ${out.backlog_points} points waiting${lastError}`,
      });
    } else {
      checks.push({ name, ok: true, message: `output ${id}: backlog ${out.backlog_points} points` });
    }
  }

  const reasons = checks.filter((c) => !c.ok).map((c) => c.message);
  return { status: reasons.length ? 'unhealthy' : 'ok', reasons, checks };
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
