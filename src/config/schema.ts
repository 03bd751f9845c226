// The top-level config schema, assembled from the sections below and the component schemas that live
// in each driver's folder, registered in the one list of drivers (drivers/index.ts).
import { Type, type StaticDecode, type TObject, type TUnsafe } from '@sinclair/typebox';
import { INPUT_DRIVERS, OUTPUT_DRIVERS, type InputConfig, type OutputConfig } from '../../drivers/index.js';
import { AGGREGATE_FUNCTIONS } from '../core/aggregate.js';
import { DEFAULT_MEMORY_LIMIT, MIN_MEMORY_LIMIT_BYTES } from '../core/memory.js';
import { RulesSchema, finishRules, type RulesConfig } from '../rules/schema.js';
import { FleetSchema, finishFleet, type FleetConfig } from './fleet.js';
import type { Path } from '../core/schema/errors.js';
import {
  Duration,
  ID_HINT,
  ID_PATTERN,
  NonEmpty,
  Size,
  StringEnum,
  Tags,
  defaultEmpty,
  derived,
  withDefault,
  type RegisteredComponent,
} from '../core/schema/kit.js';
import { DURATION_PATTERN, durationMs, formatDuration, formatSize, type Milliseconds } from '../core/schema/units.js';

/** Registered inputs, by YAML `type`. */
export const INPUT_COMPONENTS: readonly RegisteredComponent[] = INPUT_DRIVERS;
/** Registered outputs, by YAML `type`. */
export const OUTPUT_COMPONENTS: readonly RegisteredComponent[] = OUTPUT_DRIVERS;

export type { InputConfig, OutputConfig };

export const WHEN_FULL = ['rollup', 'drop_oldest', 'drop_newest'] as const;

export const AgentSchema = Type.Object(
  {
    id: derived(
      Type.String({
        pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$',
        'x-expects': 'letters, digits, ".", "_" and "-", starting with a letter or digit',
        description: 'Name of this gateway in logs, metrics and upstream data. Default: the host name.',
      }),
    ),
    data_dir: withDefault(
      NonEmpty('Directory of the store (created if missing). A relative path is relative to the working directory.'),
      './sluice-data',
    ),
    tags: Tags('Tags added to every point (an input\'s own tags win on a clash).'),
    commit_interval: withDefault(
      Duration({ description: 'Group commit interval: points are made durable at least this often; the most a power cut may cost for polled inputs.' }),
      '500ms',
    ),
    memory_limit: withDefault(
      Size({
        description:
          'Memory the agent plans for (resident set). `sluice run` sizes its heap from it (V8 old generation of this many MB, a 3 MB young generation) whoever starts it (by hand, npx, the binary, systemd, Docker), and inputs hold back when what they hold before the group commit reaches a sixteenth of it (MQTT stops reading; the broker keeps the backlog). At least 64MiB. The default suits a 512 MB box.',
      }),
      DEFAULT_MEMORY_LIMIT,
    ),
  },
  { additionalProperties: false, description: 'The agent itself.' },
);

export const BufferSchema = Type.Object(
  {
    max_size: withDefault(Size({ description: 'Hard cap on the store on disk, everything included (database, WAL, rollups).' }), '256MiB'),
    when_full: withDefault(
      StringEnum(WHEN_FULL, {
        description: 'At max_size: rollup replaces the oldest raw data by its rollups before anything is dropped; drop_oldest / drop_newest drop points. Every point lost is counted by reason.',
      }),
      'rollup',
    ),
  },
  { additionalProperties: false, description: 'The durable local store (ring).' },
);

export const AggregateSchema = Type.Object(
  {
    windows: withDefault(
      Type.Array(Duration({ description: 'Window length; windows are aligned to the epoch in UTC.' }), {
        maxItems: 8,
        description: 'Rollup windows, shortest first; each a whole multiple of the one before (so 1h rolls up from 1m). [] disables rollups.',
      }),
      ['1m', '1h'],
    ),
    functions: withDefault(
      Type.Array(StringEnum(AGGREGATE_FUNCTIONS, { description: 'An aggregate function.' }), {
        minItems: 1,
        uniqueItems: true,
        description: 'Aggregates kept per window and numeric field.',
      }),
      ['mean', 'min', 'max', 'count', 'last'],
    ),
  },
  { additionalProperties: false, description: 'Local rollups.' },
);

const TIER_PATTERN = `^(?:raw|${DURATION_PATTERN.slice(1, -1)})$`;

export const RetentionSchema = withDefault(
  Type.Record(Type.String({ pattern: TIER_PATTERN }), Duration({ description: 'How long this tier is kept.' }), {
    additionalProperties: false,
    'x-key-expects': 'a tier: raw or one of aggregate.windows, such as 1m',
    description: 'How long each tier is kept, by tier: raw, or an aggregate window (e.g. 1m: 90d). A tier not listed is kept until the buffer is full.',
  }),
  {},
);

export const HttpSchema = Type.Object(
  {
    listen: withDefault(
      Type.String({
        pattern: '^(?:off|(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5})$',
        'x-expects': 'host:port (e.g. 127.0.0.1:9273, 0.0.0.0:9273, [::1]:9273) or off',
        description: 'Address of the HTTP endpoint (/metrics, /health): host:port, or off. 0.0.0.0:PORT listens on every interface.',
      }),
      '127.0.0.1:9273',
    ),
  },
  { additionalProperties: false, description: 'The local HTTP endpoint.' },
);

/**
 * A map of components keyed by id. The JSON Schema selects the component's schema by `type`
 * (if/then in `definitions`), so both editors and the validator talk about that type's keys only.
 * TypeBox does not walk into it: the loader decodes each component with its own schema.
 */
function componentMap<T>(kind: 'input' | 'output', description: string): TUnsafe<Record<string, T>> {
  return withDefault(
    Type.Unsafe<Record<string, T>>({
      type: 'object',
      description,
      propertyNames: { pattern: ID_PATTERN, 'x-expects': ID_HINT },
      additionalProperties: { $ref: `#/definitions/${kind}` },
    }),
    {},
  );
}

export const ConfigSchema = Type.Object(
  {
    version: Type.Literal(1, { description: 'Config format version; must be 1.' }),
    agent: defaultEmpty(AgentSchema),
    buffer: defaultEmpty(BufferSchema),
    inputs: componentMap<InputConfig>('input', 'Inputs by id; the id names the input in logs and metrics.'),
    aggregate: defaultEmpty(AggregateSchema),
    retention: RetentionSchema,
    outputs: componentMap<OutputConfig>('output', 'Outputs by id; the id names the output\'s cursor, logs and metrics (renaming it resends everything).'),
    http: defaultEmpty(HttpSchema),
    rules: defaultEmpty(RulesSchema),
    fleet: defaultEmpty(FleetSchema),
  },
  { additionalProperties: false, title: 'sluice configuration', description: 'Configuration of the sluice edge gateway agent (YAML, version 1).' },
);

/** The decoded configuration: defaults applied, durations in ms, sizes in bytes, YAML key names. */
export type SluiceConfig = StaticDecode<typeof ConfigSchema>;
/** Short name of SluiceConfig. */
export type Config = SluiceConfig;
export type AgentConfig = SluiceConfig['agent'];
export type BufferConfig = SluiceConfig['buffer'];
export type AggregateConfig = SluiceConfig['aggregate'];
/** Keyed by `raw` or a window's canonical name (formatDuration of its length: 1m, 1h, 1d, 1h30m). */
export type RetentionConfig = SluiceConfig['retention'];
export type HttpConfig = SluiceConfig['http'];
export type WhenFull = BufferConfig['when_full'];

/** Sections TypeBox decodes directly (component maps are decoded per component). */
export const SECTIONS = {
  agent: AgentSchema,
  buffer: BufferSchema,
  aggregate: AggregateSchema,
  retention: RetentionSchema,
  http: HttpSchema,
  rules: RulesSchema,
  fleet: FleetSchema,
} as const satisfies Record<string, TObject | typeof RetentionSchema>;

function jsonClone<T>(value: T): T {
  // Drops TypeBox's symbol-keyed metadata and Transform functions, leaving plain JSON Schema.
  return JSON.parse(JSON.stringify(value)) as T;
}

function componentDefinitions(kind: 'input' | 'output', defs: readonly RegisteredComponent[]): Record<string, unknown> {
  const types = defs.map((d) => d.type);
  const out: Record<string, unknown> = {
    [kind]: {
      type: 'object',
      description: `An ${kind}; \`type\` selects which keys apply.`,
      required: ['type'],
      properties: { type: { type: 'string', enum: types, description: `The ${kind} driver.` } },
      allOf: defs.map((d) => ({
        if: { type: 'object', properties: { type: { const: d.type } }, required: ['type'] },
        then: { $ref: `#/definitions/${kind}_${d.type}` },
      })),
    },
  };
  for (const d of defs) out[`${kind}_${d.type}`] = jsonClone(d.schema);
  return out;
}

let schemaCache: Record<string, unknown> | undefined;

/** The JSON Schema (draft-07) of the config file, for editors and for validation. A fresh copy each call. */
export function configSchemaJson(): Record<string, unknown> {
  schemaCache ??= {
    $schema: 'http://json-schema.org/draft-07/schema#',
    ...jsonClone(ConfigSchema),
    definitions: { ...componentDefinitions('input', INPUT_COMPONENTS), ...componentDefinitions('output', OUTPUT_COMPONENTS) },
  };
  return jsonClone(schemaCache);
}

export interface Reporter {
  error(path: Path, message: string, at?: 'key' | 'value'): void;
}

/** Decoded pieces; a section is undefined when it had errors (rules that need it are skipped). */
export interface PartialConfig {
  agent?: AgentConfig;
  buffer?: BufferConfig;
  aggregate?: AggregateConfig;
  retention?: Record<string, Milliseconds>;
  http?: HttpConfig;
  rules?: RulesConfig;
  fleet?: FleetConfig;
  outputs: Record<string, OutputConfig | undefined>;
}

/**
 * Rules that span sections, run on the decoded pieces; fills agent.id and canonicalises retention
 * keys in place. `raw` is the document as written, to tell written keys from defaults.
 */
export function finishConfig(cfg: PartialConfig, raw: Record<string, unknown>, hostname: string, r: Reporter): void {
  if (cfg.agent && (raw.agent as Record<string, unknown> | undefined)?.id === undefined) cfg.agent.id = hostname;

  const windows = cfg.aggregate?.windows;
  if (windows) {
    for (let i = 1; i < windows.length; i++) {
      const [prev, cur] = [windows[i - 1], windows[i]];
      if (cur <= prev) r.error(['aggregate', 'windows', i], `windows must be listed shortest first, without repeats: ${formatDuration(cur)} comes after ${formatDuration(prev)}`);
      else if (cur % prev !== 0) r.error(['aggregate', 'windows', i], `${formatDuration(cur)} is not a whole multiple of ${formatDuration(prev)}, so it cannot be rolled up from it`);
    }
  }
  const windowNames = windows?.map(formatDuration).join(', ') || 'none configured';

  if (cfg.retention && windows) {
    const canonical: Record<string, Milliseconds> = {};
    const seen = new Map<string, string>();
    for (const [tier, keep] of Object.entries(cfg.retention)) {
      const name = tier === 'raw' ? 'raw' : formatDuration(durationMs(tier));
      if (tier !== 'raw' && !windows.includes(durationMs(tier))) {
        r.error(['retention', tier], `"${tier}" is not an aggregate window (windows: ${windowNames}); tiers are raw and the windows`, 'key');
      }
      const other = seen.get(name);
      if (other !== undefined) r.error(['retention', tier], `"${tier}" is the same tier as "${other}"`, 'key');
      seen.set(name, tier);
      canonical[name] = keep;
    }
    for (const k of Object.keys(cfg.retention)) delete cfg.retention[k];
    Object.assign(cfg.retention, canonical);
  }

  if (windows) {
    for (const [id, out] of Object.entries(cfg.outputs)) {
      if (out && out.resolution !== 'raw' && !windows.includes(out.resolution)) {
        r.error(['outputs', id, 'resolution'], `${formatDuration(out.resolution)} is not an aggregate window (windows: ${windowNames}); use raw or one of them`);
      }
    }
    if (cfg.buffer?.when_full === 'rollup' && windows.length === 0) {
      const written = (raw.buffer as Record<string, unknown> | undefined)?.when_full !== undefined;
      r.error(
        written ? ['buffer', 'when_full'] : ['aggregate', 'windows'],
        'when_full: rollup (the default) needs at least one aggregate window; add windows or set buffer.when_full to drop_oldest or drop_newest',
      );
    }
  }

  if (cfg.agent && cfg.agent.memory_limit < MIN_MEMORY_LIMIT_BYTES) {
    r.error(['agent', 'memory_limit'], `memory_limit must be at least ${formatSize(MIN_MEMORY_LIMIT_BYTES)}: Node itself needs about 40 MB beside the heap`);
  }
  if (cfg.rules) finishRules(cfg.rules, (path, message, at) => r.error(path, message, at));
  if (cfg.fleet) finishFleet(cfg.fleet, (path, message, at) => r.error(path, message, at));

  const listen = cfg.http?.listen;
  if (listen !== undefined && listen !== 'off') {
    const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
    if (!(port >= 1 && port <= 65535)) r.error(['http', 'listen'], `port ${port} is out of range 1-65535`);
  }
}
