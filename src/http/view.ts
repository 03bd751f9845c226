// What the HTTP endpoint reads from a running agent. An interface rather than the Agent class so the
// endpoint can be tested (and reused) without every driver, and so it needs nothing the agent does not
// already hold.
import type { Config } from '../config/index.js';
import type { Input, InputStats } from '../core/component.js';
import type { SqliteRing, StoreStatus } from '../store/ring.js';

/** An output as far as the endpoint cares: anything with optional stats. */
export interface OutputLike {
  stats?(): Record<string, unknown>;
}

export interface AgentView {
  readonly config: Config;
  readonly ring: SqliteRing;
  readonly inputs: ReadonlyMap<string, Input>;
  /** Present once outputs run in the agent; without it the ring's cursors describe the outputs. */
  readonly outputs?: ReadonlyMap<string, OutputLike>;
}

/** A group commit as the ring reports it (SqliteRing.onCommit). */
export interface CommitEvent {
  durationMs: number;
  points: number;
  error?: Error;
}

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
