// The explicit list of input types (folder = YAML type = log tag). Adding a driver = one case here.
import type { InputConfig } from '../config/index.js';
import type { Input, InputContext } from '../core/component.js';
import { SimulatorInput } from '../../drivers/simulator/simulator.js';
import { ModbusInput } from '../../drivers/modbus/modbus.js';
import { SerialInput } from '../../drivers/serial/serial.js';
import { MqttInput } from '../../drivers/mqtt/mqtt.js';
import type { OutputConfig } from '../config/index.js';
import type { Output, OutputContext } from '../core/component.js';
import { InfluxdbOutput } from '../../drivers/influxdb/influxdb.js';
import { TimescaledbOutput } from '../../drivers/timescaledb/timescaledb.js';

export function createInput(id: string, config: InputConfig, ctx: InputContext): Input {
  switch (config.type) {
    case 'simulator':
      return new SimulatorInput(
        { series: config.series, intervalMs: config.interval, measurement: config.measurement ?? id, tags: config.tags ?? {} },
        ctx,
      );
    case 'serial':
      return new SerialInput(config, ctx);
    case 'modbus':
      return new ModbusInput(config, ctx);
    case 'mqtt':
      return new MqttInput(config, ctx);
    default:
      // Every type has a case now; this guards configs built without the loader.
      throw new Error(`input ${id}: type "${(config as { type: string }).type}" is not available in this build`);
  }
}

/** The explicit list of output types; the sync engine (src/sync) wraps each driver. */
export function createOutput(id: string, config: OutputConfig, ctx: OutputContext): Output {
  switch (config.type) {
    case 'influxdb':
      return new InfluxdbOutput(config, ctx);
    case 'timescaledb':
      return new TimescaledbOutput(config, ctx);
    default:
      throw new Error(`output ${id}: type "${(config as { type: string }).type}" is not available in this build`);
  }
}
