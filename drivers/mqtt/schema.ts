// Config of the `mqtt` input: subscriptions on one broker.
import { Type, type StaticDecode } from '@sinclair/typebox';
import {
  ComponentType,
  Duration,
  IntegerEnum,
  JsonPayload,
  Measurement,
  NonEmpty,
  StringEnum,
  TIME_PRECISIONS,
  Tags,
  TlsWithClientCertificate,
  defineComponent,
  derived,
  unset,
  withDefault,
} from '../../src/core/schema/kit.js';

export const MQTT_FORMATS = ['json', 'influx', 'value'] as const;

export const MqttTlsSchema = TlsWithClientCertificate('TLS settings for mqtts:// and wss:// urls.');

export const MqttInfluxSchema = Type.Object(
  {
    precision: withDefault(
      StringEnum(TIME_PRECISIONS, { description: 'Unit of the timestamps in the lines (as the InfluxDB write API precision). Lines without one get the time of receipt.' }),
      'ns',
    ),
  },
  { additionalProperties: false, description: 'Settings for format: influx.' },
);

/** max_inflight when not written: mosquitto's max_inflight_messages default for 3.1.1; for 5, a window that keeps commits on their interval up to 20k messages/s at the default commit_interval, and what waits for acknowledgement to about 1.5 MB. */
export const DEFAULT_MAX_INFLIGHT = { 4: 20, 5: 10_000 } as const;

/** Longest MQTT 5 session expiry interval: a four-byte count of seconds. */
const MAX_SESSION_EXPIRY_MS = 0xffff_ffff * 1000;

export const MqttInputSchema = Type.Object(
  {
    type: ComponentType('mqtt', 'Subscribes to topics on an MQTT broker; messages are acknowledged only once stored.'),
    url: Type.String({
      pattern: '^(?:mqtts?|wss?)://\\S+$',
      'x-expects': 'a broker url mqtt://host[:port], mqtts://…, ws://… or wss://…',
      description: 'Broker url: mqtt:// (default port 1883), mqtts:// (TLS, 8883), ws:// or wss:// (WebSocket).',
      examples: ['mqtt://127.0.0.1:1883', 'mqtts://broker.example:8883'],
    }),
    topics: Type.Array(NonEmpty('An MQTT topic filter; + matches one level, # (last) the rest.'), {
      minItems: 1,
      uniqueItems: true,
      description: 'Topic filters to subscribe to.',
      examples: [['plant/+/+/state']],
    }),
    topic_tags: Type.Optional(
      NonEmpty(
        'Template that turns topic levels into tags: {name} takes the level as tag "name", + skips a level, a trailing # skips the rest, other levels must match literally.',
        { examples: ['plant/{area}/{device}/state'] },
      ),
    ),
    format: StringEnum(MQTT_FORMATS, {
      description: 'Payload format: json (an object, see json), influx (line protocol), value (one number or boolean, stored as field "value").',
    }),
    qos: withDefault(IntegerEnum([0, 1, 2] as const, { description: 'Subscription QoS. With 1 and 2 a message is acknowledged only after its points are committed.' }), 1),
    max_inflight: derived(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description:
          'QoS 1/2 messages the broker sends before it waits for acknowledgements. MQTT 5: sluice asks the broker for this window (Receive Maximum). MQTT 3.1.1: the broker decides; set this to its limit (mosquitto max_inflight_messages, default 20). When this many messages wait for their group commit, sluice commits at once rather than at agent.commit_interval, so the window never throttles ingest (it only adds commits above max_inflight messages per commit_interval). Default: 20 with protocol_version 4, 10000 with 5.',
      }),
    ),
    session_expiry: withDefault(
      Duration({
        description:
          'MQTT 5: how long the broker keeps the session (subscriptions and undelivered QoS 1/2 messages) after sluice disconnects. With 3.1.1 sessions last until the broker expires them (mosquitto persistent_client_expiration).',
      }),
      '7d',
    ),
    client_id: Type.Optional(NonEmpty('MQTT client id; keep it stable for persistent sessions. Default: sluice-<agent.id>-<input id>.')),
    username: Type.Optional(NonEmpty('User name.')),
    password: Type.Optional(NonEmpty('Password (prefer password_file or ${VAR}).')),
    password_file: Type.Optional(NonEmpty('Path to a file whose contents (trailing newline removed) are the password.')),
    protocol_version: withDefault(IntegerEnum([4, 5] as const, { description: 'MQTT protocol: 4 = 3.1.1 (any broker), 5 = MQTT 5.' }), 4),
    tls: Type.Optional(MqttTlsSchema),
    json: Type.Optional(JsonPayload()),
    influx: Type.Optional(MqttInfluxSchema),
    measurement: Measurement(),
    tags: Tags('Tags added to every point of this input.'),
  },
  { additionalProperties: false, description: 'An MQTT broker subscription.' },
);

export type MqttInputConfig = StaticDecode<typeof MqttInputSchema>;

/** Why a topic filter is malformed, or undefined if it is fine (MQTT 3.1.1 section 4.7). */
export function topicFilterProblem(filter: string): string | undefined {
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '# must be a whole level and the last one';
    if (level.includes('+') && level !== '+') return '+ must be a whole level';
  }
  return filter.includes('\u0000') ? 'contains a NUL character' : undefined;
}

export type TopicTemplateLevel = { kind: 'literal'; text: string } | { kind: 'tag'; name: string } | { kind: 'skip' } | { kind: 'rest' };

/** Parses a topic_tags template; the mqtt driver uses the same parse to extract tags. */
export function parseTopicTemplate(template: string): { ok: true; levels: TopicTemplateLevel[] } | { ok: false; message: string } {
  const parts = template.split('/');
  const levels: TopicTemplateLevel[] = [];
  const names = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    const tag = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(p);
    if (tag) {
      const name = tag[1];
      if (names.has(name)) return { ok: false, message: `tag {${name}} appears twice` };
      names.add(name);
      levels.push({ kind: 'tag', name });
    } else if (p === '+') levels.push({ kind: 'skip' });
    else if (p === '#') {
      if (i !== parts.length - 1) return { ok: false, message: '# must be the last level' };
      levels.push({ kind: 'rest' });
    } else if (/[{}+#]/.test(p)) {
      return { ok: false, message: `level "${p}" is neither literal text nor a whole {name} (names are letters, digits and _), + or #` };
    } else levels.push({ kind: 'literal', text: p });
  }
  if (names.size === 0) return { ok: false, message: 'has no {name} level, so it adds no tags' };
  return { ok: true, levels };
}

/** Why a template can never match topics of a filter, or undefined if some topic can match both. */
function mismatch(levels: readonly TopicTemplateLevel[], filter: string): string | undefined {
  const f = filter.split('/');
  for (let i = 0; ; i++) {
    const t = levels[i];
    const fl = f[i];
    if (t?.kind === 'rest' || fl === '#') return undefined;
    if (t === undefined && fl === undefined) return undefined;
    if (t === undefined || fl === undefined) return `the template has ${levels.length} levels, the topic ${f.length}`;
    if (t.kind === 'literal' && fl !== '+' && fl !== t.text) return `level ${i + 1} is "${t.text}" in the template but "${fl}" in the topic`;
  }
}

export const mqttInput = defineComponent({
  type: 'mqtt',
  schema: MqttInputSchema,
  finish(cfg, ctx) {
    if (unset(cfg.measurement)) cfg.measurement = ctx.id;
    cfg.topics.forEach((t, i) => {
      const problem = topicFilterProblem(t);
      if (problem) ctx.error(['topics', i], `invalid topic filter "${t}": ${problem}`);
    });
    if (cfg.topic_tags !== undefined) {
      const parsed = parseTopicTemplate(cfg.topic_tags);
      if (!parsed.ok) ctx.error(['topic_tags'], `invalid template "${cfg.topic_tags}": ${parsed.message}`);
      else {
        for (const t of cfg.topics) {
          const why = mismatch(parsed.levels, t);
          if (why) ctx.error(['topic_tags'], `template "${cfg.topic_tags}" can never match topic "${t}": ${why}`);
        }
      }
    }
    if (cfg.password !== undefined && cfg.password_file !== undefined) ctx.error(['password_file'], 'set either password or password_file, not both', 'key');
    if ((cfg.password !== undefined || cfg.password_file !== undefined) && cfg.username === undefined && cfg.protocol_version === 4) {
      ctx.error([cfg.password !== undefined ? 'password' : 'password_file'], 'MQTT 3.1.1 (protocol_version 4) sends a password only with a username', 'key');
    }
    if (cfg.tls !== undefined) {
      if (!/^(?:mqtts|wss):/.test(cfg.url)) ctx.error(['tls'], `tls settings need an mqtts:// or wss:// url (url is ${cfg.url})`, 'key');
      if ((cfg.tls.cert === undefined) !== (cfg.tls.key === undefined)) {
        ctx.error(['tls', cfg.tls.cert === undefined ? 'key' : 'cert'], 'cert and key go together', 'key');
      }
    }
    if (cfg.json !== undefined && cfg.format !== 'json') ctx.error(['json'], `json settings apply only to format: json (format is ${cfg.format})`, 'key');
    if (cfg.influx !== undefined && cfg.format !== 'influx') ctx.error(['influx'], `influx settings apply only to format: influx (format is ${cfg.format})`, 'key');
    if (cfg.format === 'influx' && !unset(ctx.raw.measurement)) {
      ctx.error(['measurement'], 'format influx takes the measurement from each line; remove measurement', 'key');
    }
    if (unset(cfg.max_inflight)) cfg.max_inflight = DEFAULT_MAX_INFLIGHT[cfg.protocol_version];
    if (!unset(ctx.raw.session_expiry) && cfg.protocol_version !== 5) {
      ctx.error(['session_expiry'], 'session_expiry applies to MQTT 5 (protocol_version: 5); with 3.1.1 the broker decides how long a session lasts', 'key');
    }
    if (cfg.session_expiry > MAX_SESSION_EXPIRY_MS) ctx.error(['session_expiry'], 'session_expiry is at most 4294967295s (about 136 years)');
  },
});
