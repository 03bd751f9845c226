// What a driver folder exports: one descriptor that says everything the agent needs to know about it —
// its YAML `type`, whether it is an input or an output, its config schema (with defaults and the
// checks a schema cannot say), and a loader for its implementation. drivers/index.ts lists them all.
//
// The schema is imported eagerly (every config is validated against every type), the implementation
// only when a config names the type: the drivers' libraries (mqtt, pg, serialport, the InfluxDB
// client) cost the process several MB each, and a gateway uses one or two.
import type { StaticDecode, TObject } from '@sinclair/typebox';
import type { Input, InputContext, Output, OutputContext } from './component.js';
import type { ComponentDef } from './schema/kit.js';

export interface InputDriver<S extends TObject = TObject> extends ComponentDef<S> {
  readonly kind: 'input';
  /** Loads the implementation and makes one input; no I/O beyond loading (start() connects). */
  create(id: string, config: StaticDecode<S>, ctx: InputContext): Promise<Input>;
}

export interface OutputDriver<S extends TObject = TObject> extends ComponentDef<S> {
  readonly kind: 'output';
  /** Loads the implementation and makes one output; no I/O beyond loading (the sync engine drives it). */
  create(id: string, config: StaticDecode<S>, ctx: OutputContext): Promise<Output>;
}

export function defineInput<S extends TObject>(driver: Omit<InputDriver<S>, 'kind'>): InputDriver<S> {
  return { ...driver, kind: 'input' };
}

export function defineOutput<S extends TObject>(driver: Omit<OutputDriver<S>, 'kind'>): OutputDriver<S> {
  return { ...driver, kind: 'output' };
}

/** The decoded config of a driver (or of a union of drivers: one member per driver). */
export type DriverConfig<D> = D extends InputDriver<infer S> ? StaticDecode<S> : D extends OutputDriver<infer S> ? StaticDecode<S> : never;
