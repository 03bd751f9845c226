// The modbus input as the agent registers it (src/core/driver.ts): schema now, implementation on use.
import { defineInput } from '../../src/core/driver.js';
import { modbusInput } from './schema.js';

export const modbusDriver = defineInput({
  ...modbusInput,
  async create(_id, config, ctx) {
    const { ModbusInput } = await import('./modbus.js');
    return new ModbusInput(config, ctx);
  },
});
