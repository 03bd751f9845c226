// The explicit list of input types (folder = YAML type = log tag). Adding a driver = one case here.
import type { InputConfig } from '../config/index.js';
import type { Input, InputContext } from '../core/component.js';
import { SimulatorInput } from '../../drivers/simulator/simulator.js';

export function createInput(id: string, config: InputConfig, ctx: InputContext): Input {
  switch (config.type) {
    case 'simulator':
      return new SimulatorInput(
        { series: config.series, intervalMs: config.interval, measurement: config.measurement ?? id, tags: config.tags ?? {} },
        ctx,
      );
    default:
      throw new Error(`input ${id}: type "${config.type}" is not available in this build yet`);
  }
}
