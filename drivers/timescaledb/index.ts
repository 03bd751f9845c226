// The timescaledb output as the agent registers it (src/core/driver.ts): schema now, implementation on use.
import { defineOutput } from '../../src/core/driver.js';
import { timescaledbOutput } from './schema.js';

export const timescaledbDriver = defineOutput({
  ...timescaledbOutput,
  async create(_id, config, ctx) {
    const { TimescaledbOutput } = await import('./timescaledb.js');
    return new TimescaledbOutput(config, ctx);
  },
});
