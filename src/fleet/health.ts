// The health window of a change (a fleet config, a staged binary): for `commit_after` the agent must
// keep doing what it did before, or the change is undone.
//
// Unhealthy, judged every second:
//   - a polled input that is judged (below) has produced nothing for max(3 × its interval, minSilentMs),
//     counted from its last point, or from its start when it has none yet;
//   - an event-driven input (MQTT, serial) that is judged has erred at least 3 times since the change
//     and produced nothing (it is "erroring continuously"; quiet is fine, sensors may have nothing to say);
//   - an output the change added or changed is paused on 'auth' or 'fatal' (credentials or its target
//     refused); outputs that merely cannot reach their upstream are the uplink's problem, not the change's;
//   - the store's last group commit failed.
// Judged inputs: those the change started (added or changed) and those that were healthy just before
// it. An input that was already failing does not hold a good change back.
import type { Agent } from '../agent/agent.js';
import { formatAge } from '../http/health.js';
import { expectedIntervalMs } from '../http/probe.js';

export interface HealthSettings {
  /** Floor of the silence a polled input is allowed (a GC pause or a slow SD card is not a failure). */
  minSilentMs: number;
  /** How often the window is judged. */
  checkEveryMs: number;
}

export const DEFAULT_HEALTH_SETTINGS: HealthSettings = { minSilentMs: 5_000, checkEveryMs: 1_000 };

const EVENT_ERRORS_LIMIT = 3;

function intervalOf(agent: Agent, id: string): number | null {
  return expectedIntervalMs(agent.config.inputs[id]);
}

/** Why a polled input counts as silent now, or null. `sinceMs`: when it started, for one without points. */
function silence(agent: Agent, id: string, sinceMs: number, settings: HealthSettings, nowMs: number): string | null {
  const input = agent.inputs.get(id);
  const interval = intervalOf(agent, id);
  if (!input || interval === null) return null;
  const s = input.stats();
  const limit = Math.max(3 * interval, settings.minSilentMs);
  const silentMs = nowMs - (s.lastPointMs ?? sinceMs);
  if (silentMs <= limit) return null;
  const what = s.lastPointMs === null ? `no point in ${formatAge(silentMs)} since it started` : `no point for ${formatAge(silentMs)}`;
  return `input ${id}: ${what} (expected one every ${formatAge(interval)}; ${s.errors} errors)`;
}

/** Inputs doing their job right now (polled ones producing; event-driven ones count as healthy). */
export function healthyInputs(agent: Agent, agentStartedMs: number, settings: HealthSettings = DEFAULT_HEALTH_SETTINGS, nowMs = Date.now()): string[] {
  return [...agent.inputs.keys()].filter((id) => silence(agent, id, agentStartedMs, settings, nowMs) === null);
}

export interface WatchSpec {
  /** What is being watched, for log lines: "config serial 7", "binary serial 8". */
  what: string;
  durationMs: number;
  /** Judged inputs, each with the time it (re)started; inputs gone from the config are skipped. */
  inputs: Map<string, number>;
  /** Outputs the change added or changed. */
  outputs: string[];
}

export type WatchResult = { ok: true } | { ok: false; reason: string };

/** One health window. Calls `done` once: ok after durationMs healthy, or at the first unhealthy judgement. */
export class HealthWatch {
  readonly startedMs = Date.now();
  readonly endsMs: number;
  private timer: NodeJS.Timeout | undefined;
  private finished = false;
  private readonly baseline = new Map<string, { points: number; errors: number }>();

  constructor(
    private readonly agent: Agent,
    readonly spec: WatchSpec,
    private readonly settings: HealthSettings,
    private readonly done: (result: WatchResult) => void,
  ) {
    this.endsMs = this.startedMs + spec.durationMs;
    for (const id of spec.inputs.keys()) {
      const s = agent.inputs.get(id)?.stats();
      if (s) this.baseline.set(id, { points: s.points, errors: s.errors });
    }
  }

  start(): void {
    this.timer = setInterval(() => this.check(), this.settings.checkEveryMs);
    this.timer.unref();
  }

  cancel(): void {
    this.finished = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** The first problem found now, or null. */
  problem(nowMs = Date.now()): string | null {
    const commitError = this.agent.probe?.lastCommitError;
    if (commitError) return `store: the last group commit failed: ${commitError.message}`;
    for (const [id, sinceMs] of this.spec.inputs) {
      const input = this.agent.inputs.get(id);
      if (!input) continue;
      if (intervalOf(this.agent, id) !== null) {
        const why = silence(this.agent, id, sinceMs, this.settings, nowMs);
        if (why) return why;
        continue;
      }
      const base = this.baseline.get(id) ?? { points: 0, errors: 0 };
      const s = input.stats();
      // Stats restart from zero when the input restarts; the baseline was taken after that.
      const errors = s.errors - base.errors;
      if (errors >= EVENT_ERRORS_LIMIT && s.points === base.points) return `input ${id}: ${errors} errors and no point since the change`;
    }
    for (const id of this.spec.outputs) {
      const stats = this.agent.outputs.get(id)?.stats();
      if (stats && (stats.paused === 'auth' || stats.paused === 'fatal')) {
        return `output ${id}: paused (${stats.paused})${stats.lastError ? `: ${stats.lastError}` : ''}`;
      }
    }
    return null;
  }

  private check(): void {
    if (this.finished) return;
    const now = Date.now();
    const problem = this.problem(now);
    if (problem !== null) return this.finish({ ok: false, reason: problem });
    if (now >= this.endsMs) this.finish({ ok: true });
  }

  private finish(result: WatchResult): void {
    this.cancel();
    this.done(result);
  }
}
