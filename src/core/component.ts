// The contracts between the agent and its drivers. Drivers import only src/core.
//
// Lifecycle (all components):
//   - the factory validates nothing (the config schema did) and must not do I/O;
//   - start() begins work and resolves once the component is running (a peer that is down is not a
//     start failure: inputs and outputs retry on their own and report it through logs and metrics);
//   - stop() resolves when the component has let go of every timer, socket and file handle; after it
//     resolves the component never writes again. start() and stop() are never called concurrently.
import type { Point } from './point.js';

/** Structured logger (pino's shape); drivers get one pre-tagged with their id and type. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Where inputs put points. */
export interface Sink {
  /**
   * Hands points to the ring. The promise resolves when they are durable (their group commit
   * returned) and rejects when the ring refused them (buffer full under `drop_newest`, or shutting
   * down). Inputs that can acknowledge (MQTT) acknowledge only on resolve; polled inputs count a
   * rejection and go on.
   */
  write(points: Point[]): Promise<void>;
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
}

export interface Input {
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): InputStats;
}

export type InputFactory<C> = (config: C, context: InputContext) => Input;
