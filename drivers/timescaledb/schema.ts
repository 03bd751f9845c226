// Config of the `timescaledb` output: a TimescaleDB or plain PostgreSQL table.
import { Type, type StaticDecode } from '@sinclair/typebox';
import { ComponentType, TlsVerify, defineComponent, outputCommon, withDefault } from '../../src/core/schema/kit.js';

export const TimescaledbOutputSchema = Type.Object(
  {
    type: ComponentType('timescaledb', 'Writes to a TimescaleDB (or plain PostgreSQL) table; replays are idempotent via a unique key.'),
    url: Type.String({
      pattern: '^postgres(?:ql)?://\\S+$',
      'x-expects': 'a url postgres://user:password@host:port/database',
      description: 'Connection url; put the password in ${VAR}, not in the file.',
      examples: ['postgres://sluice:${PG_PASSWORD}@db.example:5432/telemetry'],
    }),
    table: withDefault(
      Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}(?:\\.[A-Za-z_][A-Za-z0-9_]{0,62})?$',
        'x-expects': 'a table name, optionally schema-qualified (schema.table), of letters, digits and _',
        description: 'Table to write (created if missing, as a hypertable when the timescaledb extension exists).',
      }),
      'sensor_data',
    ),
    ...outputCommon(),
    tls: Type.Optional(TlsVerify()),
  },
  { additionalProperties: false, description: 'A TimescaleDB/PostgreSQL output.' },
);

export type TimescaledbOutputConfig = StaticDecode<typeof TimescaledbOutputSchema>;

export const timescaledbOutput = defineComponent({ type: 'timescaledb', schema: TimescaledbOutputSchema });
