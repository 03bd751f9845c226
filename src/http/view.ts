// What the HTTP endpoint reads from a running agent. An interface rather than the Agent class so the
// endpoint can be tested (and reused) without every driver, and so it needs nothing the agent does not
// already hold.
import type { Config } from '../config/index.js';
import type { Input, InputStats, OutputStats } from '../core/component.js';
import type { CommitEvent, StatusReader, StoreReader, StoreStatus } from '../store/roles.js';
import type { RulesStats } from '../rules/engine.js';

/** An output as far as the endpoint cares (the agent's OutputSync). */
export interface OutputLike {
  stats(): OutputStats;
}

export interface AgentView {
  readonly config: Config;
  /** The store as the endpoint uses it: series to read, status to report, the commit hook to watch. */
  readonly ring: StoreReader & StatusReader;
  readonly inputs: ReadonlyMap<string, Input>;
  /** Present once outputs run in the agent; without it the ring's cursors describe the outputs. */
  readonly outputs?: ReadonlyMap<string, OutputLike>;
  /** Config reloads and fleet management (src/fleet), when the agent runs under them. */
  readonly control?: ControlView;
  /** Validation and alert rules (src/rules), when configured; follows reloads. */
  readonly rules?: { stats(): RulesStats };
}

/** The `config` and `fleet` objects of /api/status (src/fleet/controller.ts fills them). */
export interface ControlView {
  configStatus(): Record<string, unknown>;
  fleetStatus(): Record<string, unknown> | null;
}

/** A group commit as the ring reports it (StatusReader.onCommit). */
export type { CommitEvent };

export interface InputView extends InputStats {
  type: string;
  measurement: string | null;
  interval_ms: number | null;
}

export interface StatusSnapshot {
  nowMs: number;
  store: StoreStatus;
  inputs: Record<string, InputView>;
}
