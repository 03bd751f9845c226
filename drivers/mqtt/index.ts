// The mqtt input as the agent registers it (src/core/driver.ts): schema now, implementation on use.
import { defineInput } from '../../src/core/driver.js';
import { mqttInput } from './schema.js';

export const mqttDriver = defineInput({
  ...mqttInput,
  async create(_id, config, ctx) {
    const { MqttInput } = await import('./mqtt.js');
    return new MqttInput(config, ctx);
  },
});
