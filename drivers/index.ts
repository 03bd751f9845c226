// The one list of drivers: adding a driver is its folder (with an index.ts descriptor) and a line here.
// Order is the order of the JSON Schema's `enum` of types.
import type { DriverConfig } from '../src/core/driver.js';
import { influxdbDriver } from './influxdb/index.js';
import { modbusDriver } from './modbus/index.js';
import { mqttDriver } from './mqtt/index.js';
import { opcuaDriver } from './opcua/index.js';
import { serialDriver } from './serial/index.js';
import { simulatorDriver } from './simulator/index.js';
import { timescaledbDriver } from './timescaledb/index.js';

export const INPUT_DRIVERS = [modbusDriver, serialDriver, mqttDriver, opcuaDriver, simulatorDriver] as const;
export const OUTPUT_DRIVERS = [influxdbDriver, timescaledbDriver] as const;

/** The config of any input: one member per input driver, told apart by `type`. */
export type InputConfig = DriverConfig<(typeof INPUT_DRIVERS)[number]>;
/** The config of any output: one member per output driver, told apart by `type`. */
export type OutputConfig = DriverConfig<(typeof OUTPUT_DRIVERS)[number]>;
