// One JSON object as one reading: nested objects and arrays flattened with `_` (`{"env":{"t":1}}` gives
// `env_t`, `{"v":[1,2]}` gives `v_0`, `v_1`), nulls and empty keys left out, `fields` picking flattened
// keys (naming an object or array picks every value under it), `time_key` a flattened key too.
// Shared by the inputs that read JSON (mqtt, serial). Pure; refusals are ValueErrors.
import type { Fields } from './point.js';
import type { Precision } from './time.js';
import { EPOCH_NUMBER, ValueError, epochToUs, rfc3339ToUs } from './text-values.js';
import { isWellFormedText } from './utf8.js';

const MAX_JSON_DEPTH = 32;

export interface JsonSettings {
  fields?: readonly string[];
  time_key?: string;
  time_precision: Precision;
}

export interface Reading {
  fields: Fields;
  timeUs: number;
}

interface Flat {
  /** Leaves by flattened key. */
  leaves: Map<string, string | number | boolean>;
  /** Flattened keys of objects and arrays, each with the leaves under it (what `fields` may name). */
  groups: Map<string, string[]>;
}

function flatten(obj: Record<string, unknown>): Flat {
  const flat: Flat = { leaves: new Map(), groups: new Map() };
  const walk = (value: unknown, key: string, depth: number, owners: readonly string[]): void => {
    if (value === null || key === '') return;
    if (typeof value === 'object') {
      if (depth >= MAX_JSON_DEPTH) throw new ValueError(`nested deeper than ${MAX_JSON_DEPTH} levels`);
      flat.groups.set(key, []);
      const inner = [...owners, key];
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v as unknown] as const) : Object.entries(value);
      for (const [k, v] of entries) walk(v, k === '' ? '' : `${key}_${k}`, depth + 1, inner);
      return;
    }
    // JSON.parse reads 1e400 as Infinity: refuse it rather than store a value no output can send.
    if (typeof value === 'number' && !Number.isFinite(value)) throw new ValueError(`${key}: number out of the range of a float`);
    if (typeof value !== 'number' && typeof value !== 'string' && typeof value !== 'boolean') return;
    // A `\ud800` escape with no partner has no UTF-8 form: stored, it would become U+FFFD.
    if (!isWellFormedText(key) || (typeof value === 'string' && !isWellFormedText(value))) {
      throw new ValueError(`${JSON.stringify(key)}: not valid Unicode (an unpaired surrogate escape)`);
    }
    flat.leaves.set(key, value);
    for (const o of owners) flat.groups.get(o)!.push(key);
  };
  for (const [k, v] of Object.entries(obj)) walk(v, k, 1, []);
  return flat;
}

/** A parsed JSON value as one reading; `where` prefixes messages (e.g. `item 3: ` in an array). */
export function jsonReading(obj: unknown, settings: JsonSettings, receivedUs: number, where = ''): Reading {
  const { fields: pick, time_key: timeKey, time_precision: precision } = settings;
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new ValueError(`${where}is not a JSON object`);
  const flat = flatten(obj as Record<string, unknown>);
  let timeUs = receivedUs;
  if (timeKey !== undefined) {
    const t = flat.leaves.get(timeKey);
    if (t === undefined) throw new ValueError(`${where}no time: key ${timeKey} is missing`);
    if (typeof t === 'boolean') throw new ValueError(`${where}time ${timeKey} is a boolean`);
    // Numbers are re-read from their shortest decimal form, exact for ms and coarser; ns epochs
    // exceed a double's 53 bits, so devices should send them as strings of digits.
    timeUs = typeof t === 'number' || EPOCH_NUMBER.test(t) ? epochToUs(String(t), precision) : rfc3339ToUs(t);
  }
  const fields: Fields = {};
  let any = false;
  const add = (key: string): void => {
    const v = flat.leaves.get(key);
    if (v === undefined || key === timeKey) return;
    fields[key] = v;
    any = true;
  };
  if (pick === undefined) for (const key of flat.leaves.keys()) add(key);
  else {
    for (const name of pick) {
      add(name);
      for (const key of flat.groups.get(name) ?? []) add(key);
    }
  }
  if (!any) throw new ValueError(`${where}${pick === undefined ? 'no values' : `none of the fields ${pick.join(', ')}`}`);
  return { fields, timeUs };
}
