// The contracts between the agent and its drivers. Drivers import only src/core.
//
// Lifecycle (all components):
//   - the factory validates nothing (the config schema did) and must not do I/O;
//   - start() begins work and resolves once the component is running (a peer that is down is not a
//     start failure: inputs and outputs retry on their own and report it through logs and metrics);
//   - stop() resolves when the component has let go of every timer, socket and file handle; after it
//     resolves the component never writes again. start() and stop() are never called concurrently.
import type { RowGroup } from './chunk.js';
import type { ByteBudget } from './memory.js';
import type { Point } from './point.js';

/** Structured logger (pino's shape); drivers get one pre-tagged with their id and type. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/**
 * Why a sink refused points: `full` (the store is at its cap under when_full: drop_newest) or `closed`
 * (the agent is stopping). Inputs tell the two apart by `reason`, not by the store's own classes.
 */
export class SinkRefusal extends Error {
  override name = 'SinkRefusal';
  constructor(
    readonly reason: 'full' | 'closed',
    message: string,
  ) {
    super(message);
  }
}

/** The refusal `err` is, if it is one. */
export function sinkRefusal(err: unknown): SinkRefusal['reason'] | undefined {
  return err instanceof SinkRefusal ? err.reason : undefined;
}

/**
 * A small keyed record an input asks the store to write in the same transaction as the points it hands
 * over with it (`value: null` deletes the key): after a crash the input knows exactly which of its
 * messages are stored. Marks of one write, and of successive writes, are applied in order. The MQTT
 * input records the packet ids of committed messages so a redelivered copy is not stored twice.
 */
export interface CommitMark {
  /** Whose marks these are, e.g. `mqtt:<input id>`. */
  scope: string;
  key: number;
  value: string | null;
}

/** Where inputs put points. */
export interface Sink {
  /**
   * Hands points to the ring. The promise resolves when they are durable (their group commit
   * returned) and rejects with a SinkRefusal when the ring refused them (buffer full under
   * `drop_newest`, or shutting down). Inputs that can acknowledge (MQTT) acknowledge only on resolve;
   * polled inputs count a rejection and go on. `marks` are committed with the points, or refused with
   * them; a write of marks alone (no points) is committed too.
   */
  write(points: Point[], marks?: readonly CommitMark[]): Promise<void>;
  /**
   * The commit marks of `scope` as the last group commit left them (see CommitMark). Optional: a sink
   * without it keeps no marks, and an input relying on them falls back to what it knows in memory.
   */
  readMarks?(scope: string): ReadonlyMap<number, string>;
  /**
   * Asks for the pending group commit now instead of at `commit_interval`. For inputs whose peer
   * stops sending until they acknowledge (MQTT's in-flight window): without it such a peer would be
   * throttled to one window per commit interval. Optional: sinks without it commit on their interval.
   */
  commitNow?(): void;
}

/** Counters a driver reports; exposed as metrics and in status. */
export interface InputStats {
  /** Points produced. */
  points: number;
  /** Inputs that could not be turned into points (malformed payloads, garbage lines, exceptions). */
  errors: number;
  /** Points the ring refused (buffer full under drop_newest, or shutting down). */
  refused: number;
  /** Last time a point was produced, ms since the epoch. */
  lastPointMs: number | null;
  /** Driver-specific counters (e.g. Modbus errors by exception code), exposed as metrics. */
  counters?: Record<string, number>;
}

export interface InputContext {
  id: string;
  log: Logger;
  sink: Sink;
  /** Agent id, for client ids and the like. */
  agentId: string;
  dataDir: string;
  /**
   * What all inputs together may hold between receipt and commit (src/core/memory.ts). An input whose
   * peer can wait (MQTT) stops reading while it is exhausted. Optional: without it intake is bounded
   * only by the input's own window.
   */
  intake?: ByteBudget;
}

export interface Input {
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): InputStats;
}

export type InputFactory<C> = (config: C, context: InputContext) => Input;

// ------------------------------------------------------------------------------------------ outputs
//
// Split as Telegraf splits them: the agent owns buffering (the ring), batching, retries, pacing and the
// delivery cursor (src/sync); an output driver writes one batch and says, through the category of the
// error it throws, what should happen next.
//
// Lifecycle of an Output:
//   - the factory does no I/O (a peer that is down is never a start failure);
//   - connect() runs before the first write, and again before writing resumes after an 'auth' or
//     'fatal' pause (so a rotated token file or a created database is picked up). It may throw
//     OutputError; it is never called concurrently with write();
//   - write() may overlap other write() calls (the engine decides how many); it never retries or
//     buffers by itself, and it gives up promptly when `signal` aborts (stop, or the request timeout);
//   - encode(), when a driver has it, is pure and synchronous: the CPU part of a write (serializing),
//     which the engine runs for the next batch while a request is in flight and hands to write();
//   - close() runs once, after every write has settled; it frees sockets and pools.

/** A batch for an output: rows of one or more series, each part in time order. Pure data. */
export interface OutputBatch {
  /** `seriesKey` is the canonical line-protocol series key (parseSeriesKey reads it back). */
  parts: readonly { seriesKey: string; group: RowGroup }[];
  /** Rows in the batch. A point's index is its position counting through the parts in order. */
  points: number;
}

export interface WriteResult {
  /**
   * Points that will never be delivered and must not be retried: unwritable here (no field the
   * upstream can store) or dropped by the upstream while it wrote the rest (a partial write).
   */
  rejectedPoints: number;
  /** Request payload bytes before any compression, for metrics. */
  bytes: number;
}

/**
 * What a failed write means for the engine:
 * - retry: transient (network, timeout, 5xx): back off exponentially with jitter, send again;
 * - throttle: the upstream asks to slow down (429, 503): wait `retryAfterMs` when given, then send again
 *   with less concurrency;
 * - split: the request was too large (413): send the batch in halves;
 * - reject: some points are refused for good; `rejected` lists their indices in the batch and the rest
 *   was not written (the engine sends it again); no `rejected` means "unknown which" and the engine
 *   bisects the batch to find them;
 * - auth: credentials refused (401/403): pause, keep every point, say so loudly;
 * - fatal: the upstream refuses our configuration (unknown database, a table of another shape): pause as
 *   for auth until it is fixed.
 */
export type OutputErrorCategory = 'retry' | 'throttle' | 'split' | 'reject' | 'auth' | 'fatal';

export interface OutputErrorDetails {
  /** HTTP status (or SQLSTATE) the upstream answered with. */
  status?: number | string;
  /** throttle: how long the upstream asked us to wait (Retry-After). */
  retryAfterMs?: number;
  /** reject: indices of the refused points within the batch. */
  rejected?: readonly number[];
  /** reject: why, as a short stable name (`field_type_conflict`, `bad_line`, …): the quarantine counts by it. */
  reason?: string;
  /** retry: the request never reached the upstream (connection refused, no route, DNS): probing is free. */
  unreached?: boolean;
  /** retry: the request timed out. */
  timeout?: boolean;
}

export class OutputError extends Error {
  override readonly name = 'OutputError';
  constructor(
    message: string,
    readonly category: OutputErrorCategory,
    readonly details: OutputErrorDetails = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface OutputContext {
  id: string;
  log: Logger;
  /** Agent id, for user agents and the like. */
  agentId: string;
}

export interface Output {
  connect(signal: AbortSignal): Promise<void>;
  /** `encoded`, when given, is what encode() returned for this very batch. */
  write(batch: OutputBatch, signal: AbortSignal, encoded?: unknown): Promise<WriteResult>;
  encode?(batch: OutputBatch): unknown;
  close(): Promise<void>;
  /** Driver-specific counters (e.g. unsigned values sent as floats), exposed as metrics. */
  counters?(): Record<string, number>;
}

/** What an output reports for metrics (`sluice_output_*`) and logs; delivery totals live in the ring's cursor. */
export interface OutputStats {
  /** Points delivered by this process (the cursor's sent_points counts across restarts). */
  sentPoints: number;
  /** Points refused for good by this process. */
  rejectedPoints: number;
  /** Write requests made, and their payload bytes before compression. */
  requests: number;
  sentBytes: number;
  /** Requests that failed and were or will be sent again, by cause. */
  retries: number;
  throttles: number;
  /** Batches split because the upstream found them too large. */
  splits: number;
  /** Latency of the last successful request and its moving average, in ms. */
  lastLatencyMs: number | null;
  latencyMs: number | null;
  lastSuccessMs: number | null;
  lastError: string | null;
  lastErrorMs: number | null;
  /** Why the output is paused ('auth', 'fatal'), or null. */
  paused: string | null;
  /** Requests in flight, the current concurrency limit and batch size (adaptive). */
  inFlight: number;
  concurrency: number;
  batchPoints: number;
  /** Age of the live lane's oldest record not yet delivered, ms (0 when it is drained). */
  liveLagMs: number;
  /** Driver counters. */
  counters: Record<string, number>;
}
