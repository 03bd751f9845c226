// Config of the `rules` section: validation of field values, alert rules and where alerts are sent.
// The schema is the docs (every key has a description); `finishRules` checks what a schema cannot
// say (conditions parse, names are unique, templates name known placeholders). Pure: no I/O.
import { Type, type StaticDecode } from '@sinclair/typebox';
import type { Path } from '../core/schema/errors.js';
import { Duration, IntegerEnum, NonEmpty, StringEnum, TlsVerify, defaultEmpty, derived, unset, withDefault } from '../core/schema/kit.js';
import { parseCondition } from './condition.js';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const VALIDATE_ACTIONS = ['drop', 'drop_point', 'flag'] as const;
export type ValidateAction = (typeof VALIDATE_ACTIONS)[number];

/** Tags a flagged point gets unless rules.flag_tag says otherwise. */
export const DEFAULT_FLAG_TAG: Readonly<Record<string, string>> = { quality: 'bad' };

/** Measurement of the points alerts are stored as. */
export const ALERT_MEASUREMENT = 'sluice_alert';

const RULE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
const RULE_NAME_HINT = 'a name of letters, digits, "_", "." and "-", starting with a letter or digit, at most 64 characters';

/** Placeholders of `message` (besides {tags.NAME}). */
export const MESSAGE_PLACEHOLDERS = ['rule', 'severity', 'state', 'measurement', 'field', 'value', 'condition', 'silence', 'series'] as const;
/** Placeholders of the MQTT `topic`. */
export const TOPIC_PLACEHOLDERS = ['agent', 'rule', 'severity', 'state', 'measurement'] as const;

function TagFilter(description: string) {
  return withDefault(
    Type.Record(Type.String(), Type.String({ description: 'Tag value the series must have (a string: quote numbers).' }), {
      description,
      propertyNames: { minLength: 1 },
    }),
    {},
  );
}

function RuleName(description: string) {
  return Type.String({ pattern: RULE_NAME_PATTERN, 'x-expects': RULE_NAME_HINT, description });
}

export const ValidateRuleSchema = Type.Object(
  {
    name: Type.Optional(RuleName('Name of the rule in metrics and status. Default: MEASUREMENT.FIELD (or FIELD without a measurement).')),
    measurement: Type.Optional(NonEmpty('Measurement the rule applies to. Default: every measurement.')),
    field: NonEmpty('Field whose values are checked.'),
    tags: TagFilter('Only series with all of these tags are checked (e.g. { sensor: s001 }). Default: every series.'),
    min: Type.Optional(Type.Number({ description: 'Smallest valid value (inclusive). A quality threshold is a min on a quality field (e.g. field: quality, min: 192).' })),
    max: Type.Optional(Type.Number({ description: 'Largest valid value (inclusive).' })),
    action: withDefault(
      StringEnum(VALIDATE_ACTIONS, {
        description:
          'What happens to an invalid value (out of range, NaN, infinite, or not a number): drop removes that value (the point\'s other fields are kept; a point left without fields is dropped); drop_point drops the whole point (for quality fields: the other readings are suspect too); flag keeps the point and adds rules.flag_tag to it, so it lands in a separate series and alert rules ignore it.',
      }),
      'drop',
    ),
  },
  { additionalProperties: false, description: 'A range a field\'s values must be in. Values are checked in the agent before they are stored; invalid ones are counted per rule.' },
);

export const AlertRuleSchema = Type.Object(
  {
    name: RuleName('Name of the alert: the `rule` tag of its sluice_alert points and the key of its metrics. Unique.'),
    measurement: NonEmpty('Measurement the rule watches.'),
    field: Type.Optional(NonEmpty('Field the condition tests (or, for silence, the field whose absence counts). May also lead the condition ("temperature > 35").')),
    tags: TagFilter('Only series with all of these tags are watched. Default: every series of the measurement.'),
    when: Type.Optional(
      NonEmpty(
        'Condition on the field that fires the alert: "> 35", "< 5", ">= 35", "<= 5", "== 3", "!= 0", "== true", "== \\"fault\\"", "between 10 and 20" (inclusive), "outside 10 20". Set either when or silence.',
        { examples: ['> 35', 'temperature > 35', 'between 10 and 20', '== true'] },
      ),
    ),
    silence: Type.Optional(
      Duration({ description: 'Fires when no valid data arrived for this long (wall clock time of arrival, checked every silence/4, between 1s and 30s). Set either when or silence.' }),
    ),
    per: withDefault(
      StringEnum(['series', 'measurement'] as const, {
        description: 'Silence only: series watches each series (tag set) seen since the start on its own, and also fires, without series tags, when no data at all arrived since the start; measurement watches the measurement as a whole.',
      }),
      'series',
    ),
    severity: withDefault(StringEnum(SEVERITIES, { description: 'Severity: the `severity` tag and payload key.' }), 'warning'),
    cooldown: withDefault(
      Duration({ description: 'Fires at most once per cooldown per series: again after it if the condition still holds (or came back), not before.' }),
      '10m',
    ),
    resolve: withDefault(Type.Boolean({ description: 'Send a `resolved` alert when the condition clears (or data arrives again) after a `firing` one.' }), true),
    message: Type.Optional(
      NonEmpty(
        'Message template. Placeholders: {rule}, {severity}, {state}, {measurement}, {field}, {value}, {condition}, {silence}, {series} (the series\' tags as k=v,…) and {tags.NAME}. Default: a sentence from those.',
        { examples: ['{tags.room}: temperature {value} °C'] },
      ),
    ),
  },
  { additionalProperties: false, description: 'An alert rule: a condition on a field, or silence.' },
);

const MinSeverity = () =>
  withDefault(StringEnum(SEVERITIES, { description: 'Only alerts of this severity or higher are sent here (info < warning < critical).' }), 'info');

export const MqttNotifySchema = Type.Object(
  {
    url: Type.String({
      pattern: '^(?:mqtts?|wss?)://\\S+$',
      'x-expects': 'a broker url mqtt://host[:port], mqtts://…, ws://… or wss://…',
      description: 'Broker url: mqtt:// (default port 1883), mqtts:// (TLS, 8883), ws:// or wss://.',
      examples: ['mqtt://127.0.0.1:1883'],
    }),
    topic: withDefault(
      NonEmpty('Topic alerts are published to; placeholders {agent}, {rule}, {severity}, {state}, {measurement}.'),
      'sluice/{agent}/alerts',
    ),
    qos: withDefault(IntegerEnum([0, 1, 2] as const, { description: 'Publish QoS. With 1 and 2 an alert counts as sent once the broker acknowledged it.' }), 1),
    retain: withDefault(Type.Boolean({ description: 'Publish with the retain flag (the broker keeps the last alert per topic for new subscribers).' }), false),
    client_id: Type.Optional(NonEmpty('MQTT client id. Default: sluice-<agent.id>-alerts.')),
    username: Type.Optional(NonEmpty('User name.')),
    password: Type.Optional(NonEmpty('Password (prefer ${VAR}).')),
    tls: Type.Optional(TlsVerify('TLS settings for mqtts:// and wss:// urls.')),
    timeout: withDefault(Duration({ description: 'How long one attempt waits for the connection and the broker\'s acknowledgement.' }), '5s'),
    min_severity: MinSeverity(),
  },
  { additionalProperties: false, description: 'Publish alerts as JSON to an MQTT broker.' },
);

export const WebhookNotifySchema = Type.Object(
  {
    url: Type.String({
      pattern: '^https?://\\S+$',
      'x-expects': 'an http:// or https:// url',
      description: 'URL alerts are POSTed to, one JSON object per alert.',
      examples: ['https://hooks.example/sluice'],
    }),
    headers: withDefault(
      Type.Record(Type.String(), Type.String({ description: 'Header value.' }), {
        propertyNames: { pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' },
        description: 'Extra request headers, e.g. { Authorization: "Bearer ${HOOK_TOKEN}" }.',
      }),
      {},
    ),
    timeout: withDefault(Duration({ description: 'Timeout of one request.' }), '5s'),
    min_severity: MinSeverity(),
  },
  { additionalProperties: false, description: 'POST alerts as JSON to an HTTP endpoint; a 2xx answer counts as sent.' },
);

export const NotifySchema = Type.Object(
  {
    mqtt: Type.Optional(MqttNotifySchema),
    webhook: Type.Optional(WebhookNotifySchema),
    retries: withDefault(
      Type.Integer({ minimum: 0, maximum: 100, description: 'Attempts after the first before an alert is given up on (counted as failed). 4xx answers other than 408 and 429 are not retried.' }),
      3,
    ),
    retry_backoff: withDefault(Duration({ description: 'Wait before the first retry; it doubles with each retry, up to 1m.' }), '1s'),
    queue_size: withDefault(
      Type.Integer({ minimum: 1, maximum: 100_000, description: 'Alerts waiting per destination; when full the oldest is discarded and counted.' }),
      1000,
    ),
  },
  { additionalProperties: false, description: 'Where alerts are sent besides the store (sluice_alert points, which outputs ship like any point).' },
);

export const RulesSchema = Type.Object(
  {
    validate: withDefault(Type.Array(ValidateRuleSchema, { description: 'Value checks, applied in order before points are stored.' }), []),
    // Not withDefault: TypeBox would merge the default's keys into a map the user wrote; finishRules fills it.
    flag_tag: derived(
      Type.Record(Type.String(), Type.String({ description: 'Tag value.' }), {
        propertyNames: { minLength: 1 },
        minProperties: 1,
        description: 'Tags added to a point with an invalid value under action: flag. Default: { quality: bad }.',
      }),
    ),
    alerts: withDefault(Type.Array(AlertRuleSchema, { description: 'Alert rules, evaluated on the points as they are stored.' }), []),
    notify: defaultEmpty(NotifySchema),
  },
  { additionalProperties: false, description: 'Edge rules: validation of values and alerts.' },
);

export type RulesConfig = StaticDecode<typeof RulesSchema>;
export type ValidateRuleConfig = RulesConfig['validate'][number];
export type AlertRuleConfig = RulesConfig['alerts'][number];
export type NotifyConfig = RulesConfig['notify'];
export type MqttNotifyConfig = NonNullable<NotifyConfig['mqtt']>;
export type WebhookNotifyConfig = NonNullable<NotifyConfig['webhook']>;

/** The default name of a validation rule. */
export function validateRuleName(rule: ValidateRuleConfig): string {
  return rule.name ?? (rule.measurement === undefined ? rule.field : `${rule.measurement}.${rule.field}`);
}

/** Placeholders `{…}` in a template that are not known; {tags.NAME} is always known. */
function unknownPlaceholders(template: string, known: readonly string[], allowTags: boolean): string[] {
  const bad: string[] = [];
  for (const m of template.matchAll(/\{([^{}]*)\}/g)) {
    const name = m[1];
    if (known.includes(name)) continue;
    if (allowTags && /^tags\.[^{}\s]+$/.test(name)) continue;
    bad.push(`{${name}}`);
  }
  return bad;
}

/**
 * Cross-key checks of the decoded section, reported at paths under `rules`; fills each alert's
 * `field` from a field-led condition, and flag_tag's default. Runs from the loader's finishConfig.
 */
export function finishRules(cfg: RulesConfig, error: (path: Path, message: string, at?: 'key' | 'value') => void): void {
  if (unset(cfg.flag_tag)) cfg.flag_tag = { ...DEFAULT_FLAG_TAG };
  const names = new Map<string, number>();
  cfg.validate.forEach((rule, i) => {
    const at = (...p: (string | number)[]): Path => ['rules', 'validate', i, ...p];
    if (rule.min === undefined && rule.max === undefined) error(at(), 'a validation rule needs min, max or both');
    if (rule.min !== undefined && rule.max !== undefined && rule.min > rule.max) error(at('max'), `max ${rule.max} is below min ${rule.min}; no value could be valid`);
    const name = validateRuleName(rule);
    const other = names.get(name);
    if (other !== undefined) error(at(rule.name === undefined ? 'field' : 'name'), `another validation rule ([${other}]) is also named "${name}"; give one a distinct name`);
    else names.set(name, i);
  });

  const alertNames = new Map<string, number>();
  cfg.alerts.forEach((rule, i) => {
    const at = (...p: (string | number)[]): Path => ['rules', 'alerts', i, ...p];
    const other = alertNames.get(rule.name);
    if (other !== undefined) error(at('name'), `alert rule [${other}] is also named "${rule.name}"; names must be unique`);
    else alertNames.set(rule.name, i);
    if (rule.when === undefined && rule.silence === undefined) error(at(), 'an alert rule needs when (a condition on a field) or silence (a duration)');
    if (rule.when !== undefined && rule.silence !== undefined) error(at('silence'), 'set either when or silence: a rule has one trigger', 'key');
    if (rule.when !== undefined) {
      const parsed = parseCondition(rule.when);
      if (!parsed.ok) error(at('when'), parsed.message);
      else if (parsed.value.field !== undefined && rule.field !== undefined && parsed.value.field !== rule.field) {
        error(at('when'), `the condition tests field "${parsed.value.field}" but field is "${rule.field}"; name the field once`);
      } else if (parsed.value.field === undefined && rule.field === undefined) {
        error(at('when'), `which field? set field, or lead the condition with it ("temperature ${rule.when.trim()}")`);
      } else if (rule.field === undefined) rule.field = parsed.value.field;
      if (rule.per !== 'series') error(at('per'), 'per applies to silence rules only', 'key');
    }
    if (rule.message !== undefined) {
      const bad = unknownPlaceholders(rule.message, MESSAGE_PLACEHOLDERS, true);
      if (bad.length > 0) error(at('message'), `unknown placeholder ${bad.join(', ')}; known: ${MESSAGE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}, {tags.NAME}`);
    }
  });

  const mqtt = cfg.notify.mqtt;
  if (mqtt !== undefined) {
    const bad = unknownPlaceholders(mqtt.topic, TOPIC_PLACEHOLDERS, false);
    if (bad.length > 0) error(['rules', 'notify', 'mqtt', 'topic'], `unknown placeholder ${bad.join(', ')}; known: ${TOPIC_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`);
    if (/[+#]/.test(mqtt.topic)) error(['rules', 'notify', 'mqtt', 'topic'], 'a topic to publish to cannot hold the wildcards + or #');
    if (mqtt.tls !== undefined && !/^(?:mqtts|wss):/.test(mqtt.url)) error(['rules', 'notify', 'mqtt', 'tls'], `tls settings need an mqtts:// or wss:// url (url is ${mqtt.url})`, 'key');
    if (mqtt.password !== undefined && mqtt.username === undefined) error(['rules', 'notify', 'mqtt', 'password'], 'a password is sent only with a username', 'key');
  }
}
