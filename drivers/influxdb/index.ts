// The influxdb output as the agent registers it (src/core/driver.ts): schema now, implementation on use.
import { defineOutput } from '../../src/core/driver.js';
import { influxdbOutput } from './schema.js';

export const influxdbDriver = defineOutput({
  ...influxdbOutput,
  async create(_id, config, ctx) {
    const { InfluxdbOutput } = await import('./influxdb.js');
    return new InfluxdbOutput(config, ctx);
  },
});
