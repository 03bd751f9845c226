// Config of the `timescaledb` output: TimescaleDB or plain PostgreSQL tables, wide (a table per
// measurement, a column per tag and per field) or narrow (one row per value in one table).
import { Type, type StaticDecode } from '@sinclair/typebox';
import { ComponentType, Duration, StringEnum, TlsVerify, defineComponent, outputCommon, withDefault } from '../../src/core/schema/kit.js';

const IDENT = '[A-Za-z_][A-Za-z0-9_]{0,62}';

export const TimescaledbOutputSchema = Type.Object(
  {
    type: ComponentType('timescaledb', 'Writes to TimescaleDB (or plain PostgreSQL) tables; replays are idempotent via a unique key.'),
    url: Type.String({
      pattern: '^postgres(?:ql)?://\\S+$',
      'x-expects': 'a url postgres://user:password@host:port/database',
      description: 'Connection url; put the password in ${VAR}, not in the file.',
      examples: ['postgres://sluice:${PG_PASSWORD}@db.example:5432/telemetry'],
    }),
    layout: Type.Optional(
      StringEnum(['wide', 'narrow'] as const, {
        description:
          'wide: a table per measurement, a column per tag and per field. narrow: one row per value in `table`. ' +
          'Unset: narrow when `table` (default sensor_data) already exists with the narrow shape, else wide.',
      }),
    ),
    table: Type.Optional(
      Type.String({
        pattern: `^${IDENT}(?:\\.${IDENT})?$`,
        'x-expects': 'a table name, optionally schema-qualified (schema.table), of letters, digits and _',
        description: 'narrow layout: the table to write (default sensor_data; created if missing, as a hypertable when the timescaledb extension exists).',
      }),
    ),
    table_template: withDefault(
      Type.String({
        pattern: '\\{measurement\\}',
        'x-expects': 'a name containing {measurement}',
        description: 'wide layout: the table of a measurement; {measurement} is replaced by its name (at most 63 bytes in all).',
      }),
      '{measurement}',
    ),
    schema: Type.Optional(
      Type.String({ pattern: `^${IDENT}$`, 'x-expects': 'a schema name of letters, digits and _', description: 'wide layout: the schema of the tables (must exist). Default: the connection\'s current schema.' }),
    ),
    new_columns: withDefault(
      StringEnum(['add', 'reject'] as const, {
        description: 'wide layout: a tag or field a table has no column for: add the column (ALTER TABLE … ADD COLUMN IF NOT EXISTS), or reject those points.',
      }),
      'add',
    ),
    compression: Type.Optional(
      Type.Object(
        {
          segment_by: withDefault(Type.Array(Type.String({ pattern: '^[^\\x00]{1,63}$' }), { description: 'Tag columns to segment compressed data by.' }), []),
          after: Duration({ description: 'Compress chunks older than this (a compression policy).' }),
        },
        { additionalProperties: false, description: 'wide layout, TimescaleDB only: enable compression on new hypertables and add a compression policy.' },
      ),
    ),
    ...outputCommon(),
    tls: Type.Optional(TlsVerify()),
  },
  { additionalProperties: false, description: 'A TimescaleDB/PostgreSQL output.' },
);

export type TimescaledbOutputConfig = StaticDecode<typeof TimescaledbOutputSchema>;

const WIDE_ONLY = ['table_template', 'schema', 'new_columns', 'compression'] as const;

export const timescaledbOutput = defineComponent({
  type: 'timescaledb',
  schema: TimescaledbOutputSchema,
  finish(config, ctx) {
    if (config.layout === 'narrow') {
      for (const key of WIDE_ONLY) if (ctx.raw[key] !== undefined) ctx.error([key], `${key} applies to layout: wide only (this output is layout: narrow)`, 'key');
    }
    if (config.layout === 'wide' && ctx.raw.table !== undefined) ctx.error(['table'], 'table applies to layout: narrow only; layout: wide names its tables by table_template', 'key');
  },
});
