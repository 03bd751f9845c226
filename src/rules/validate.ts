// Validation of field values against ranges (`rules.validate`), applied in the agent's sink before
// points reach the ring, so a dropped value is never stored. Pure: no I/O, no clock.
import type { Point, Tags } from '../core/point.js';
import { numericValue } from './condition.js';
import { validateRuleName, type ValidateAction, type ValidateRuleConfig } from './schema.js';

/** Why a value was invalid. */
export type InvalidReason = 'below_min' | 'above_max' | 'not_a_number';

/** Counters of one validation rule; all cumulative since the agent started. */
export interface ValidateRuleStats {
  measurement: string | null;
  field: string;
  action: ValidateAction;
  /** Values this rule looked at. */
  checked: number;
  /** Values that failed it, and why. */
  invalid: number;
  below_min: number;
  above_max: number;
  /** NaN, ±Infinity, booleans and strings in a field that must be a number in range. */
  not_a_number: number;
  /** Values removed (drop: the invalid value; drop_point: every value of the point). */
  dropped_values: number;
  /** Points removed (drop_point, or drop leaving a point without fields). */
  dropped_points: number;
  /** Points this rule found invalid and tagged with rules.flag_tag (a point two rules flag counts for both). */
  flagged_points: number;
}

interface CompiledRule {
  name: string;
  field: string;
  tags: [string, string][];
  min: number;
  max: number;
  action: ValidateAction;
  stats: ValidateRuleStats;
}

export interface ValidationResult {
  /** The points to store (the same objects, or copies where a value was removed or a tag added). */
  points: Point[];
  /** Points that were flagged: alert rules skip them. */
  flagged: ReadonlySet<Point>;
}

function matchesTags(tags: Tags, filter: readonly [string, string][]): boolean {
  for (const [k, v] of filter) if (tags[k] !== v) return false;
  return true;
}

export function invalidReason(value: Point['fields'][string], min: number, max: number): InvalidReason | undefined {
  const n = numericValue(value);
  if (n === undefined || !Number.isFinite(n)) return 'not_a_number';
  if (n < min) return 'below_min';
  if (n > max) return 'above_max';
  return undefined;
}

export class Validator {
  private readonly byMeasurement = new Map<string, CompiledRule[]>();
  /** Rules without a measurement: they apply to every point. */
  private readonly anyMeasurement: CompiledRule[] = [];
  private readonly rules: CompiledRule[] = [];
  private readonly flagTags: Tags;

  constructor(rules: readonly ValidateRuleConfig[], flagTags: Tags) {
    this.flagTags = flagTags;
    for (const r of rules) {
      const compiled: CompiledRule = {
        name: validateRuleName(r),
        field: r.field,
        tags: Object.entries(r.tags),
        min: r.min ?? -Infinity,
        max: r.max ?? Infinity,
        action: r.action,
        stats: {
          measurement: r.measurement ?? null,
          field: r.field,
          action: r.action,
          checked: 0,
          invalid: 0,
          below_min: 0,
          above_max: 0,
          not_a_number: 0,
          dropped_values: 0,
          dropped_points: 0,
          flagged_points: 0,
        },
      };
      this.rules.push(compiled);
      if (r.measurement === undefined) this.anyMeasurement.push(compiled);
      else {
        const list = this.byMeasurement.get(r.measurement) ?? [];
        list.push(compiled);
        this.byMeasurement.set(r.measurement, list);
      }
    }
    // Rules apply in config order, whichever list they sit in.
    const order = new Map(this.rules.map((r, i) => [r, i]));
    for (const [m, list] of this.byMeasurement) {
      this.byMeasurement.set(m, [...list, ...this.anyMeasurement].sort((a, b) => order.get(a)! - order.get(b)!));
    }
  }

  get size(): number {
    return this.rules.length;
  }

  /**
   * Checks every point. The input array and its points are not modified: a point that loses a value
   * or gains the flag tag is replaced by a copy (inputs may reuse their objects).
   */
  apply(points: readonly Point[]): ValidationResult {
    const out: Point[] = [];
    const flagged = new Set<Point>();
    for (const original of points) {
      const rules = this.byMeasurement.get(original.measurement) ?? this.anyMeasurement;
      if (rules.length === 0) {
        out.push(original);
        continue;
      }
      let p = original;
      let copiedFields = false;
      let isFlagged = false;
      let dropped = false;
      for (const rule of rules) {
        if (!Object.hasOwn(p.fields, rule.field) || !matchesTags(p.tags, rule.tags)) continue;
        rule.stats.checked++;
        const reason = invalidReason(p.fields[rule.field], rule.min, rule.max);
        if (reason === undefined) continue;
        rule.stats.invalid++;
        rule.stats[reason]++;
        if (rule.action === 'drop_point') {
          rule.stats.dropped_values += Object.keys(p.fields).length;
          rule.stats.dropped_points++;
          dropped = true;
          break;
        }
        if (rule.action === 'flag') {
          rule.stats.flagged_points++;
          isFlagged = true;
          continue;
        }
        if (!copiedFields) {
          p = { ...p, fields: { ...p.fields } };
          copiedFields = true;
        }
        delete p.fields[rule.field];
        rule.stats.dropped_values++;
        if (Object.keys(p.fields).length === 0) {
          rule.stats.dropped_points++;
          dropped = true;
          break;
        }
      }
      if (dropped) continue;
      if (isFlagged) {
        p = { ...p, tags: { ...p.tags, ...this.flagTags } };
        flagged.add(p);
      }
      out.push(p);
    }
    return { points: out, flagged };
  }

  stats(): Record<string, ValidateRuleStats> {
    const out: Record<string, ValidateRuleStats> = {};
    for (const r of this.rules) out[r.name] = { ...r.stats };
    return out;
  }
}
