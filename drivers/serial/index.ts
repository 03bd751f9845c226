// The serial input as the agent registers it (src/core/driver.ts): schema now, implementation on use.
import { defineInput } from '../../src/core/driver.js';
import { serialInput } from './schema.js';

export const serialDriver = defineInput({
  ...serialInput,
  async create(_id, config, ctx) {
    const { SerialInput } = await import('./serial.js');
    return new SerialInput(config, ctx);
  },
});
