// The simulator input as the agent registers it (src/core/driver.ts): schema now, implementation on use.
import { defineInput } from '../../src/core/driver.js';
import { simulatorInput } from './schema.js';

export const simulatorDriver = defineInput({
  ...simulatorInput,
  async create(id, config, ctx) {
    const { SimulatorInput } = await import('./simulator.js');
    return new SimulatorInput({ series: config.series, intervalMs: config.interval, measurement: config.measurement ?? id, tags: config.tags ?? {} }, ctx);
  },
});
