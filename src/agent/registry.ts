// Makes inputs and outputs from their configs through the one list of drivers (drivers/index.ts).
// Each driver loads its implementation when a config names its type, not before.
import { INPUT_DRIVERS, OUTPUT_DRIVERS, type InputConfig, type OutputConfig } from '../../drivers/index.js';
import type { Input, InputContext, Output, OutputContext } from '../core/component.js';

/** A driver seen from here: `type` has already selected it, so its own config type is not needed. */
interface Creator<C, T> {
  readonly type: string;
  create(id: string, config: never, ctx: C): Promise<T>;
}

function create<C, T>(drivers: readonly Creator<C, T>[], kind: string, id: string, config: { type: string }, ctx: C): Promise<T> {
  const driver = drivers.find((d) => d.type === config.type);
  // The loader accepts only registered types; this guards configs built without it.
  if (!driver) throw new Error(`${kind} ${id}: type "${config.type}" is not available in this build`);
  // `type` selected the driver, so the config is that driver's own; the union cannot say so.
  return driver.create(id, config as never, ctx);
}

export function createInput(id: string, config: InputConfig, ctx: InputContext): Promise<Input> {
  return create<InputContext, Input>(INPUT_DRIVERS, 'input', id, config, ctx);
}

export function createOutput(id: string, config: OutputConfig, ctx: OutputContext): Promise<Output> {
  return create<OutputContext, Output>(OUTPUT_DRIVERS, 'output', id, config, ctx);
}
