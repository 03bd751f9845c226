// The config loader: decoding, defaults and units, and every error category with its exact position.
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import {
  configSchemaJson,
  defaultConfigText,
  expandEnv,
  formatConfigError,
  formatDuration,
  formatSize,
  loadConfig,
  parseDuration,
  parseSize,
  readDuration,
  type ConfigError,
  type LoadOptions,
  type SluiceConfig,
} from '../src/config/index.js';
import type { ModbusInputConfig } from '../drivers/modbus/schema.js';
import type { MqttInputConfig } from '../drivers/mqtt/schema.js';
import type { SerialInputConfig } from '../drivers/serial/schema.js';

const root = new URL('../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');
const EXAMPLE_ENV = { INFLUX_TOKEN: 'secret-token', PG_PASSWORD: 'pw' };

/** A YAML document from lines, so positions in the assertions can be counted by eye. */
const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

function load(text: string, opts: Partial<LoadOptions> = {}) {
  return loadConfig({ text, file: 'test.yaml', env: {}, hostname: 'test-host', ...opts });
}

function ok(text: string, opts: Partial<LoadOptions> = {}): SluiceConfig {
  const r = load(text, opts);
  if (!r.ok) throw new Error(`expected a valid config, got:\n${r.errors.map(formatConfigError).join('\n')}`);
  return r.config;
}

/** The errors as `LINE:COL path: message` (file name left out). */
function errors(text: string, opts: Partial<LoadOptions> = {}): string[] {
  const r = load(text, opts);
  if (r.ok) throw new Error('expected errors, the config is valid');
  return r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`);
}

/** Just `LINE:COL path` of each error. */
function where(text: string, opts: Partial<LoadOptions> = {}): string[] {
  const r = load(text, opts);
  if (r.ok) throw new Error('expected errors, the config is valid');
  return r.errors.map((e) => `${e.line}:${e.col} ${e.path}`);
}

const modbus = (...registerLines: string[]): string =>
  yaml(
    'version: 1',
    'inputs:',
    '  boiler:',
    '    type: modbus',
    '    url: tcp://10.0.0.1:502',
    '    devices:',
    '      - unit_id: 1',
    '        registers:',
    ...registerLines,
  );

describe('valid configs', () => {
  it('decodes the example with defaults applied and units converted', () => {
    const c = ok(read('config/example.yaml'), { env: EXAMPLE_ENV });
    expect(c.version).toBe(1);
    expect(c.agent).toEqual({ id: 'gw-plant-a-07', data_dir: '/var/lib/sluice', tags: { site: 'plant-a' }, commit_interval: 500, memory_limit: 96 * 1024 * 1024 });
    expect(c.buffer).toEqual({ max_size: 256 * 1024 * 1024, when_full: 'rollup' });
    expect(c.aggregate).toEqual({ windows: [60_000, 3_600_000], functions: ['mean', 'min', 'max', 'count', 'last'] });
    expect(c.retention).toEqual({ raw: 7 * 86_400_000, '1m': 90 * 86_400_000, '1h': 2 * 365 * 86_400_000 });
    expect(c.http).toEqual({ listen: '127.0.0.1:9273' });

    const boiler = c.inputs.boiler as ModbusInputConfig;
    expect(boiler).toMatchObject({ type: 'modbus', interval: 5000, timeout: 1000, deadband_heartbeat: 600_000, measurement: 'boiler' });
    expect(boiler.devices[0].registers).toEqual([
      { name: 'supply_temp', table: 'holding', address: 100, type: 'float32', word_order: 'big', byte_order: 'big', scale: 1, offset: 0, unit: 'degC' },
      { name: 'flow_lpm', table: 'input', address: 4, type: 'uint16', word_order: 'big', byte_order: 'big', scale: 0.1, offset: 0, deadband: 0.5 },
      { name: 'pump_on', table: 'coil', address: 0, type: 'bool', word_order: 'big', byte_order: 'big', scale: 1, offset: 0 },
    ]);
    expect(c.inputs.dosing).toMatchObject({ url: 'rtu:///dev/ttyUSB0', baud_rate: 19200, parity: 'even', data_bits: 8, stop_bits: 1, measurement: 'dosing' });

    const climate = c.inputs.climate as SerialInputConfig;
    expect(climate).toMatchObject({ baud_rate: 115200, delimiter: '\r\n', max_line_length: 4096, format: 'csv', parity: 'none' });
    expect(climate.csv).toEqual({ columns: ['temperature', 'humidity'], separator: ',' });

    const plant = c.inputs.plant as MqttInputConfig;
    expect(plant).toMatchObject({ qos: 1, protocol_version: 4, measurement: 'plant', tags: {}, json: { time_key: 'ts', time_precision: 'ms' } });
    expect(c.inputs.demo).toEqual({ type: 'simulator', series: 3, interval: 1000, measurement: 'demo', tags: {} });

    expect(c.outputs.region).toEqual({
      type: 'influxdb',
      url: 'https://influx.region.example:8086',
      api: 'v2',
      org: 'acme',
      bucket: 'edge',
      token: 'secret-token',
      resolution: 'raw',
      batch_size: 5000,
      flush_interval: 1000,
      timeout: 10_000,
      max_rate: 20000,
      gzip: true,
    });
    expect(c.outputs.archive).toEqual({
      type: 'timescaledb',
      url: 'postgres://sluice:pw@db.region.example:5432/telemetry',
      table: 'sensor_data',
      table_template: '{measurement}',
      new_columns: 'add',
      resolution: 60_000,
      batch_size: 5000,
      flush_interval: 1000,
      timeout: 10_000,
    });
  });

  it('fills every default from `version: 1` alone', () => {
    expect(ok('version: 1\n')).toEqual({
      version: 1,
      agent: { id: 'test-host', data_dir: './sluice-data', tags: {}, commit_interval: 500, memory_limit: 96 * 1024 * 1024 },
      buffer: { max_size: 268_435_456, when_full: 'rollup' },
      inputs: {},
      aggregate: { windows: [60_000, 3_600_000], functions: ['mean', 'min', 'max', 'count', 'last'] },
      retention: {},
      outputs: {},
      http: { listen: '127.0.0.1:9273' },
      rules: { validate: [], flag_tag: { quality: 'bad' }, alerts: [], notify: { retries: 3, retry_backoff: 1000, queue_size: 1000 } },
      fleet: { interval: 300_000, commit_after: 120_000, heartbeat: {} },
    });
  });

  it('loads the embedded default (config/default.yaml): a simulator, rollups, no outputs', () => {
    expect(defaultConfigText).toBe(read('config/default.yaml'));
    const r = loadConfig({ embeddedDefault: true, env: {}, hostname: 'h' });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.inputs).toEqual({ sim: { type: 'simulator', series: 3, interval: 1000, measurement: 'sim', tags: {} } });
    expect(r.config.outputs).toEqual({});
    expect(r.config.aggregate.windows).toEqual([60_000, 3_600_000]);
    expect(r.config.agent.data_dir).toBe('./sluice-data');
    expect(loadConfig({ env: {} }).ok).toBe(true);
  });

  it('reads a file and names it in errors', () => {
    const r = loadConfig({ file: 'test/fixtures/config/bad-units.yaml', env: {} });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map(formatConfigError)).toEqual([
      'test/fixtures/config/bad-units.yaml:3:20: agent.commit_interval: bare number 500 has no unit; expected a duration with a unit, such as "500ms", "30s", "5m", "1h30m" or "7d" (units: ms, s, m, h, d, w = 7d, y = 365d)',
      'test/fixtures/config/bad-units.yaml:5:13: buffer.max_size: bare number 64 has no unit; expected a size with a unit, such as "512KiB", "64MiB" or "1GiB" (units: B, KiB, MiB, GiB, TiB, and decimal kB, MB, GB, TB)',
    ]);
  });

  it('reports a missing file as an error, not an exception', () => {
    const r = loadConfig({ file: 'test/fixtures/config/nope.yaml' });
    expect(r.ok ? [] : r.errors.map(formatConfigError)).toEqual(['test/fixtures/config/nope.yaml:1:1: (root): cannot read the config file: no such file']);
  });

  it('canonicalises tier names so 60s and 1m are the same window', () => {
    const c = ok(yaml('version: 1', 'aggregate:', '  windows: [60s, 1d]', 'retention:', '  raw: 1w', '  60s: 30d', '  24h: 1y'));
    expect(c.aggregate.windows).toEqual([60_000, 86_400_000]);
    expect(c.retention).toEqual({ raw: 604_800_000, '1m': 2_592_000_000, '1d': 31_536_000_000 });
  });
});

describe('the JSON Schema', () => {
  it('config/sluice.schema.json is what configSchemaJson() generates (run `npm run schema` after a schema change)', () => {
    expect(JSON.parse(read('config/sluice.schema.json'))).toEqual(configSchemaJson());
  });

  it('is valid draft-07 (the loader skips that check to start faster)', () => {
    const ajv = new Ajv({ strict: false });
    expect(ajv.validateSchema(configSchemaJson()), ajv.errorsText()).toBe(true);
  });

  it('is draft-07, selects a component by type, and documents every key', () => {
    const s = configSchemaJson() as { $schema: string; definitions: Record<string, Record<string, unknown>> };
    expect(s.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(s.definitions.input.allOf).toContainEqual({
      if: { type: 'object', properties: { type: { const: 'modbus' } }, required: ['type'] },
      then: { $ref: '#/definitions/input_modbus' },
    });
    const undocumented: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${path}[${i}]`));
      if (node === null || typeof node !== 'object') return;
      const props = (node as { properties?: Record<string, { description?: string; $ref?: string }> }).properties;
      for (const [k, v] of Object.entries(props ?? {})) {
        if (!v.description && !path.includes('/if')) undocumented.push(`${path}.${k}`);
      }
      for (const [k, v] of Object.entries(node)) walk(v, `${path}/${k}`);
    };
    walk(s, '#');
    expect(undocumented).toEqual([]);
  });
});

describe('error positions and paths', () => {
  it('points an unknown top-level key at the key, with a suggestion', () => {
    expect(errors(yaml('version: 1', 'agnet:', '  id: x'))).toEqual([
      '2:1 agnet: unknown key "agnet"; did you mean "agent"?',
    ]);
    expect(errors(yaml('version: 1', 'cluster: {}'))).toEqual([
      '2:1 cluster: unknown key "cluster"; known keys: version, agent, buffer, inputs, aggregate, retention, outputs, http, rules, fleet',
    ]);
  });

  it('timescaledb: keys of the other layout are errors at the key', () => {
    const out = (...lines: string[]) => yaml('version: 1', 'outputs:', '  t:', '    type: timescaledb', '    url: postgres://db/x', ...lines);
    expect(errors(out('    layout: narrow', '    new_columns: reject', '    compression: { segment_by: [device], after: 7d }'))).toEqual([
      '7:5 outputs.t.new_columns: new_columns applies to layout: wide only (this output is layout: narrow)',
      '8:5 outputs.t.compression: compression applies to layout: wide only (this output is layout: narrow)',
    ]);
    expect(errors(out('    layout: wide', '    table: readings'))).toEqual([
      '7:5 outputs.t.table: table applies to layout: narrow only; layout: wide names its tables by table_template',
    ]);
    // Unset, the layout is chosen at start from the catalog: both kinds of keys are allowed.
    expect(ok(out('    table: readings', '    compression: { segment_by: [device], after: 7d }')).outputs.t).toMatchObject({ table: 'readings', compression: { segment_by: ['device'], after: 604_800_000 } });
  });

  it('points an unknown key deep inside a register at the key, naming the selected type', () => {
    expect(errors(modbus('          - { name: t, table: holding, address: 1, typ: int16 }'))).toEqual([
      '9:52 inputs.boiler.devices[0].registers[0].typ: unknown key "typ"; did you mean "type"?',
    ]);
    expect(errors(modbus('          - name: t', '            table: holding', '            address: 1', '            retries: 3'))).toEqual([
      '12:13 inputs.boiler.devices[0].registers[0].retries: unknown key "retries"; known keys: name, table, address, type, word_order, byte_order, scale, offset, deadband, unit, own_request',
    ]);
    expect(errors(yaml('version: 1', 'inputs:', '  demo:', '    type: simulator', '    url: tcp://x'))).toEqual([
      '5:5 inputs.demo.url: unknown key "url" for type simulator; known keys: type, series, interval, measurement, tags',
    ]);
  });

  it('reports a wrong enum value at the value, listing the choices', () => {
    expect(errors(modbus('          - { name: t, table: holding, address: 1, type: float33 }'))).toEqual([
      '9:58 inputs.boiler.devices[0].registers[0].type: "float33" is not allowed; one of: bool, int16, uint16, int32, uint32, float32, int64, uint64, float64 (did you mean float32?)',
    ]);
    expect(errors(yaml('version: 1', 'buffer:', '  when_full: drop'))).toEqual([
      '3:14 buffer.when_full: "drop" is not allowed; one of: rollup, drop_oldest, drop_newest',
    ]);
  });

  it('reports an unknown or missing component type, and nothing else about that component', () => {
    expect(errors(yaml('version: 1', 'inputs:', '  a:', '    type: modbsu', '    anything: 1', '  b:', '    url: tcp://x'))).toEqual([
      '4:11 inputs.a.type: unknown input type "modbsu"; one of: modbus, serial, mqtt, opcua, simulator (did you mean modbus?)',
      '6:3 inputs.b.type: missing required key "type"',
    ]);
    expect(errors(yaml('version: 1', 'outputs:', '  a: influxdb'))).toEqual(['3:6 outputs.a: must be a map (key: value), not the string "influxdb"']);
  });

  it('rejects component ids that are not lowercase ids', () => {
    expect(errors(yaml('version: 1', 'inputs:', '  Boiler.1:', '    type: simulator'))).toEqual([
      '3:3 inputs["Boiler.1"]: "Boiler.1" is not a valid key here: expected an id of lowercase letters, digits, "_" and "-", starting with a letter or digit, at most 64 characters',
    ]);
  });

  it('explains bad durations and sizes', () => {
    expect(
      errors(
        yaml(
          'version: 1',
          'agent:',
          '  commit_interval: 5 min',
          'buffer:',
          '  max_size: 64',
          'inputs:',
          '  demo:',
          '    type: simulator',
          '    interval: 0s',
          'aggregate:',
          '  windows: [1m, "90"]',
        ),
      ),
    ).toEqual([
      '3:20 agent.commit_interval: "5 min" is not a duration; expected a duration with a unit, such as "500ms", "30s", "5m", "1h30m" or "7d" (units: ms, s, m, h, d, w = 7d, y = 365d)',
      '5:13 buffer.max_size: bare number 64 has no unit; expected a size with a unit, such as "512KiB", "64MiB" or "1GiB" (units: B, KiB, MiB, GiB, TiB, and decimal kB, MB, GB, TB)',
      '9:15 inputs.demo.interval: duration must be greater than zero',
      '11:17 aggregate.windows[1]: "90" has no unit; expected a duration with a unit, such as "500ms", "30s", "5m", "1h30m" or "7d" (units: ms, s, m, h, d, w = 7d, y = 365d)',
    ]);
    expect(errors(yaml('version: 1', 'buffer:', '  max_size: 1.5B'))).toEqual(['3:13 buffer.max_size: "1.5B" is not a whole number of bytes']);
  });

  it('points a missing required key at the key of the map that lacks it', () => {
    expect(errors(yaml('version: 1', 'inputs:', '  boiler:', '    type: modbus', '    devices: []'))).toEqual([
      '3:3 inputs.boiler.url: missing required key "url" (for type modbus)',
      '5:14 inputs.boiler.devices: must not be empty',
    ]);
    // A map that is a list item has no key: the error points at its first key.
    expect(errors(modbus('          - table: holding', '            address: 1'))).toEqual([
      '9:13 inputs.boiler.devices[0].registers[0].name: missing required key "name"',
    ]);
    expect(errors(yaml('agent: {}'))).toEqual(['1:1 version: missing required key "version"']);
  });

  it('names the type a wrong value should have', () => {
    expect(errors(yaml('version: 1', 'agent:', '  tags: { line: 3, on: true }', 'http: off'))).toEqual([
      '3:17 agent.tags.line: must be a string, not the integer 3; quote it ("3") if you mean the text',
      '3:24 agent.tags.on: must be a string, not true; quote it ("true") if you mean the text',
      '4:7 http: must be a map (key: value), not the string "off"',
    ]);
    expect(errors(yaml('version: 1', 'agent:', '  tags:'))).toEqual(['3:3 agent.tags: must be a map (key: value), not empty']);
    // A top-level section left empty (everything under it commented out) is the same as leaving it out.
    expect(ok(yaml('version: 1', 'outputs:', '#  region:', '#    type: influxdb', 'agent:')).outputs).toEqual({});
  });

  it('rejects an unsupported version and an empty document', () => {
    expect(errors('version: 2\n')).toEqual(['1:10 version: unsupported config version 2; this sluice reads version: 1']);
    expect(errors('# nothing\n')).toEqual(['1:1 (root): the config is empty; it needs at least "version: 1"']);
    expect(errors('- version: 1\n')).toEqual(['1:1 (root): must be a map (key: value), not a list']);
  });
});

describe('${VAR} expansion', () => {
  const text = yaml(
    'version: 1',
    'outputs:',
    '  region:',
    '    type: influxdb',
    '    url: ${INFLUX_URL:-http://localhost:8086}',
    '    org: "acme-${SITE}"',
    '    bucket: ${BUCKET:-edge}',
    '    token: pa$$${TOKEN}$x',
    '    batch_size: ${BATCH}',
    '    database_: "${NOPE}"',
  );

  it('expands from the given environment, with defaults and $$', () => {
    const c = ok(text.replace('    database_: "${NOPE}"\n', ''), { env: { SITE: 'a', BUCKET: '', TOKEN: 't0k', BATCH: '250' } });
    expect(c.outputs.region).toMatchObject({ url: 'http://localhost:8086', org: 'acme-a', bucket: 'edge', token: 'pa$t0k$x', batch_size: 250 });
  });

  it('reports an unset variable at the ${ where it occurs, and every one of them', () => {
    expect(errors(text, { env: { BATCH: '1' } })).toEqual([
      '6:16 outputs.region.org: environment variable SITE is not set (write ${SITE:-default} to give a default)',
      '8:16 outputs.region.token: environment variable TOKEN is not set (write ${TOKEN:-default} to give a default)',
      '10:5 outputs.region.database_: unknown key "database_" for type influxdb; did you mean "database"?',
      '10:17 outputs.region.database_: environment variable NOPE is not set (write ${NOPE:-default} to give a default)',
    ]);
  });

  it('re-reads a plain value after expansion (numbers stay numbers) but keeps a quoted one a string', () => {
    expect(errors(yaml('version: 1', 'agent:', '  id: ${ID}', '  data_dir: "${N}"'), { env: { ID: '42', N: '7' } })).toEqual([
      '3:7 agent.id: must be a string, not the integer 42; quote it ("42") if you mean the text',
    ]);
    expect(ok(yaml('version: 1', 'agent:', '  id: "${ID}"'), { env: { ID: '42' } }).agent.id).toBe('42');
  });

  it('does not expand keys or comments, and rejects malformed references', () => {
    expect(errors(yaml('version: 1 # ${NOT_EXPANDED}', 'agent:', '  id: ${1BAD}', '  data_dir: ${OPEN'))).toEqual([
      '3:7 agent.id: invalid reference "${1BAD}": a variable name is letters, digits and _ (not starting with a digit); write $$ for a literal $',
      '4:13 agent.data_dir: unterminated "${": write ${NAME} or ${NAME:-default}, or $$ for a literal $',
    ]);
  });

  it('expandEnv follows the documented rules', () => {
    const env = { A: 'x', E: '' };
    expect(expandEnv('${A}-${E}-${E:-d}-${U:-d}-$$-$${A}-$5', env)).toEqual({ ok: true, value: 'x--d-d-$-${A}-$5', changed: true });
    expect(expandEnv('plain', env)).toEqual({ ok: true, value: 'plain', changed: false });
    expect(expandEnv('${U}', env)).toMatchObject({ ok: false, problems: [{ index: 0, token: '${U}' }] });
  });
});

describe('YAML problems', () => {
  it('reports a syntax error with its position and skips schema checks', () => {
    expect(errors(yaml('version: 1', 'agent:', '  id: "gw', '  data_dir: x'))).toEqual([
      '3:7 agent.id: YAML: Missing closing "quote',
    ]);
    expect(where(yaml('version: 1', 'inputs:', '  a:', '    type: simulator', '    tags: { a: 1', 'outputs: {}'))).toEqual([
      '5:11 inputs.a.tags',
    ]);
  });

  it('reports only the first of a cascade of unexpected tokens', () => {
    const e = errors(yaml('version: 1', 'agent:', '  tags: { a: ${X} }', 'buffer:', '  max_size: 1GiB'));
    expect(e).toHaveLength(1);
    expect(e[0]).toMatch(/^3:15 agent\.tags\.a: YAML: .*; inside \[ \] or \{ \}, quote a reference: "\$\{VAR\}" \(\d+ more errors after this one follow from it\)$/);
  });

  it('reports duplicate keys at the second one, and still validates the rest', () => {
    expect(errors(yaml('version: 1', 'agent:', '  id: a', '  data_dir: x', '  id: b', 'buffer:', '  when_full: never'))).toEqual([
      '5:3 agent.id: duplicate key: this key is already set earlier in the same map',
      '7:14 buffer.when_full: "never" is not allowed; one of: rollup, drop_oldest, drop_newest',
    ]);
  });

  it('rejects unknown tags and unknown aliases', () => {
    expect(where(yaml('version: 1', 'agent:', '  id: !secret gw'))).toEqual(['3:7 agent.id']);
    expect(errors(yaml('version: 1', 'agent:', '  id: *nope'))[0]).toMatch(/^3:7 agent\.id: /);
  });

  it('accepts anchors and aliases, e.g. shared register lists', () => {
    const c = ok(
      yaml(
        'version: 1',
        'inputs:',
        '  bus:',
        '    type: modbus',
        '    url: rtu:///dev/ttyUSB0',
        '    devices:',
        '      - unit_id: 1',
        '        registers: &meter',
        '          - { name: kwh, table: input, address: 0, type: float32 }',
        '      - unit_id: 2',
        '        registers: *meter',
      ),
    );
    expect((c.inputs.bus as ModbusInputConfig).devices.map((d) => d.registers[0].name)).toEqual(['kwh', 'kwh']);
  });
});

describe('cross-field rules', () => {
  it('modbus: coil/discrete are bool, rtu keys need an rtu url, registers fit, names are unique', () => {
    expect(
      errors(
        yaml(
          'version: 1',
          'inputs:',
          '  boiler:',
          '    type: modbus',
          '    url: tcp://10.0.0.1:502',
          '    parity: even',
          '    interval: 5s',
          '    schedule: "*/5 * * * *"',
          '    devices:',
          '      - unit_id: 1',
          '        registers:',
          '          - { name: a, table: coil, address: 0, type: float32 }',
          '          - { name: a, table: holding, address: 65534, type: float64 }',
          '      - unit_id: 1',
          '        registers:',
          '          - { name: b, table: discrete, address: 0 }',
          '  bus:',
          '    type: modbus',
          '    url: rtu:///dev/ttyUSB0',
          '    schedule: "61 * * * *"',
          '    devices:',
          '      - unit_id: 0',
          '        registers: [{ name: x, table: input, address: 0 }]',
        ),
      ),
    ).toEqual([
      '6:5 inputs.boiler.parity: parity applies only to rtu:// and rtu+tcp:// urls (this bus is tcp://10.0.0.1:502)',
      '8:5 inputs.boiler.schedule: set either interval or schedule, not both',
      '12:55 inputs.boiler.devices[0].registers[0].type: a coil holds one bit: type must be bool, not float32',
      '13:21 inputs.boiler.devices[0].registers[1].name: field "a" is already read by registers[0] of this device',
      '13:49 inputs.boiler.devices[0].registers[1].address: float64 at address 65534 spans 4 registers and runs past 65535',
      '14:18 inputs.boiler.devices[1].unit_id: unit_id 1 is already used by devices[0]; list all its registers in one device',
      '20:15 inputs.bus.schedule: invalid cron schedule: 61 is a invalid expression for minute',
      '22:18 inputs.bus.devices[0].unit_id: unit_id 0 is the RTU broadcast address and never answers; use 1-247',
    ]);
  });

  it('still runs cross-field rules on a component that has schema errors', () => {
    expect(errors(modbus('          - { name: a, table: coil, address: 0, type: int16, scal: 2 }'))).toEqual([
      '9:55 inputs.boiler.devices[0].registers[0].type: a coil holds one bit: type must be bool, not int16',
      '9:62 inputs.boiler.devices[0].registers[0].scal: unknown key "scal"; did you mean "scale"?',
    ]);
  });

  it('influxdb: v2 needs org, bucket and a token; v1 needs database; keys of the other api are errors', () => {
    expect(
      errors(
        yaml(
          'version: 1',
          'outputs:',
          '  a:',
          '    type: influxdb',
          '    url: http://x:8086',
          '    database: telemetry',
          '    tls: { insecure_skip_verify: true }',
          '  b:',
          '    type: influxdb',
          '    url: https://x:8086',
          '    api: v1',
          '    token: t',
        ),
      ),
    ).toEqual([
      '3:3 outputs.a.org: api v2 needs org',
      '3:3 outputs.a.bucket: api v2 needs bucket',
      '3:3 outputs.a.token: api v2 needs token or token_file',
      '6:5 outputs.a.database: database is a v1 setting; this output uses api: v2',
      '7:5 outputs.a.tls: tls settings need an https:// url (url is http://x:8086)',
      '8:3 outputs.b.database: api v1 needs database',
      '12:5 outputs.b.token: token is a v2 setting; this output uses api: v1',
    ]);
  });

  it('serial: settings blocks match the format; csv time settings go together', () => {
    expect(
      errors(
        yaml(
          'version: 1',
          'inputs:',
          '  a:',
          '    type: serial',
          '    port: /dev/ttyUSB0',
          '    format: json',
          '    csv: { columns: [t] }',
          '  b:',
          '    type: serial',
          '    port: /dev/ttyUSB1',
          '    format: csv',
          '  c:',
          '    type: serial',
          '    port: /dev/ttyUSB2',
          '    format: csv',
          '    csv: { columns: [t, h], time_column: ts }',
        ),
      ),
    ).toEqual([
      '7:5 inputs.a.csv: csv settings apply only to format: csv (format is json)',
      '8:3 inputs.b.csv: format csv needs csv.columns',
      '16:29 inputs.c.csv.time_column: time_column needs time_format (rfc3339, unix, unix_ms, unix_us or unix_ns)',
      '16:42 inputs.c.csv.time_column: "ts" is not one of the columns (t, h)',
    ]);
  });

  it('serial: a regex must compile and have named groups', () => {
    const serial = (pattern: string): string =>
      yaml('version: 1', 'inputs:', '  s:', '    type: serial', '    port: /dev/ttyS0', '    format: regex', `    regex: { pattern: '${pattern}' }`);
    expect(errors(serial('^T=(?<t>[0-9.]+'))).toEqual(['7:23 inputs.s.regex.pattern: does not compile: Invalid regular expression: /^T=(?<t>[0-9.]+/: Unterminated group']);
    expect(errors(serial('^T=([0-9.]+)$'))).toEqual(['7:23 inputs.s.regex.pattern: has no named groups: write (?<field>…) for each value to store']);
    expect(ok(serial('^T=(?<t>[0-9.]+) H=(?<h>[0-9.]+)$')).inputs.s).toMatchObject({ regex: { pattern: '^T=(?<t>[0-9.]+) H=(?<h>[0-9.]+)$' } });
  });

  it('mqtt: topic filters and the topic_tags template are checked, also against each other', () => {
    const mqtt = (topics: string, template: string, extra: string[] = []): string =>
      yaml('version: 1', 'inputs:', '  m:', '    type: mqtt', '    url: mqtt://broker', `    topics: ${topics}`, `    topic_tags: "${template}"`, '    format: json', ...extra);
    expect(errors(mqtt('["plant/#/x"]', 'plant/{area}/{area}'))).toEqual([
      '6:14 inputs.m.topics[0]: invalid topic filter "plant/#/x": # must be a whole level and the last one',
      '7:17 inputs.m.topic_tags: invalid template "plant/{area}/{area}": tag {area} appears twice',
    ]);
    expect(errors(mqtt('["plant/+/+/state"]', 'plant/dev-{id}/state'))).toEqual([
      '7:17 inputs.m.topic_tags: invalid template "plant/dev-{id}/state": level "dev-{id}" is neither literal text nor a whole {name} (names are letters, digits and _), + or #',
    ]);
    expect(errors(mqtt('["plant/+/+/state", "site/+/+/state"]', 'plant/{area}/{device}/status'))).toEqual([
      '7:17 inputs.m.topic_tags: template "plant/{area}/{device}/status" can never match topic "plant/+/+/state": level 4 is "status" in the template but "state" in the topic',
      '7:17 inputs.m.topic_tags: template "plant/{area}/{device}/status" can never match topic "site/+/+/state": level 1 is "plant" in the template but "site" in the topic',
    ]);
    expect(errors(mqtt('["a/+"]', 'plain'))).toEqual(['7:17 inputs.m.topic_tags: invalid template "plain": has no {name} level, so it adds no tags']);
    expect(errors(mqtt('["a/+"]', 'a/{x}', ['    tls: { ca: /etc/ca.pem }', '    password: p']))).toEqual([
      '9:5 inputs.m.tls: tls settings need an mqtts:// or wss:// url (url is mqtt://broker)',
      '10:5 inputs.m.password: MQTT 3.1.1 (protocol_version 4) sends a password only with a username',
    ]);
    expect(ok(mqtt('["plant/+/+/state", "plant/#"]', 'plant/{area}/{device}/#')).inputs.m).toMatchObject({ topic_tags: 'plant/{area}/{device}/#' });
  });

  it('aggregate windows, retention tiers, output resolutions and when_full agree', () => {
    expect(
      errors(
        yaml(
          'version: 1',
          'aggregate:',
          '  windows: [1m, 90s, 1h]',
          'retention: { raw: 7d, 5m: 30d, 1h: 1y, 60m: 2y }',
          'outputs:',
          '  t:',
          '    type: timescaledb',
          '    url: postgres://db/x',
          '    resolution: 1d',
        ),
      ),
    ).toEqual([
      '3:17 aggregate.windows[1]: 1m30s is not a whole multiple of 1m, so it cannot be rolled up from it',
      '4:23 retention.5m: "5m" is not an aggregate window (windows: 1m, 1m30s, 1h); tiers are raw and the windows',
      '4:40 retention.60m: "60m" is the same tier as "1h"',
      '9:17 outputs.t.resolution: 1d is not an aggregate window (windows: 1m, 1m30s, 1h); use raw or one of them',
    ]);
    expect(errors(yaml('version: 1', 'aggregate:', '  windows: []'))).toEqual([
      '3:12 aggregate.windows: when_full: rollup (the default) needs at least one aggregate window; add windows or set buffer.when_full to drop_oldest or drop_newest',
    ]);
    expect(ok(yaml('version: 1', 'buffer: { when_full: drop_oldest }', 'aggregate:', '  windows: []')).aggregate.windows).toEqual([]);
  });

  it('http.listen is host:port or off', () => {
    expect(ok(yaml('version: 1', 'http: { listen: off }')).http.listen).toBe('off');
    expect(ok(yaml('version: 1', 'http: { listen: "[::1]:9273" }')).http.listen).toBe('[::1]:9273');
    expect(errors(yaml('version: 1', 'http:', '  listen: 9273', 'agent: { id: "bad id" }'))).toEqual([
      '3:11 http.listen: must be a string, not the integer 9273; quote it ("9273") if you mean the text',
      '4:14 agent.id: "bad id" is not valid; expected letters, digits, ".", "_" and "-", starting with a letter or digit',
    ]);
    expect(errors(yaml('version: 1', 'http:', '  listen: localhost:70000'))).toEqual(['3:11 http.listen: port 70000 is out of range 1-65535']);
  });
});

describe('many errors at once', () => {
  it('reports every error of a file, in file order, in the check format', () => {
    const r = loadConfig({ file: 'test/fixtures/config/many-errors.yaml', env: {}, hostname: 'h' });
    expect(r.ok).toBe(false);
    const lines = r.ok ? [] : r.errors.map(formatConfigError);
    expect(lines).toEqual(read('test/fixtures/config/many-errors.expected').trimEnd().split('\n'));
  });

  it('formats FILE:LINE:COL: key.path: message', () => {
    const e: ConfigError = { file: 'a.yaml', line: 3, col: 5, path: 'inputs.x.url', message: 'bad' };
    expect(formatConfigError(e)).toBe('a.yaml:3:5: inputs.x.url: bad');
  });
});

describe('units', () => {
  it('parses durations, including compound ones, w and y', () => {
    expect(['500ms', '30s', '5m', '1h', '7d', '2w', '2y', '1h30m', '1.5s', '0.1s'].map(parseDuration)).toEqual([
      500, 30_000, 300_000, 3_600_000, 604_800_000, 1_209_600_000, 63_072_000_000, 5_400_000, 1500, 100,
    ]);
    expect(['5', '5 s', '1.5ms', 's', '1h 30m', '-1s', ''].map(parseDuration)).toEqual([null, null, null, null, null, null, null]);
    expect(readDuration('1.5ms')).toEqual({ ok: false, message: '"1.5ms" is not a whole number of milliseconds' });
  });

  it('parses sizes, binary and decimal', () => {
    expect(['100B', '512KiB', '64MiB', '1GiB', '1.5GiB', '1kB', '1KB', '500MB', '2GB'].map(parseSize)).toEqual([
      100, 524_288, 67_108_864, 1_073_741_824, 1_610_612_736, 1000, 1000, 500_000_000, 2_000_000_000,
    ]);
    expect(['64', '64mb', '64 MiB', 'MiB'].map(parseSize)).toEqual([null, null, null, null]);
  });

  it('formats canonically', () => {
    expect([60_000, 3_600_000, 5_400_000, 86_400_000 * 8, 31_536_000_000, 1500, 0].map(formatDuration)).toEqual([
      '1m', '1h', '1h30m', '1w1d', '1y', '1s500ms', '0s',
    ]);
    expect([268_435_456, 1536 * 1024, 100].map(formatSize)).toEqual(['256MiB', '1536KiB', '100B']);
  });
});
