// Building blocks for component schemas. A component's TypeBox schema is at once its JSON Schema (for
// editors and validation), its defaults, its docs (`description` on every key) and, through
// StaticDecode, its TypeScript type. Drivers' schema.ts files import these; nothing here does I/O.
import {
  Kind,
  Type,
  TypeRegistry,
  type SchemaOptions,
  type Static,
  type StaticDecode,
  type TBoolean,
  type TObject,
  type TOptional,
  type TRecord,
  type TSchema,
  type TString,
  type TTransform,
  type TUnsafe,
} from '@sinclair/typebox';
import type { Path } from './errors.js';
import { DURATION_HINT, DURATION_PATTERN, SIZE_HINT, SIZE_PATTERN, durationMs, formatDuration, formatSize, sizeBytes, type Bytes, type Milliseconds } from './units.js';

// TypeBox spells a union of literals as anyOf-of-consts, which makes ajv report one error per member.
// A flat `enum` gives one "must be one of" error and the same completion list in editors.
TypeRegistry.Set<{ enum: unknown[] }>('StringEnum', (schema, value) => schema.enum.includes(value));
TypeRegistry.Set<{ enum: unknown[] }>('IntegerEnum', (schema, value) => schema.enum.includes(value));

export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, [Kind]: 'StringEnum', type: 'string', enum: [...values] });
}

export function IntegerEnum<const T extends readonly number[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, [Kind]: 'IntegerEnum', type: 'integer', enum: [...values] });
}

/**
 * A key that may be left out of the YAML and then takes `value`. At runtime the property is optional
 * (not in `required`, and `default` shows in editors); at the type level it stays required, because
 * the decoded config always has it. That keeps one declaration for schema, default and type.
 */
export function withDefault<T extends TSchema>(schema: T, value: Static<T>): T {
  return Type.Optional({ ...schema, default: value }) as TOptional<T> as unknown as T;
}

/**
 * A key that may be left out and is then filled by the component's `finish` (its default depends on
 * other keys or the id, e.g. `measurement` = the input id). Required in the decoded type, like withDefault;
 * `finish` must fill it (see `unset`).
 */
export function derived<T extends TSchema>(schema: T): T {
  return Type.Optional(schema) as TOptional<T> as unknown as T;
}

/** An object section that may be left out entirely; its keys' own defaults then apply. */
export function defaultEmpty<T extends TObject>(schema: T): T {
  return withDefault(schema, {});
}

/** True when a `derived` key was not written; its static type says it is always there, so ask through `unknown`. */
export function unset(value: unknown): boolean {
  return value === undefined;
}

export type DurationSchema = TTransform<TString, Milliseconds>;
export type SizeSchema = TTransform<TString, Bytes>;

/**
 * A duration string decoded to milliseconds. `x-unit` is validated by the loader (a precise message,
 * and it rejects zero); `pattern` is there for editors.
 */
export function Duration(options: SchemaOptions & { description: string }): DurationSchema {
  return Type.Transform(Type.String({ ...options, pattern: DURATION_PATTERN, 'x-unit': 'duration', 'x-expects': DURATION_HINT }))
    .Decode((s): Milliseconds => durationMs(s))
    .Encode((ms) => formatDuration(ms));
}

/** A size string decoded to bytes; see Duration. */
export function Size(options: SchemaOptions & { description: string }): SizeSchema {
  return Type.Transform(Type.String({ ...options, pattern: SIZE_PATTERN, 'x-unit': 'size', 'x-expects': SIZE_HINT }))
    .Decode((s): Bytes => sizeBytes(s))
    .Encode((b) => formatSize(b));
}

/** Which data an output ships: `raw` points, or the rollups of one aggregate window (decoded to its length). */
export type Resolution = 'raw' | Milliseconds;

const RESOLUTION_PATTERN = `^(?:raw|${DURATION_PATTERN.slice(1, -1)})$`;

export function ResolutionSchema(options: SchemaOptions & { description: string }): TTransform<TString, Resolution> {
  return Type.Transform(
    Type.String({ ...options, pattern: RESOLUTION_PATTERN, 'x-expects': '"raw" or one of the aggregate.windows, such as "1m"' }),
  )
    .Decode((s): Resolution => (s === 'raw' ? 'raw' : durationMs(s)))
    .Encode((r) => (r === 'raw' ? 'raw' : formatDuration(r)));
}

/** Component ids name output cursors, metrics labels and log tags, so they stay short and file/label-safe. */
export const ID_PATTERN = '^[a-z0-9][a-z0-9_-]{0,63}$';
export const ID_HINT = 'an id of lowercase letters, digits, "_" and "-", starting with a letter or digit, at most 64 characters';

export function Tags(description: string): TRecord<TString, TString> {
  return withDefault(
    Type.Record(Type.String(), Type.String({ description: 'Tag value (a string: quote numbers).' }), {
      description,
      propertyNames: { minLength: 1 },
    }),
    {},
  );
}

/** `measurement`, defaulting to the component id (filled by the loader for every input). */
export function Measurement(): TString {
  return derived(Type.String({ minLength: 1, description: 'Measurement name of the points this input produces. Default: the input id.' }));
}

/** A non-empty string (ids, names, paths, credentials: an empty one is always a mistake, e.g. an empty ${VAR}). */
export function NonEmpty(description: string, options: SchemaOptions = {}): TString {
  return Type.String({ ...options, minLength: 1, description });
}

export function InsecureSkipVerify(): TBoolean {
  return withDefault(
    Type.Boolean({ description: 'Accept any server certificate. For testing only: it disables protection against man-in-the-middle attacks.' }),
    false,
  );
}

const TLS_CA_DESCRIPTION = 'Path to a PEM file with the CA certificate(s) to trust instead of the system store.';

/**
 * Client TLS settings, the one shape every TLS client here takes: verify the server, optionally with a
 * private CA. `description` says which urls they apply to.
 */
export function TlsVerify(description = 'TLS settings; they apply when the url uses TLS.'): TObject<{ ca: TOptional<TString>; insecure_skip_verify: TBoolean }> {
  return Type.Object({ ca: Type.Optional(NonEmpty(TLS_CA_DESCRIPTION)), insecure_skip_verify: InsecureSkipVerify() }, { additionalProperties: false, description });
}

/** TlsVerify plus a client certificate, for peers that authenticate clients by certificate (MQTT brokers). */
export function TlsWithClientCertificate(description: string): TObject<{ ca: TOptional<TString>; cert: TOptional<TString>; key: TOptional<TString>; insecure_skip_verify: TBoolean }> {
  return Type.Object(
    {
      ca: Type.Optional(NonEmpty(TLS_CA_DESCRIPTION)),
      cert: Type.Optional(NonEmpty('Path to a PEM client certificate (with key).')),
      key: Type.Optional(NonEmpty('Path to the PEM private key of cert.')),
      insecure_skip_verify: InsecureSkipVerify(),
    },
    { additionalProperties: false, description },
  );
}

/** The keys every output shares: what it ships, how it batches, how fast it may backfill. */
export function outputCommon() {
  return {
    resolution: withDefault(
      ResolutionSchema({
        description: 'What this output ships: "raw" points, or the rollups of one configured aggregate window (e.g. "1m").',
      }),
      'raw',
    ),
    batch_size: withDefault(
      Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Most points per write request.' }),
      5000,
    ),
    flush_interval: withDefault(
      Duration({ description: 'Longest time a point waits for a batch to fill before it is sent anyway.' }),
      '1s',
    ),
    timeout: withDefault(Duration({ description: 'Timeout of one write request.' }), '10s'),
    max_rate: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: 'Most points per second sent when backfilling a backlog (live data is not limited). Default: unlimited, bounded by upstream backpressure.',
      }),
    ),
  };
}

export interface ComponentContext {
  /** The component's id (its key in `inputs`/`outputs`). */
  readonly id: string;
  /** The component as written (after ${VAR} expansion, before defaults): tells a written key from a default. */
  readonly raw: Readonly<Record<string, unknown>>;
  /** Reports a problem at a path relative to the component; `at: 'key'` points at the key instead of its value. */
  error(path: Path, message: string, at?: 'key' | 'value'): void;
}

export interface ComponentDef<S extends TObject = TObject> {
  /** The YAML `type`, also the driver's folder name. */
  readonly type: string;
  /** The component's schema; its `type` property is a Literal of `type`. */
  readonly schema: S;
  /**
   * Runs after the component passed its schema and got its defaults: fills `derived` keys and checks
   * what a schema cannot say (cross-field rules, regex compiles, url parts). Pure; must not do I/O.
   * A method, not a property, so a ComponentDef<Specific> is usable where a ComponentDef is expected.
   */
  finish?(config: StaticDecode<S>, ctx: ComponentContext): void;
}

/** A component as registries and the loader see it, whatever its schema (its decoded type is erased). */
export interface RegisteredComponent {
  readonly type: string;
  readonly schema: TObject;
  finish?(config: never, ctx: ComponentContext): void;
}

export function defineComponent<S extends TObject>(def: ComponentDef<S>): ComponentDef<S> {
  return def;
}

/** The `type` property of a component schema. */
export function ComponentType<const T extends string>(type: T, description: string) {
  return Type.Literal(type, { description });
}

export const TIME_PRECISIONS = ['ns', 'us', 'ms', 's'] as const;

/** Settings of JSON payloads, shared by the inputs that read them (serial lines, MQTT messages). */
export function JsonPayload() {
  return Type.Object(
    {
      fields: Type.Optional(
        Type.Array(NonEmpty('A flattened key (nested keys joined with _, e.g. env_t); naming an object or array picks every value under it.'), {
          minItems: 1,
          uniqueItems: true,
          description: 'Keys to store as fields. Default: every number, boolean and string (nested objects and arrays flattened with _) except time_key.',
        }),
      ),
      time_key: Type.Optional(NonEmpty('Flattened key holding the timestamp (an RFC 3339 string or an epoch number in time_precision). Default: the time of receipt.')),
      time_precision: withDefault(
        StringEnum(TIME_PRECISIONS, { description: 'Unit of a numeric timestamp in time_key.' }),
        'ms',
      ),
    },
    { additionalProperties: false, description: 'Settings for format: json.' },
  );
}
