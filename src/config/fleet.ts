// The `fleet` section: where the gateway fetches signed manifests, how it trusts them, how long a
// change must stay healthy before it is kept, and where it reports a heartbeat. Every key has a
// description (the schema is the docs); finishFleet checks what a schema cannot say. Pure: no I/O.
import { Type, type StaticDecode } from '@sinclair/typebox';
import type { Path } from '../core/schema/errors.js';
import { Duration, NonEmpty, defaultEmpty, withDefault } from '../core/schema/kit.js';
import { inlinePublicKey, keySpecKind } from '../core/keys.js';

export const DEFAULT_HEARTBEAT_TOPIC = 'sluice/{agent}/status';

const HTTP_URL = { pattern: '^https?://\\S+$', 'x-expects': 'an http:// or https:// url' };

export const FleetHeartbeatMqttSchema = Type.Object(
  {
    url: Type.String({
      pattern: '^(?:mqtts?|wss?)://\\S+$',
      'x-expects': 'a broker url mqtt://host[:port], mqtts://…, ws://… or wss://…',
      description: 'Broker url: mqtt:// (default port 1883), mqtts:// (TLS), ws:// or wss://.',
    }),
    topic: withDefault(
      NonEmpty('Topic of the retained status message; {agent} is replaced by agent.id.'),
      DEFAULT_HEARTBEAT_TOPIC,
    ),
    username: Type.Optional(NonEmpty('Broker user name.')),
    password: Type.Optional(NonEmpty('Broker password (use ${VAR}).')),
  },
  { additionalProperties: false, description: 'Publish the heartbeat, retained, to an MQTT broker; the broker publishes {"online":false} there when the gateway disappears.' },
);

export const FleetHeartbeatSchema = Type.Object(
  {
    mqtt: Type.Optional(FleetHeartbeatMqttSchema),
    url: Type.Optional(Type.String({ ...HTTP_URL, description: 'POST the heartbeat (JSON) to this url.' })),
  },
  { additionalProperties: false, description: 'A status report (version, config serial, health, backlog) sent every fleet.interval, so a fleet can be watched.' },
);

export const FleetSchema = Type.Object(
  {
    url: Type.Optional(
      Type.String({
        ...HTTP_URL,
        description: 'Url of the signed manifest (config and binaries) this gateway follows. Polled every interval with If-None-Match. Without it the gateway is not fleet-managed.',
      }),
    ),
    public_key: Type.Optional(
      NonEmpty(
        'Ed25519 public key manifests must be signed with: a path to a PEM file (fleet.pub from `sluice fleet keygen`), the PEM text, or its base64 line. Required with url.',
      ),
    ),
    interval: withDefault(Duration({ description: 'How often the manifest is polled and the heartbeat sent.' }), '5m'),
    commit_after: withDefault(
      Duration({
        description: 'How long a new config or binary must run healthy before it is kept; if an input stops producing or the agent turns unhealthy sooner, the previous one comes back.',
      }),
      '2m',
    ),
    heartbeat: defaultEmpty(FleetHeartbeatSchema),
  },
  { additionalProperties: false, description: 'Fleet management: signed remote config, self-update with rollback, heartbeat.' },
);

export type FleetConfig = StaticDecode<typeof FleetSchema>;

/** Cross-key rules of the fleet section; `error` takes paths from the document root. */
export function finishFleet(cfg: FleetConfig, error: (path: Path, message: string, at?: 'key' | 'value') => void): void {
  if (cfg.url !== undefined && cfg.public_key === undefined) {
    error(['fleet', 'url'], 'a fleet url needs fleet.public_key: manifests are applied only when signed with that key');
  }
  if (cfg.public_key !== undefined && keySpecKind(cfg.public_key) !== 'file') {
    try {
      inlinePublicKey(cfg.public_key);
    } catch (err) {
      error(['fleet', 'public_key'], (err as Error).message);
    }
  }
  const topic = cfg.heartbeat.mqtt?.topic;
  if (topic !== undefined && /[+#]/.test(topic)) error(['fleet', 'heartbeat', 'mqtt', 'topic'], 'a topic to publish to cannot hold the wildcards + or #');
}
