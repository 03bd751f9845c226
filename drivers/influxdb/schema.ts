// Config of the `influxdb` output: the v2 (/api/v2/write) or v1 (/write) HTTP write API.
import { Type, type StaticDecode } from '@sinclair/typebox';
import { ComponentType, NonEmpty, StringEnum, TlsVerify, defineComponent, outputCommon, withDefault } from '../../src/core/schema/kit.js';

const V1_KEYS = ['database', 'retention_policy', 'username', 'password', 'password_file'] as const;
const V2_KEYS = ['org', 'bucket', 'token', 'token_file'] as const;

export const InfluxdbOutputSchema = Type.Object(
  {
    type: ComponentType('influxdb', 'Writes line protocol to InfluxDB (v2 or v1 write API).'),
    url: Type.String({
      pattern: '^https?://\\S+$',
      'x-expects': 'an http:// or https:// url',
      description: 'Base url of the server, without /api/v2/write or /write.',
      examples: ['https://influx.region.example:8086'],
    }),
    api: withDefault(StringEnum(['v1', 'v2'] as const, { description: 'Write API: v2 (org, bucket, token) or v1 (database, retention_policy, username, password).' }), 'v2'),
    org: Type.Optional(NonEmpty('v2: organization name or id.')),
    bucket: Type.Optional(NonEmpty('v2: bucket.')),
    token: Type.Optional(NonEmpty('v2: API token (prefer token_file or ${VAR}).')),
    token_file: Type.Optional(NonEmpty('v2: path to a file holding the token (trailing newline removed).')),
    database: Type.Optional(NonEmpty('v1: database.')),
    retention_policy: Type.Optional(NonEmpty('v1: retention policy. Default: the database default.')),
    username: Type.Optional(NonEmpty('v1: user name.')),
    password: Type.Optional(NonEmpty('v1: password (prefer password_file or ${VAR}).')),
    password_file: Type.Optional(NonEmpty('v1: path to a file holding the password (trailing newline removed).')),
    ...outputCommon(),
    gzip: withDefault(Type.Boolean({ description: 'Compress request bodies with gzip.' }), true),
    tls: Type.Optional(TlsVerify()),
  },
  { additionalProperties: false, description: 'An InfluxDB output.' },
);

export type InfluxdbOutputConfig = StaticDecode<typeof InfluxdbOutputSchema>;

export const influxdbOutput = defineComponent({
  type: 'influxdb',
  schema: InfluxdbOutputSchema,
  finish(cfg, ctx) {
    const foreign = cfg.api === 'v2' ? V1_KEYS : V2_KEYS;
    for (const key of foreign) {
      if (cfg[key] !== undefined) ctx.error([key], `${key} is a ${cfg.api === 'v2' ? 'v1' : 'v2'} setting; this output uses api: ${cfg.api}`, 'key');
    }
    if (cfg.api === 'v2') {
      if (cfg.org === undefined) ctx.error(['org'], 'api v2 needs org');
      if (cfg.bucket === undefined) ctx.error(['bucket'], 'api v2 needs bucket');
      if (cfg.token === undefined && cfg.token_file === undefined) ctx.error(['token'], 'api v2 needs token or token_file');
      if (cfg.token !== undefined && cfg.token_file !== undefined) ctx.error(['token_file'], 'set either token or token_file, not both', 'key');
    } else {
      if (cfg.database === undefined) ctx.error(['database'], 'api v1 needs database');
      if (cfg.password !== undefined && cfg.password_file !== undefined) ctx.error(['password_file'], 'set either password or password_file, not both', 'key');
    }
    if (cfg.tls !== undefined && !cfg.url.startsWith('https://')) ctx.error(['tls'], `tls settings need an https:// url (url is ${cfg.url})`, 'key');
  },
});
