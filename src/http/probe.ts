// One place that reads the agent for the endpoint: a snapshot of the store and inputs, cached briefly
// because ring.status() sums over the chunk table and both a scraper and an open status page ask for it.
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { sinkRefusal, type OutputStats } from '../core/component.js';
import type { InputView, AgentView, CommitEvent, StatusSnapshot } from './view.js';
import { DEFAULT_HEALTH, evaluateHealth, type HealthOptions, type HealthReport } from './health.js';

/** How long a snapshot is reused: a page polls every few seconds, Prometheus every 15 s or so. */
const SNAPSHOT_MAX_AGE_MS = 1000;

export class AgentProbe {
  readonly startedMs = Date.now();
  lastCommitError: Error | null = null;
  private snapshot: StatusSnapshot | undefined;
  private readonly commitListeners: ((e: CommitEvent) => void)[] = [];

  constructor(
    readonly view: AgentView,
    private readonly healthOptions: HealthOptions = DEFAULT_HEALTH,
  ) {}

  /** Fed by the ring's commit hook. */
  onCommit(event: CommitEvent): void {
    // A drop_newest refusal is the policy at work, not a broken store (it is counted as a drop).
    this.lastCommitError = event.error && sinkRefusal(event.error) !== 'full' ? event.error : null;
    for (const l of this.commitListeners) l(event);
  }

  addCommitListener(listener: (e: CommitEvent) => void): void {
    this.commitListeners.push(listener);
  }

  snap(maxAgeMs = SNAPSHOT_MAX_AGE_MS): StatusSnapshot {
    const now = Date.now();
    if (this.snapshot && now - this.snapshot.nowMs <= maxAgeMs) return this.snapshot;
    const inputs: Record<string, InputView> = {};
    for (const [id, input] of this.view.inputs) {
      const cfg = this.view.config.inputs[id] as unknown as Record<string, unknown> | undefined;
      inputs[id] = { type: typeof cfg?.type === 'string' ? cfg.type : 'unknown', measurement: measurementOf(id, cfg), interval_ms: expectedIntervalMs(cfg), ...input.stats() };
    }
    this.snapshot = { nowMs: now, store: this.view.ring.status(), inputs };
    return this.snapshot;
  }

  /** What each running output says about itself (absent for cursors whose output is not running). */
  outputStats(): Record<string, OutputStats | undefined> {
    const out: Record<string, OutputStats | undefined> = {};
    for (const [id, o] of this.view.outputs ?? []) out[id] = o.stats();
    return out;
  }

  outputType(id: string): string {
    const cfg = this.view.config.outputs[id] as unknown as Record<string, unknown> | undefined;
    return typeof cfg?.type === 'string' ? cfg.type : 'unknown';
  }

  freeDiskBytes(): number | null {
    try {
      const s = statfsSync(dirname(this.view.ring.file));
      return s.bavail * s.bsize;
    } catch {
      return null;
    }
  }

  health(maxAgeMs?: number): HealthReport {
    return evaluateHealth(
      {
        snapshot: this.snap(maxAgeMs),
        startedMs: this.startedMs,
        lastCommitError: this.lastCommitError,
        freeDiskBytes: this.freeDiskBytes(),
        outputStats: this.outputStats(),
      },
      this.healthOptions,
    );
  }
}

/** The measurement an input writes, when its config fixes one (MQTT and serial may take it from data). */
function measurementOf(id: string, cfg: Record<string, unknown> | undefined): string | null {
  if (typeof cfg?.measurement === 'string') return cfg.measurement;
  return cfg?.type === 'simulator' ? id : null;
}

/** How often an input should produce a point, when it polls; null for event-driven inputs. */
export function expectedIntervalMs(cfg: Record<string, unknown> | undefined): number | null {
  if (typeof cfg?.interval !== 'number' || cfg.schedule !== undefined) return null;
  // With a deadband a poller stores unchanged values only at its heartbeat.
  const heartbeat = cfg.deadband_heartbeat;
  const hasDeadband = JSON.stringify(cfg.devices ?? []).includes('"deadband"');
  return hasDeadband && typeof heartbeat === 'number' ? Math.max(cfg.interval, heartbeat) : cfg.interval;
}
