// The explicit list of input and output types (folder = YAML type = log tag). Adding a driver = one
// case here. Drivers are imported when a config names them, not before: their libraries (mqtt, pg,
// serialport, the InfluxDB client) cost the process several MB each, and a gateway uses one or two.
import type { InputConfig, OutputConfig } from '../config/index.js';
import type { Input, InputContext, Output, OutputContext } from '../core/component.js';

export async function createInput(id: string, config: InputConfig, ctx: InputContext): Promise<Input> {
  switch (config.type) {
    case 'simulator': {
      const { SimulatorInput } = await import('../../drivers/simulator/simulator.js');
      return new SimulatorInput(
        { series: config.series, intervalMs: config.interval, measurement: config.measurement ?? id, tags: config.tags ?? {} },
        ctx,
      );
    }
    case 'serial': {
      const { SerialInput } = await import('../../drivers/serial/serial.js');
      return new SerialInput(config, ctx);
    }
    case 'modbus': {
      const { ModbusInput } = await import('../../drivers/modbus/modbus.js');
      return new ModbusInput(config, ctx);
    }
    case 'mqtt': {
      const { MqttInput } = await import('../../drivers/mqtt/mqtt.js');
      return new MqttInput(config, ctx);
    }
    default:
      // Every type has a case now; this guards configs built without the loader.
      throw new Error(`input ${id}: type "${(config as { type: string }).type}" is not available in this build`);
  }
}

/** The explicit list of output types; the sync engine (src/sync) wraps each driver. */
export async function createOutput(id: string, config: OutputConfig, ctx: OutputContext): Promise<Output> {
  switch (config.type) {
    case 'influxdb': {
      const { InfluxdbOutput } = await import('../../drivers/influxdb/influxdb.js');
      return new InfluxdbOutput(config, ctx);
    }
    case 'timescaledb': {
      const { TimescaledbOutput } = await import('../../drivers/timescaledb/timescaledb.js');
      return new TimescaledbOutput(config, ctx);
    }
    default:
      throw new Error(`output ${id}: type "${(config as { type: string }).type}" is not available in this build`);
  }
}
