// Alert conditions as written in `rules.alerts[].when`: "> 35", "<= -5", "== true", "!= \"ok\"",
// "between 10 and 20", "outside 10 20", optionally led by the field ("temperature > 35"). Parsed once
// when the config is checked (errors name the character where reading stopped) and again when the
// engine is built. Pure: no I/O.
import { Unsigned, type FieldValue } from '../core/point.js';

export const COMPARISONS = ['>', '<', '>=', '<=', '==', '!='] as const;
export type Comparison = (typeof COMPARISONS)[number];

export type Condition =
  | { kind: 'compare'; op: Comparison; operand: number | boolean | string }
  | { kind: 'range'; inside: boolean; low: number; high: number };

export interface ParsedCondition {
  /** The field named before the operator, if any ("temperature > 35"). */
  field?: string;
  condition: Condition;
}

export type ConditionParse = { ok: true; value: ParsedCondition } | { ok: false; message: string };

export const CONDITION_HINT = 'a condition such as "> 35", "<= -5", "== true", "!= \\"ok\\"", "between 10 and 20" or "outside 10 20"';

const NUMBER_RE = /[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?/y;
const FIELD_RE = /[A-Za-z_][A-Za-z0-9_.-]*/y;

/** A small cursor over the text: every failure says what was expected and at which character (1-based). */
class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }

  atEnd(): boolean {
    this.skipSpace();
    return this.pos >= this.text.length;
  }

  match(re: RegExp): string | undefined {
    this.skipSpace();
    re.lastIndex = this.pos;
    const m = re.exec(this.text);
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  word(w: string): boolean {
    this.skipSpace();
    const end = this.pos + w.length;
    if (this.text.slice(this.pos, end).toLowerCase() !== w) return false;
    if (end < this.text.length && /[A-Za-z0-9_]/.test(this.text[end])) return false;
    this.pos = end;
    return true;
  }

  fail(expected: string): { ok: false; message: string } {
    this.skipSpace();
    const found = this.pos >= this.text.length ? 'the end' : `"${this.text.slice(this.pos, this.pos + 12)}"`;
    return {
      ok: false,
      message: `cannot read condition ${JSON.stringify(this.text)}: expected ${expected} at character ${this.pos + 1}, found ${found}; write ${CONDITION_HINT}`,
    };
  }
}

function readNumber(r: Reader): number | undefined {
  const text = r.match(NUMBER_RE);
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

function readString(r: Reader): string | undefined {
  r.skipSpace();
  const quote = r.text[r.pos];
  if (quote !== '"' && quote !== "'") return undefined;
  const end = r.text.indexOf(quote, r.pos + 1);
  if (end < 0) return undefined;
  const s = r.text.slice(r.pos + 1, end);
  r.pos = end + 1;
  return s;
}

export function parseCondition(text: string): ConditionParse {
  const r = new Reader(text);
  let field: string | undefined;
  // A leading name is the field, unless it is one of the range words.
  const save = r.pos;
  const name = r.match(FIELD_RE);
  if (name !== undefined && !['between', 'outside', 'true', 'false'].includes(name.toLowerCase())) field = name;
  else r.pos = save;

  let condition: Condition;
  const rangeWord = r.word('between') ? 'between' : r.word('outside') ? 'outside' : undefined;
  if (rangeWord !== undefined) {
    const inside = rangeWord === 'between';
    const low = readNumber(r);
    if (low === undefined) return r.fail('a number (the low end of the range)');
    r.word('and');
    const high = readNumber(r);
    if (high === undefined) return r.fail('a number (the high end of the range)');
    if (high < low) return { ok: false, message: `cannot read condition ${JSON.stringify(text)}: the range ${low}..${high} is empty; write the low end first` };
    condition = { kind: 'range', inside, low, high };
  } else {
    const op = r.match(/>=|<=|==|!=|>|<|=/y);
    if (op === undefined) return r.fail(field === undefined ? 'an operator (>, <, >=, <=, ==, !=) or between/outside' : 'an operator (>, <, >=, <=, ==, !=) or between/outside after the field');
    if (op === '=') return { ok: false, message: `cannot read condition ${JSON.stringify(text)}: "=" at character ${r.pos} is not an operator; write "==" to compare for equality` };
    const operator = op as Comparison;
    const equality = operator === '==' || operator === '!=';
    let operand: number | boolean | string | undefined = readNumber(r);
    if (operand === undefined && equality) {
      if (r.word('true')) operand = true;
      else if (r.word('false')) operand = false;
      else operand = readString(r);
    }
    if (operand === undefined) return r.fail(equality ? 'a number, true, false or a quoted string' : 'a number');
    condition = { kind: 'compare', op: operator, operand };
  }
  if (!r.atEnd()) return r.fail('the end of the condition');
  return { ok: true, value: field === undefined ? { condition } : { field, condition } };
}

/** The value as a number for comparisons, or undefined when it is not numeric (booleans and strings). */
export function numericValue(value: FieldValue): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Unsigned) return Number(value.value);
  return undefined;
}

/**
 * True or false when the condition applies to the value, undefined when it cannot say: a value of
 * another kind than the operand (a string against "> 35") tells nothing, so it leaves an alert as it is.
 * NaN is never greater, smaller or equal to anything, so it never fires a numeric condition.
 */
export function testCondition(c: Condition, value: FieldValue): boolean | undefined {
  if (c.kind === 'range') {
    const n = numericValue(value);
    if (n === undefined) return undefined;
    if (Number.isNaN(n)) return false;
    const within = n >= c.low && n <= c.high;
    return c.inside ? within : !within;
  }
  const { op, operand } = c;
  let left: number | boolean | string;
  if (typeof operand === 'number') {
    const n = numericValue(value);
    if (n === undefined) return undefined;
    left = n;
  } else if (typeof operand === 'boolean') {
    if (typeof value !== 'boolean') return undefined;
    left = value;
  } else {
    if (typeof value !== 'string') return undefined;
    left = value;
  }
  switch (op) {
    case '==':
      return left === operand;
    case '!=':
      // NaN != 35 is true in JS but says nothing about the process; a NaN reading never fires.
      return typeof left === 'number' && Number.isNaN(left) ? false : left !== operand;
    case '>':
      return left > operand;
    case '<':
      return left < operand;
    case '>=':
      return left >= operand;
    case '<=':
      return left <= operand;
  }
}

/** The condition written back canonically, for messages and payloads. */
export function formatCondition(c: Condition): string {
  if (c.kind === 'range') return `${c.inside ? 'between' : 'outside'} ${c.low} and ${c.high}`;
  return `${c.op} ${typeof c.operand === 'string' ? JSON.stringify(c.operand) : String(c.operand)}`;
}
