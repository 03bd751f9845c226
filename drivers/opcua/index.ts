// The opcua input as the agent registers it (src/core/driver.ts): schema now, implementation (and
// node-opcua, several MB) only when a config names an opcua input.
import { defineInput } from '../../src/core/driver.js';
import { opcuaInput } from './schema.js';

export const opcuaDriver = defineInput({
  ...opcuaInput,
  async create(_id, config, ctx) {
    const { OpcuaInput } = await import('./opcua.js');
    return new OpcuaInput(config, ctx);
  },
});
