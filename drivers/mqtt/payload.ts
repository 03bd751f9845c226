// Decoding of MQTT messages into points. Pure: the time of receipt is passed in; nothing here reads a
// clock or a socket, so every rule below is tested table-driven in payload.test.ts.
//
// Typing, the same as the serial input's so one JSON block of config means one thing everywhere:
// - json: numbers are floats (also `20`: a sensor sending `20` then `20.5` must not make an integer and
//   then a float field, which InfluxDB would refuse as a type conflict), booleans booleans, strings
//   strings, nulls left out. Nested objects and arrays are flattened with `_` (`{"env":{"t":1}}` gives
//   `env_t`, `{"v":[1,2]}` gives `v_0`, `v_1`). A top-level array of objects is a batch: one point each.
// - value: the whole payload is one number (float) or true/false (any case); field `value`.
// - influx: line protocol with its own measurement, tags and types; one or more lines per message.
//
// Tags: the input's `tags`, then the levels `topic_tags` takes from the topic, then (influx only) the
// line's own tags; the later wins.
//
// A payload that yields nothing throws PayloadError with a reason meant for a log line.
import { parseLines } from '../../src/core/line-protocol.js';
import { decodeUtf8Escaped } from '../../src/core/utf8.js';
import { ValueError, clip } from '../../src/core/text-values.js';
import { jsonReading, type Reading } from '../../src/core/json-payload.js';
import type { Point, Tags } from '../../src/core/point.js';
import type { Precision } from '../../src/core/time.js';
import { parseTopicTemplate, type MqttInputConfig, type TopicTemplateLevel } from './schema.js';

/** A payload that cannot be turned into a single point. */
export class PayloadError extends ValueError {
  override readonly name = 'PayloadError';
}

export type MqttFormat = MqttInputConfig['format'];
export type JsonSettings = NonNullable<MqttInputConfig['json']>;

export interface DecoderSettings {
  format: MqttFormat;
  measurement: string;
  tags: Tags;
  topicTags?: string;
  json?: JsonSettings;
  /** Unit of line-protocol timestamps (format influx). */
  influxPrecision?: Precision;
}

export interface Decoded {
  points: Point[];
  /** Line-protocol lines of this message that were refused (format influx), with why. */
  rejectedLines: { line: number; error: string }[];
  /** False when topic_tags is set and this topic does not fit it: the points carry no topic tags. */
  topicMatched: boolean;
}

/** Decodes one message: throws PayloadError when nothing in it can be stored. */
export type MessageDecoder = (topic: string, payload: Uint8Array, receivedUs: number) => Decoded;

export function createDecoder(settings: DecoderSettings): MessageDecoder {
  const topicTags = settings.topicTags === undefined ? undefined : compileTopicTags(settings.topicTags);
  const baseTags = settings.tags;
  const { measurement } = settings;
  // Bytes that are not UTF-8 are refused, never turned into U+FFFD: json and value refuse the message;
  // influx keeps them visible (utf8.ts) so that only the lines holding them are rejected.
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  const decodeStrict = (payload: Uint8Array): string => {
    try {
      return utf8.decode(payload);
    } catch {
      const at = firstInvalidByte(payload);
      throw new PayloadError(`not valid UTF-8 (byte 0x${payload[at].toString(16).padStart(2, '0')} at offset ${at})`);
    }
  };
  let decodeText = decodeStrict;

  let read: (text: string, receivedUs: number, tags: Tags) => Omit<Decoded, 'topicMatched'>;
  switch (settings.format) {
    case 'json': {
      const json = jsonReader(settings.json ?? { time_precision: 'ms' });
      read = (text, receivedUs, tags) => ({
        points: json(text, receivedUs).map((r) => ({ measurement, tags: { ...tags }, fields: r.fields, timeUs: r.timeUs })),
        rejectedLines: [],
      });
      break;
    }
    case 'value':
      read = (text, receivedUs, tags) => ({
        points: [{ measurement, tags: { ...tags }, fields: { value: parseValue(text) }, timeUs: receivedUs }],
        rejectedLines: [],
      });
      break;
    case 'influx': {
      const precision = settings.influxPrecision ?? 'ns';
      read = (text, receivedUs, tags) => influxRead(text, receivedUs, tags, precision);
      decodeText = (payload) => {
        const text = decodeUtf8Escaped(payload);
        return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
      };
      break;
    }
  }

  return (topic, payload, receivedUs) => {
    let tags = baseTags;
    let topicMatched = true;
    if (topicTags) {
      const fromTopic = topicTags(topic);
      if (fromTopic === undefined) topicMatched = false;
      else tags = { ...baseTags, ...fromTopic };
    }
    return { ...read(decodeText(payload), receivedUs, tags), topicMatched };
  };
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence (for the message). */
function firstInvalidByte(payload: Uint8Array): number {
  const text = decodeUtf8Escaped(payload);
  let offset = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff) return offset;
    offset += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdbff ? (i++, 4) : 3;
  }
  return 0;
}

// ------------------------------------------------------------------------------------------ topics

/**
 * The tags a topic_tags template takes from a topic, or undefined when the topic does not fit the
 * template (another level count, or a literal level that differs). Empty levels give no tag.
 */
export function compileTopicTags(template: string): (topic: string) => Tags | undefined {
  const parsed = parseTopicTemplate(template);
  if (!parsed.ok) throw new Error(`topic_tags "${template}": ${parsed.message} (the config loader should have refused this)`);
  const levels: readonly TopicTemplateLevel[] = parsed.levels;
  const hasRest = levels[levels.length - 1]?.kind === 'rest';
  const fixed = hasRest ? levels.length - 1 : levels.length;
  return (topic) => {
    const parts = topic.split('/');
    if (hasRest ? parts.length < fixed : parts.length !== fixed) return undefined;
    const tags: Tags = {};
    for (let i = 0; i < fixed; i++) {
      const level = levels[i];
      const part = parts[i];
      if (level.kind === 'literal') {
        if (part !== level.text) return undefined;
      } else if (level.kind === 'tag') {
        if (part !== '') tags[level.name] = part;
      }
    }
    return tags;
  };
}

// ------------------------------------------------------------------------------------------ value

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** format value: one number (a float) or a boolean; blanks around it are allowed. */
export function parseValue(text: string): number | boolean {
  const t = text.trim();
  if (t === '') throw new PayloadError('empty value');
  if (DECIMAL.test(t)) {
    const n = Number(t);
    if (!Number.isFinite(n)) throw new PayloadError(`${clip(t)} is out of the range of a float`);
    return n;
  }
  const lower = t.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw new PayloadError(`${clip(t)} is neither a number nor true/false`);
}

// ------------------------------------------------------------------------------------------ influx

function influxRead(text: string, receivedUs: number, tags: Tags, precision: Precision): Omit<Decoded, 'topicMatched'> {
  const { points, rejects } = parseLines(text, { precision, defaultTimeUs: receivedUs });
  const rejectedLines = rejects.map((r) => ({ line: r.line, error: r.error }));
  if (points.length === 0) {
    if (rejects.length > 0) throw new PayloadError(`not line protocol: line ${rejects[0].line}: ${rejects[0].error}`);
    throw new PayloadError('no line-protocol lines');
  }
  if (Object.keys(tags).length > 0) for (const p of points) p.tags = { ...tags, ...p.tags };
  return { points, rejectedLines };
}

// ------------------------------------------------------------------------------------------ json

/** Deeper nesting is refused: it is not a sensor reading, and it would cost stack for nothing. */
/** format json: an object is one reading, an array of objects one reading each. */
export function jsonReader(settings: JsonSettings): (text: string, receivedUs: number) => Reading[] {
  const one = (obj: unknown, receivedUs: number, where: string): Reading => jsonReading(obj, settings, receivedUs, where);
  return (text, receivedUs) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new PayloadError(`not JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(parsed)) return [one(parsed, receivedUs, '')];
    if (parsed.length === 0) throw new PayloadError('an empty JSON array');
    return parsed.map((item, i) => one(item, receivedUs, `item ${i}: `));
  };
}

