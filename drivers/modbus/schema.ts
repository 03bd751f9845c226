// Config of the `modbus` input: one bus (a TCP connection, an RTU serial line, or RTU over TCP through
// a serial-to-Ethernet converter), polled as a unit.
import { Type, type StaticDecode } from '@sinclair/typebox';
import { validateDetailed as validateCron } from 'node-cron';
import {
  ComponentType,
  Duration,
  IntegerEnum,
  Measurement,
  NonEmpty,
  StringEnum,
  Tags,
  defineComponent,
  derived,
  unset,
  withDefault,
} from '../../src/core/schema/kit.js';

export const REGISTER_TABLES = ['coil', 'discrete', 'input', 'holding'] as const;
export const REGISTER_TYPES = ['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'int64', 'uint64', 'float64'] as const;
export type RegisterTable = (typeof REGISTER_TABLES)[number];
export type RegisterType = (typeof REGISTER_TYPES)[number];

/** 16-bit registers each type occupies (a bool is one coil/discrete bit, or one register read as nonzero). */
export const REGISTER_WORDS: Readonly<Record<RegisterType, number>> = {
  bool: 1,
  int16: 1,
  uint16: 1,
  int32: 2,
  uint32: 2,
  float32: 2,
  int64: 4,
  uint64: 4,
  float64: 4,
};

const Order = (what: string) =>
  withDefault(StringEnum(['big', 'little'] as const, { description: what }), 'big');

export const ModbusRegisterSchema = Type.Object(
  {
    name: NonEmpty('Field name of the value in the point.'),
    table: StringEnum(REGISTER_TABLES, {
      description: 'Modbus table: coil (read/write bits), discrete (read-only bits), input (read-only registers), holding (read/write registers).',
    }),
    address: Type.Integer({
      minimum: 0,
      maximum: 65535,
      description: 'Zero-based protocol address within the table (register 40101 in 1-based "Modicon" notation is holding address 100).',
    }),
    type: derived(
      StringEnum(REGISTER_TYPES, {
        description: 'How the register(s) decode. Default: bool for coil/discrete, uint16 otherwise. 32-bit types span 2 registers, 64-bit types 4; bool on input/holding is "nonzero".',
      }),
    ),
    word_order: Order('Order of the 16-bit words of a 32/64-bit value: big = most significant word first (ABCD), little = least significant first (CDAB).'),
    byte_order: Order('Order of the two bytes inside each 16-bit word: big (the Modbus standard) or little (swapped, BADC/DCBA).'),
    scale: withDefault(Type.Number({ description: 'Multiplier applied to the raw value: value = raw * scale + offset.' }), 1),
    offset: withDefault(Type.Number({ description: 'Added after scaling: value = raw * scale + offset.' }), 0),
    deadband: Type.Optional(
      Type.Number({
        minimum: 0,
        description: 'Store a new value only when it differs from the last stored one by more than this (after scale/offset); the value is still stored every deadband_heartbeat. Default: store every reading.',
      }),
    ),
    unit: Type.Optional(Type.String({ description: 'Unit of the value (e.g. "degC"), for documentation and dashboards.' })),
    own_request: Type.Optional(
      Type.Boolean({
        description:
          'Read this register in a request of its own, never merged with its neighbours or read through: for an address that is slow, often busy (exception 6) or otherwise fails, so its neighbours are not failed with it. sluice also isolates such a register by itself once it fails while its neighbours answer; this option saves the requests that finding out costs. Default: false.',
      }),
    ),
  },
  { additionalProperties: false, description: 'One value read from a device.' },
);

export const ModbusDeviceSchema = Type.Object(
  {
    unit_id: Type.Integer({
      minimum: 0,
      maximum: 255,
      description: 'Modbus unit (slave) id: 1-247 on RTU (0 is broadcast, which never answers); TCP gateways sometimes use 0 or 255.',
    }),
    name: Type.Optional(NonEmpty('Device name, added to its points as the `device` tag.')),
    registers: Type.Array(ModbusRegisterSchema, { minItems: 1, description: 'The values to read from this device.' }),
  },
  { additionalProperties: false, description: 'A device on the bus.' },
);

const RTU_KEYS = ['baud_rate', 'parity', 'data_bits', 'stop_bits'] as const;

export const ModbusInputSchema = Type.Object(
  {
    type: ComponentType('modbus', 'Modbus TCP, RTU or RTU-over-TCP master polling registers and coils.'),
    url: Type.String({
      pattern: '^(?:tcp://[^/\\s]+|rtu://\\S+|rtu\\+tcp://[^/\\s]+)$',
      'x-expects': 'a url tcp://host[:port] (port 502 by default), rtu://<serial device>, e.g. rtu:///dev/ttyUSB0, or rtu+tcp://host:port',
      description:
        'The bus: tcp://host[:port] (Modbus TCP, default port 502), rtu://<device path>, e.g. rtu:///dev/ttyUSB0, or rtu+tcp://host:port (RTU frames over TCP, to a serial-to-Ethernet converter in transparent mode).',
      examples: ['tcp://192.168.1.20:502', 'rtu:///dev/ttyUSB0', 'rtu+tcp://192.168.1.30:4001'],
    }),
    baud_rate: withDefault(
      Type.Integer({ minimum: 1, description: 'RTU: serial speed in bit/s. rtu+tcp: the speed of the line behind the converter, for the silence between frames and the time an answer takes.' }),
      9600,
    ),
    parity: withDefault(StringEnum(['none', 'even', 'odd'] as const, { description: 'RTU (rtu+tcp: of the line behind the converter): serial parity.' }), 'none'),
    data_bits: withDefault(IntegerEnum([7, 8] as const, { description: 'RTU (rtu+tcp: of the line behind the converter): data bits per character.' }), 8),
    stop_bits: withDefault(IntegerEnum([1, 2] as const, { description: 'RTU (rtu+tcp: of the line behind the converter): stop bits.' }), 1),
    interval: withDefault(Duration({ description: 'Time between polls (ignored when schedule is set).' }), '10s'),
    schedule: Type.Optional(
      NonEmpty('Poll on a cron schedule instead of every interval: 5 fields (minute hour day month weekday) or 6 (with seconds first), in the local time zone.', {
        examples: ['*/15 * * * *', '0 0 * * * *'],
      }),
    ),
    max_in_flight: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 64,
        description:
          'TCP only: requests outstanding at once on the connection, at most one per unit id (default 1: one at a time). Above 1, a unit that is slow or does not answer no longer holds up the others; only for a server or gateway that accepts several transactions at once (many TCP-to-RTU gateways do not).',
      }),
    ),
    timeout: withDefault(Duration({ description: 'How long to wait for one response before the request fails; a dead device costs at most this per poll.' }), '1s'),
    deadband_heartbeat: withDefault(
      Duration({ description: 'With a deadband, store the value at least this often even if it has not moved.' }),
      '10m',
    ),
    measurement: Measurement(),
    tags: Tags('Tags added to every point of this input.'),
    devices: Type.Array(ModbusDeviceSchema, { minItems: 1, description: 'The devices polled on this bus, one request at a time.' }),
  },
  { additionalProperties: false, description: 'A Modbus TCP, RTU or RTU-over-TCP bus.' },
);

export type ModbusInputConfig = StaticDecode<typeof ModbusInputSchema>;
export type ModbusDeviceConfig = StaticDecode<typeof ModbusDeviceSchema>;
export type ModbusRegisterConfig = StaticDecode<typeof ModbusRegisterSchema>;

export const modbusInput = defineComponent({
  type: 'modbus',
  schema: ModbusInputSchema,
  finish(cfg, ctx) {
    if (unset(cfg.measurement)) cfg.measurement = ctx.id;
    const serialPort = cfg.url.startsWith('rtu://');
    const rtuOverTcp = cfg.url.startsWith('rtu+tcp://');
    // RTU framing (on a serial port or through a converter): one transaction at a time, unit 0 is broadcast.
    const rtu = serialPort || rtuOverTcp;
    if (ctx.raw.max_in_flight !== undefined && rtu) ctx.error(['max_in_flight'], 'max_in_flight applies only to tcp:// urls: a serial line carries one transaction at a time', 'key');
    if (serialPort) {
      if (cfg.url.length <= 'rtu://'.length) ctx.error(['url'], 'rtu url has no device path, e.g. rtu:///dev/ttyUSB0');
    } else {
      const scheme = rtuOverTcp ? 'rtu+tcp' : 'tcp';
      const m = /^(\[[^\]]+\]|[^:/]+)(?::([0-9]+))?$/.exec(cfg.url.slice(scheme.length + 3));
      const port = m?.[2] === undefined ? 502 : Number(m[2]);
      if (rtuOverTcp) {
        // Converters listen on ports of their own (4001, 8899, 502, …): no default would be right.
        if (!m || m[2] === undefined || !(port >= 1 && port <= 65535)) ctx.error(['url'], `"${cfg.url}" is not rtu+tcp://host:port with a port 1-65535 (the converter's port: there is no default)`);
      } else {
        if (!m || !(port >= 1 && port <= 65535)) ctx.error(['url'], `"${cfg.url}" is not tcp://host[:port] with a port 1-65535`);
        for (const key of RTU_KEYS) {
          if (ctx.raw[key] !== undefined) ctx.error([key], `${key} applies only to rtu:// and rtu+tcp:// urls (this bus is ${cfg.url})`, 'key');
        }
      }
    }
    if (cfg.schedule !== undefined) {
      if (ctx.raw.interval !== undefined) ctx.error(['schedule'], 'set either interval or schedule, not both', 'key');
      const v = validateCron(cfg.schedule);
      if (!v.valid) ctx.error(['schedule'], `invalid cron schedule: ${v.errors.map((e) => e.message).join('; ')}`);
    }
    const unitIds = new Map<number, number>();
    const names = new Map<string, number>();
    cfg.devices.forEach((dev, d) => {
      if (rtu && dev.unit_id === 0) ctx.error(['devices', d, 'unit_id'], 'unit_id 0 is the RTU broadcast address and never answers; use 1-247');
      const prevUnit = unitIds.get(dev.unit_id);
      if (prevUnit !== undefined) {
        ctx.error(['devices', d, 'unit_id'], `unit_id ${dev.unit_id} is already used by devices[${prevUnit}]; list all its registers in one device`);
      } else unitIds.set(dev.unit_id, d);
      if (dev.name !== undefined) {
        const prevName = names.get(dev.name);
        if (prevName !== undefined) ctx.error(['devices', d, 'name'], `device name "${dev.name}" is already used by devices[${prevName}]`);
        else names.set(dev.name, d);
      }
      const fields = new Map<string, number>();
      dev.registers.forEach((reg, r) => {
        const at = ['devices', d, 'registers', r] as const;
        const bitTable = reg.table === 'coil' || reg.table === 'discrete';
        if (unset(reg.type)) reg.type = bitTable ? 'bool' : 'uint16';
        else if (bitTable && reg.type !== 'bool') ctx.error([...at, 'type'], `a ${reg.table} holds one bit: type must be bool, not ${reg.type}`);
        const last = reg.address + REGISTER_WORDS[reg.type] - 1;
        if (last > 65535) ctx.error([...at, 'address'], `${reg.type} at address ${reg.address} spans ${REGISTER_WORDS[reg.type]} registers and runs past 65535`);
        if (reg.scale === 0) ctx.error([...at, 'scale'], 'scale 0 makes every value 0');
        if (reg.type === 'bool' && (reg.scale !== 1 || reg.offset !== 0)) {
          ctx.error([...at, reg.scale !== 1 ? 'scale' : 'offset'], 'scale and offset do not apply to a bool');
        }
        const prev = fields.get(reg.name);
        if (prev !== undefined) ctx.error([...at, 'name'], `field "${reg.name}" is already read by registers[${prev}] of this device`);
        else fields.set(reg.name, r);
      });
    });
  },
});
