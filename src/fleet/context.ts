// What the fleet's parts share: the persisted fleet state, the one queue every step runs through (a
// reload never overlaps a transaction), the health windows in progress, and the way to ask for a
// restart. The controller (reloads, polling, config transactions) and the binary transaction
// (binary.ts) each hold one and nothing of each other.
import type { Agent } from '../agent/agent.js';
import type { Logger } from '../core/component.js';
import { HealthWatch, type HealthSettings, type WatchResult, type WatchSpec } from './health.js';
import { emptyState, type FleetFiles, type FleetState } from './state.js';

/** `sluice run` exits with this when it must be restarted (EX_TEMPFAIL: "try again"); a supervisor brings it back. */
export const EXIT_RESTART = 75;

export class FleetContext {
  state: FleetState;
  stopped = false;
  /** Why the process is restarting, once it is: no further step runs. */
  restarting: string | undefined;
  readonly watches = new Set<HealthWatch>();
  /** When this process loaded its config: inputs started with it are judged from then. */
  readonly loadedMs = Date.now();
  /** Aborts a poll or download in flight when the agent stops. */
  readonly aborter = new AbortController();
  private queue: Promise<void>;
  private ready!: () => void;

  constructor(
    readonly agent: Agent,
    readonly files: FleetFiles,
    readonly log: Logger,
    readonly health: HealthSettings,
    private readonly onRestart: (reason: string) => void,
  ) {
    this.state = this.readState();
    // Work waits for open(); a SIGHUP before it (the agent still starting) is queued, not fatal.
    this.queue = new Promise<void>((resolve) => (this.ready = resolve));
  }

  private readState(): FleetState {
    try {
      return this.files.readState();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'fleet state unreadable; starting from an empty one');
      return emptyState();
    }
  }

  /** Lets queued steps run. */
  open(): void {
    this.ready();
  }

  /** Runs `step` after every step queued before it; a failure is logged and kept as the last error. */
  enqueue(what: string, step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.stopped || this.restarting) return;
      try {
        await step();
      } catch (err) {
        this.log.error({ err }, `${what} failed`);
        this.setError(`${what} failed: ${(err as Error).message}`);
      }
    });
    this.queue = run;
    return run;
  }

  /** Waits for whatever is queued. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Stops new work and health windows, then waits for the step that is running. */
  async close(): Promise<void> {
    this.stopped = true;
    this.aborter.abort();
    for (const w of this.watches) w.cancel();
    this.watches.clear();
    this.ready();
    await this.queue;
  }

  /** Watches the agent's health for a change; `decide` runs through the queue when the window ends. */
  watch(spec: WatchSpec, what: string, decide: (result: WatchResult) => Promise<void>): void {
    const w = new HealthWatch(this.agent, spec, this.health, (result) => {
      this.watches.delete(w);
      void this.enqueue(what, () => decide(result));
    });
    this.watches.add(w);
    w.start();
  }

  persist(): void {
    try {
      this.files.writeState(this.state);
    } catch (err) {
      this.log.error({ err }, 'cannot write the fleet state');
    }
  }

  setError(message: string): void {
    this.state.last_error = message;
    this.state.last_error_ms = Date.now();
    this.persist();
  }

  setChange(message: string): void {
    this.state.last_change = message;
    this.state.last_change_ms = Date.now();
  }

  restart(reason: string): void {
    if (this.restarting) return;
    this.restarting = reason;
    this.log.warn({ reason, exit_code: EXIT_RESTART }, `restarting: ${reason} (exit ${EXIT_RESTART}; the supervisor starts sluice again)`);
    this.onRestart(reason);
  }
}
