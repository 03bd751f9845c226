// Alert rules (`rules.alerts`): conditions on field values and silence, per series, with cooldown
// and resolution. Pure: the clock is passed in (the engine passes Date.now()), nothing is sent from
// here; the engine stores and notifies the events this returns.
//
// States per rule and series: a condition is `active` while it holds. A `firing` event is emitted when
// it becomes active, and again each time it is found still active once `cooldown` has passed since the
// last `firing` (also when it cleared and came back within the cooldown: at most one `firing` per
// cooldown). A `resolved` event follows when it clears, if a `firing` was sent since the last
// `resolved` (and `resolve` is on). Times are wall-clock arrival times, not the points' timestamps, so
// a device with a wrong clock or a replayed backlog cannot hold an alert off.
import { randomUUID } from 'node:crypto';
import { formatDuration } from '../core/schema/units.js';
import type { FieldValue, Point, Tags } from '../core/point.js';
import { formatCondition, numericValue, parseCondition, testCondition, type Condition } from './condition.js';
import type { AlertRuleConfig, Severity } from './schema.js';

export type AlertState = 'firing' | 'resolved';

/** One alert notification: stored as a sluice_alert point, published, POSTed. */
export interface AlertEvent {
  /** Unique per event, so receivers can drop the duplicates an at-least-once retry may make. */
  id: string;
  rule: string;
  severity: Severity;
  state: AlertState;
  measurement: string;
  /** The field tested (or watched, for silence); null for silence of a whole point stream. */
  field: string | null;
  /** Tags of the series (for a measurement-wide silence: the rule's tag filter; the engine adds agent.tags). */
  tags: Tags;
  /** The value that fired or resolved the condition; for silence, the seconds without data. */
  value: FieldValue | null;
  /** The condition ("> 35") or "silence 5m". */
  condition: string;
  message: string;
  /** When the event was detected (ms since the epoch). */
  timeMs: number;
  /** Time of the alert point in the store: timeMs in µs, made unique per alert series. */
  timeUs: number;
  /** Since when the condition holds (firing) or held (resolved), ms. */
  sinceMs: number;
  /** Timestamp of the point that fired or resolved it (condition), or of the last data (silence); ms. */
  dataTimeMs: number | null;
}

/** Counters of one alert rule, cumulative since the agent started. */
export interface AlertRuleStats {
  severity: Severity;
  kind: 'condition' | 'silence';
  /** `firing` events emitted (first ones and repeats after the cooldown). */
  fired: number;
  /** `resolved` events emitted. */
  resolved: number;
  /** Times the condition became true again within the cooldown, so no `firing` was emitted. */
  suppressed: number;
  /** Series for which the condition holds now. */
  active: number;
}

interface SeriesState {
  tags: Tags;
  active: boolean;
  sinceMs: number;
  /** A `firing` was emitted and no `resolved` since. */
  announced: boolean;
  lastFiredMs: number;
  /** Silence: last arrival, ms (wall clock) and the data's own time. */
  lastSeenMs: number;
  lastDataMs: number | null;
  lastEventUs: number;
}

interface CompiledAlert {
  name: string;
  severity: Severity;
  measurement: string;
  field: string | null;
  tagFilter: [string, string][];
  ruleTags: Tags;
  condition: Condition | undefined;
  conditionText: string;
  silenceMs: number | undefined;
  perMeasurement: boolean;
  cooldownMs: number;
  resolve: boolean;
  message: string | undefined;
  states: Map<string, SeriesState>;
  stats: AlertRuleStats;
}

/** Key of the state of a per-series silence rule before any of its series was seen. */
const NO_DATA = '\u0000no-data';

/** How often silence is checked: a quarter of the shortest silence, within 1 s and 30 s. */
export function silenceTickMs(rules: readonly AlertRuleConfig[]): number | undefined {
  const silences = rules.flatMap((r) => (r.silence === undefined ? [] : [r.silence]));
  if (silences.length === 0) return undefined;
  return Math.min(30_000, Math.max(1000, Math.floor(Math.min(...silences) / 4)));
}

/**
 * Identity of a tag set within one measurement (every rule watches one measurement). Not the
 * line-protocol series key: escaping costs ten times more, and this key never leaves the process.
 */
export function tagSetKey(tags: Tags): string {
  const names = Object.keys(tags);
  if (names.length > 1) names.sort();
  let key = '';
  for (const name of names) key += `${name}\u0000${tags[name]}\u0001`;
  return key;
}

function matchesTags(tags: Tags, filter: readonly [string, string][]): boolean {
  for (const [k, v] of filter) if (tags[k] !== v) return false;
  return true;
}

function seriesText(tags: Tags): string {
  return Object.keys(tags)
    .sort()
    .map((k) => `${k}=${tags[k]}`)
    .join(',');
}

function valueText(v: FieldValue | null): string {
  if (v === null) return '';
  if (typeof v === 'number') return String(Math.round(v * 1e6) / 1e6);
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function fillTemplate(template: string, vars: Record<string, string>, tags: Tags): string {
  return template.replace(/\{([^{}]*)\}/g, (whole, name: string) => {
    if (name.startsWith('tags.')) return tags[name.slice(5)] ?? '';
    return Object.hasOwn(vars, name) ? vars[name] : whole;
  });
}

export class AlertEvaluator {
  private readonly byMeasurement = new Map<string, CompiledAlert[]>();
  private readonly rules: CompiledAlert[] = [];

  constructor(rules: readonly AlertRuleConfig[], startMs: number) {
    for (const r of rules) {
      let condition: Condition | undefined;
      let field = r.field ?? null;
      if (r.when !== undefined) {
        // The loader checked it; a failure here means a config that skipped the loader.
        const parsed = parseCondition(r.when);
        if (!parsed.ok) throw new Error(`rules.alerts ${r.name}: ${parsed.message}`);
        condition = parsed.value.condition;
        field ??= parsed.value.field ?? null;
        if (field === null) throw new Error(`rules.alerts ${r.name}: the condition names no field`);
      }
      const compiled: CompiledAlert = {
        name: r.name,
        severity: r.severity,
        measurement: r.measurement,
        field,
        tagFilter: Object.entries(r.tags),
        ruleTags: { ...r.tags },
        condition,
        conditionText: condition ? formatCondition(condition) : `silence ${formatDuration(r.silence ?? 0)}`,
        silenceMs: condition ? undefined : r.silence,
        perMeasurement: r.per === 'measurement',
        cooldownMs: r.cooldown,
        resolve: r.resolve,
        message: r.message,
        states: new Map(),
        stats: { severity: r.severity, kind: condition ? 'condition' : 'silence', fired: 0, resolved: 0, suppressed: 0, active: 0 },
      };
      if (compiled.silenceMs !== undefined) {
        // Silence counts from the start: a sensor that never speaks is the first thing to catch.
        compiled.states.set(compiled.perMeasurement ? r.measurement : NO_DATA, this.newState(compiled.ruleTags, startMs));
      }
      this.rules.push(compiled);
      const list = this.byMeasurement.get(r.measurement) ?? [];
      list.push(compiled);
      this.byMeasurement.set(r.measurement, list);
    }
  }

  get size(): number {
    return this.rules.length;
  }

  private newState(tags: Tags, nowMs: number): SeriesState {
    return { tags, active: false, sinceMs: 0, announced: false, lastFiredMs: -Infinity, lastSeenMs: nowMs, lastDataMs: null, lastEventUs: -Infinity };
  }

  /** Evaluates the rules on points as they are stored. `skip`: points validation flagged as bad. */
  observe(points: readonly Point[], nowMs: number, skip?: ReadonlySet<Point>): AlertEvent[] {
    const events: AlertEvent[] = [];
    for (const p of points) {
      const rules = this.byMeasurement.get(p.measurement);
      if (rules === undefined || skip?.has(p)) continue;
      let key: string | undefined;
      for (const rule of rules) {
        if (!matchesTags(p.tags, rule.tagFilter)) continue;
        if (rule.field !== null && !Object.hasOwn(p.fields, rule.field)) continue;
        const dataMs = Math.floor(p.timeUs / 1000);
        if (rule.condition) {
          const value = p.fields[rule.field!];
          const holds = testCondition(rule.condition, value);
          if (holds === undefined || (!holds && rule.states.size === 0)) continue;
          key ??= tagSetKey(p.tags);
          let state = rule.states.get(key);
          if (holds) {
            if (!state) {
              state = this.newState({ ...p.tags }, nowMs);
              rule.states.set(key, state);
            }
            this.holds(rule, state, nowMs, value, dataMs, events);
          } else if (state?.active) {
            this.clears(rule, state, nowMs, value, dataMs, events);
          }
        } else {
          const stateKey = rule.perMeasurement ? rule.measurement : (key ??= tagSetKey(p.tags));
          if (!rule.perMeasurement) {
            const none = rule.states.get(NO_DATA);
            if (none) {
              if (none.active) this.clears(rule, none, nowMs, (nowMs - none.lastSeenMs) / 1000, dataMs, events);
              rule.states.delete(NO_DATA);
            }
          }
          let state = rule.states.get(stateKey);
          if (!state) {
            state = this.newState(rule.perMeasurement ? rule.ruleTags : { ...p.tags }, nowMs);
            rule.states.set(stateKey, state);
          }
          if (state.active) this.clears(rule, state, nowMs, (nowMs - state.lastSeenMs) / 1000, dataMs, events);
          state.lastSeenMs = nowMs;
          state.lastDataMs = dataMs;
        }
      }
    }
    return events;
  }

  /**
   * Silence checks, and forgetting states that carry nothing: the engine calls this on a timer
   * (every silenceTickMs, or a minute without silence rules).
   */
  tick(nowMs: number): AlertEvent[] {
    const events: AlertEvent[] = [];
    for (const rule of this.rules) {
      for (const [key, state] of rule.states) {
        if (rule.silenceMs !== undefined) {
          const silentMs = nowMs - state.lastSeenMs;
          if (silentMs >= rule.silenceMs) this.holds(rule, state, nowMs, silentMs / 1000, state.lastDataMs, events, state.lastSeenMs + rule.silenceMs);
        } else if (!state.active && nowMs - state.lastFiredMs >= rule.cooldownMs) {
          // A cleared condition past its cooldown behaves exactly like one never seen.
          rule.states.delete(key);
        }
      }
    }
    return events;
  }

  private holds(rule: CompiledAlert, state: SeriesState, nowMs: number, value: FieldValue, dataMs: number | null, events: AlertEvent[], sinceMs = nowMs): void {
    const inCooldown = nowMs - state.lastFiredMs < rule.cooldownMs;
    if (!state.active) {
      state.active = true;
      state.sinceMs = sinceMs;
      rule.stats.active++;
      if (inCooldown) rule.stats.suppressed++;
    }
    if (inCooldown) return;
    state.lastFiredMs = nowMs;
    state.announced = true;
    rule.stats.fired++;
    events.push(this.event(rule, state, 'firing', nowMs, value, dataMs));
  }

  private clears(rule: CompiledAlert, state: SeriesState, nowMs: number, value: FieldValue, dataMs: number | null, events: AlertEvent[]): void {
    state.active = false;
    rule.stats.active--;
    if (!state.announced) return;
    state.announced = false;
    if (!rule.resolve) return;
    rule.stats.resolved++;
    events.push(this.event(rule, state, 'resolved', nowMs, value, dataMs));
  }

  private event(rule: CompiledAlert, state: SeriesState, kind: AlertState, nowMs: number, value: FieldValue, dataMs: number | null): AlertEvent {
    // Two events of one series in the same millisecond (a flapping batch) must not overwrite each
    // other in the store, where a series and time hold one row.
    const timeUs = Math.max(nowMs * 1000, state.lastEventUs + 1);
    state.lastEventUs = timeUs;
    const silence = rule.silenceMs !== undefined;
    const shown = silence && typeof value === 'number' ? formatDuration(Math.max(1000, Math.round(value) * 1000)) : valueText(value);
    const series = seriesText(state.tags);
    const where = `${rule.measurement}${series ? ` ${series}` : ''}`;
    let message: string;
    if (rule.message !== undefined) {
      const vars: Record<string, string> = {
        rule: rule.name,
        severity: rule.severity,
        state: kind,
        measurement: rule.measurement,
        field: rule.field ?? '',
        value: silence ? shown : valueText(value),
        condition: rule.conditionText,
        silence: rule.silenceMs !== undefined ? formatDuration(rule.silenceMs) : '',
        series,
      };
      message = fillTemplate(rule.message, vars, state.tags);
    } else if (silence) {
      const what = rule.field === null ? 'no data' : `no ${rule.field}`;
      message = kind === 'firing' ? `${rule.name}: ${what} from ${where} for ${shown}` : `${rule.name} resolved: ${where} sends data again after ${shown}`;
    } else {
      const reading = `${rule.field} is ${valueText(value)}`;
      message = kind === 'firing' ? `${rule.name}: ${reading} (${rule.conditionText}) on ${where}` : `${rule.name} resolved: ${reading} on ${where}`;
    }
    return {
      id: randomUUID(),
      rule: rule.name,
      severity: rule.severity,
      state: kind,
      measurement: rule.measurement,
      field: rule.field,
      tags: { ...state.tags },
      value: silence && typeof value === 'number' ? Math.round(value * 1000) / 1000 : value,
      condition: rule.conditionText,
      message,
      timeMs: nowMs,
      timeUs,
      sinceMs: state.sinceMs,
      dataTimeMs: dataMs,
    };
  }

  stats(): Record<string, AlertRuleStats> {
    const out: Record<string, AlertRuleStats> = {};
    for (const r of this.rules) out[r.name] = { ...r.stats };
    return out;
  }
}

/** The event as a point for the store (and so for the outputs). */
export function alertPoint(e: AlertEvent, measurement: string): Point {
  const fields: Point['fields'] = { state: e.state, message: e.message };
  // Numbers only: one column type per field keeps every output able to store `value`.
  const n = e.value === null ? undefined : typeof e.value === 'boolean' ? (e.value ? 1 : 0) : numericValue(e.value);
  if (n !== undefined) fields.value = n;
  return { measurement, tags: { ...e.tags, rule: e.rule, severity: e.severity }, fields, timeUs: e.timeUs };
}
