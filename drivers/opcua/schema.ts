// Config of the `opcua` input: one OPC UA server, one session, a list of nodes (variables) read by
// subscription or by polling.
import { Type, type StaticDecode } from '@sinclair/typebox';
import { ComponentType, Duration, Measurement, NonEmpty, StringEnum, Tags, defineComponent, unset, withDefault } from '../../src/core/schema/kit.js';

export const SECURITY_POLICIES = ['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'] as const;
export const SECURITY_MODES = ['None', 'Sign', 'SignAndEncrypt'] as const;
export const OPCUA_MODES = ['subscribe', 'poll'] as const;
export const TIMESTAMP_SOURCES = ['source', 'server', 'agent'] as const;

/** Field names become InfluxDB fields and TimescaleDB columns: keep them plain. */
const FIELD_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';

export const OpcuaNodeSchema = Type.Object(
  {
    name: Type.String({
      pattern: FIELD_NAME_PATTERN,
      'x-expects': 'a field name of letters, digits and _, not starting with a digit',
      description: 'Field name of the value in the points (an array value gives name_0, name_1, …).',
    }),
    node_id: NonEmpty('The variable\'s node id in OPC UA notation: "ns=2;s=Line3.SupplyTemp", "ns=2;i=1042", "i=2258", "ns=3;g=<guid>", "ns=1;b=<base64>". `sluice opcua browse URL` lists them.', {
      pattern: '^(?:(?:ns|nsu)=[^;]+;)?[isgb]=.+$',
      'x-expects': 'a node id such as "ns=2;s=Line3.SupplyTemp" or "ns=2;i=1042"',
      examples: ['ns=2;s=Line3.SupplyTemp', 'ns=2;i=1042'],
    }),
    sampling_interval: Type.Optional(
      Duration({
        description: 'subscribe: how often the server samples the value for changes (the server may revise it). Default: the publishing_interval.',
      }),
    ),
    deadband: Type.Optional(
      Type.Number({
        minimum: 0,
        description:
          'Store a new value only when it differs from the last one stored by more than this (absolute). subscribe: the server filters (a DataChangeFilter); poll: sluice filters. Numeric nodes only. Default: every change.',
      }),
    ),
  },
  { additionalProperties: false, description: 'One variable read from the server.' },
);

export const OpcuaAuthSchema = Type.Object(
  {
    username: Type.Optional(NonEmpty('User name (user name and password identity token).')),
    password: Type.Optional(NonEmpty('Password (prefer password_file or ${VAR}).')),
    password_file: Type.Optional(NonEmpty('Path to a file whose contents (trailing newline removed) are the password.')),
    certificate: Type.Optional(NonEmpty('Path to a PEM (or DER) user certificate (X.509 identity token); with private_key.')),
    private_key: Type.Optional(NonEmpty('Path to the PEM private key of certificate.')),
  },
  {
    additionalProperties: false,
    description: 'How the session authenticates the user: left out = anonymous; username with password or password_file; or certificate with private_key.',
  },
);

export const OpcuaInputSchema = Type.Object(
  {
    type: ComponentType('opcua', 'OPC UA client reading variables of one server, by subscription (monitored items) or by polling.'),
    url: Type.String({
      pattern: '^opc\\.tcp://[^/\\s:]+(?::[0-9]+)?(?:/\\S*)?$',
      'x-expects': 'an endpoint url opc.tcp://host[:port][/path] (port 4840 by default)',
      description: 'Endpoint url of the server: opc.tcp://host[:port][/path] (default port 4840).',
      examples: ['opc.tcp://10.0.0.5:4840/path'],
    }),
    security_policy: withDefault(
      StringEnum(SECURITY_POLICIES, { description: 'Security policy of the secure channel. None sends everything in clear; the others need security_mode Sign or SignAndEncrypt.' }),
      'None',
    ),
    security_mode: withDefault(
      StringEnum(SECURITY_MODES, { description: 'Message security: None, Sign (signed, readable on the wire) or SignAndEncrypt. Anything but None needs a security_policy other than None.' }),
      'None',
    ),
    auth: Type.Optional(OpcuaAuthSchema),
    trust_server_certificate: withDefault(
      Type.Boolean({
        description:
          'Accept the server\'s certificate without checking it against the trusted certificates (and add it to them). For a first test only: it disables protection against a man-in-the-middle. Default: the certificate must be trusted (trusted_certs, or DATA_DIR/opcua-pki/trusted/certs).',
      }),
      false,
    ),
    trusted_certs: Type.Optional(
      NonEmpty('Folder of server or CA certificates (PEM or DER files) to trust, read at each start, in addition to DATA_DIR/opcua-pki/trusted/certs.'),
    ),
    mode: withDefault(StringEnum(OPCUA_MODES, { description: 'subscribe: the server reports changes (monitored items in one subscription); poll: sluice reads every node every interval.' }), 'subscribe'),
    publishing_interval: withDefault(Duration({ description: 'subscribe: how often the server sends the changes it collected.' }), '1s'),
    interval: withDefault(Duration({ description: 'poll: time between reads of all nodes.' }), '10s'),
    timestamp: withDefault(
      StringEnum(TIMESTAMP_SOURCES, {
        description: 'Point time: source (the device\'s timestamp of the value), server (when the server saw it) or agent (when sluice received it). A value without the chosen timestamp gets the next one in that order.',
      }),
      'source',
    ),
    timeout: withDefault(Duration({ description: 'Timeout of connecting and of one request (read, browse, create subscription).' }), '10s'),
    measurement: Measurement(),
    tags: Tags('Tags added to every point of this input.'),
    nodes: Type.Array(OpcuaNodeSchema, { minItems: 1, description: 'The variables to read.' }),
  },
  { additionalProperties: false, description: 'An OPC UA server.' },
);

export type OpcuaInputConfig = StaticDecode<typeof OpcuaInputSchema>;
export type OpcuaNodeConfig = StaticDecode<typeof OpcuaNodeSchema>;

export const opcuaInput = defineComponent({
  type: 'opcua',
  schema: OpcuaInputSchema,
  finish(cfg, ctx) {
    if (unset(cfg.measurement)) cfg.measurement = ctx.id;
    const port = /^opc\.tcp:\/\/[^/:]+:([0-9]+)/.exec(cfg.url)?.[1];
    if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) ctx.error(['url'], `port ${port} is not 1-65535`);
    if ((cfg.security_policy === 'None') !== (cfg.security_mode === 'None')) {
      const key = ctx.raw.security_mode === undefined ? 'security_policy' : 'security_mode';
      ctx.error([key], `security_policy ${cfg.security_policy} and security_mode ${cfg.security_mode} do not go together: both None, or a policy with Sign or SignAndEncrypt`);
    }
    const names = new Map<string, number>();
    cfg.nodes.forEach((n, i) => {
      const first = names.get(n.name);
      if (first !== undefined) ctx.error(['nodes', i, 'name'], `field name "${n.name}" is already used by nodes[${first}]`);
      else names.set(n.name, i);
      if (cfg.mode === 'poll' && n.sampling_interval !== undefined) ctx.error(['nodes', i, 'sampling_interval'], 'sampling_interval applies to mode: subscribe (poll reads every interval)', 'key');
    });
    if (cfg.mode === 'poll' && ctx.raw.publishing_interval !== undefined) ctx.error(['publishing_interval'], 'publishing_interval applies to mode: subscribe; poll uses interval', 'key');
    if (cfg.mode === 'subscribe' && ctx.raw.interval !== undefined) ctx.error(['interval'], 'interval applies to mode: poll; subscribe uses publishing_interval', 'key');
    const auth = cfg.auth;
    if (auth !== undefined) {
      const byUser = auth.username !== undefined || auth.password !== undefined || auth.password_file !== undefined;
      const byCert = auth.certificate !== undefined || auth.private_key !== undefined;
      if (byUser && byCert) ctx.error(['auth'], 'choose one identity: username with password/password_file, or certificate with private_key');
      else if (byUser) {
        if (auth.username === undefined) ctx.error(['auth'], 'password and password_file need a username');
        if (auth.password !== undefined && auth.password_file !== undefined) ctx.error(['auth', 'password_file'], 'set either password or password_file, not both', 'key');
        if (auth.username !== undefined && auth.password === undefined && auth.password_file === undefined) ctx.error(['auth', 'username'], 'a username needs password or password_file', 'key');
      } else if (byCert) {
        if ((auth.certificate === undefined) !== (auth.private_key === undefined)) ctx.error(['auth', auth.certificate === undefined ? 'private_key' : 'certificate'], 'certificate and private_key go together', 'key');
      } else ctx.error(['auth'], 'auth is empty: leave it out for anonymous, or give username and password, or certificate and private_key', 'key');
    }
  },
});
