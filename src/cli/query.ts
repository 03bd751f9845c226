import { AGGREGATE_FUNCTIONS, type AggregateFunction } from '../core/aggregate.js';
import { parseSeriesKey } from '../core/line-protocol.js';
import { Unsigned, type FieldValue, type Tags } from '../core/point.js';
import { usToMs } from '../core/time.js';
import { parseDuration } from '../config/index.js';
import { queryAggregate, queryRaw, type QueryOptions } from '../query/query.js';
import { SqliteRing } from '../store/ring.js';
import { UsageError, parseTimeUs } from './args.js';
import type { StoreSettings } from './settings.js';
import { BufferedWriter } from './stdout.js';

interface QueryFlags {
  measurement?: string;
  field?: string;
  from?: string;
  to?: string;
  every?: string;
  fn?: string;
  json?: boolean;
}

function jsonValue(v: FieldValue | null): string | number | boolean | null {
  if (v === null) return null;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (v instanceof Unsigned) return Number.isSafeInteger(Number(v.value)) ? Number(v.value) : v.value.toString();
  // JSON has no NaN or Infinity: they are written as strings rather than silently becoming null.
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v;
}

function csvCell(v: string | number | boolean | null | undefined | Tags): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** `sluice query`: raw rows or windows, CSV (a column per tag key) or --json (the rows the README's Command line section describes). */
export async function runQuery(settings: StoreSettings, flags: QueryFlags): Promise<number> {
  if (!flags.measurement) throw new UsageError('query needs --measurement M');
  const functions = flags.fn === undefined ? undefined : flags.fn.split(',').map((f) => f.trim());
  for (const f of functions ?? []) {
    if (!(AGGREGATE_FUNCTIONS as readonly string[]).includes(f)) throw new UsageError(`--fn: unknown function "${f}" (known: ${AGGREGATE_FUNCTIONS.join(', ')})`);
  }
  let everyUs: number | undefined;
  if (flags.every !== undefined) {
    const ms = parseDuration(flags.every);
    if (ms === null || ms <= 0) throw new UsageError(`--every: "${flags.every}" is not a duration such as 30s, 5m, 1h`);
    everyUs = ms * 1000;
  }
  const opts: QueryOptions = {
    measurement: flags.measurement,
    field: flags.field,
    fromUs: flags.from === undefined ? undefined : parseTimeUs(flags.from, '--from'),
    toUs: flags.to === undefined ? undefined : parseTimeUs(flags.to, '--to'),
    everyUs,
    functions: (functions ?? (everyUs ? ['mean'] : undefined)) as AggregateFunction[] | undefined,
  };
  const ring = SqliteRing.open({ ...settings.ring, readonly: true });
  const out = new BufferedWriter();
  try {
    const tagKeys = new Set<string>();
    for (const s of ring.listSeries(opts.measurement)) for (const k of Object.keys(parseSeriesKey(s.key).tags)) tagKeys.add(k);
    const tagCols = [...tagKeys].sort();
    const tagCells = (tags: Tags) => tagCols.map((k) => csvCell(tags[k]));
    const aggregated = opts.functions !== undefined;
    if (flags.json) await out.write('[');
    else await out.write(['time_ms', ...tagCols, 'field', ...(aggregated ? opts.functions! : ['value'])].map(csvCell).join(',') + '\n');
    let first = true;
    const sep = () => {
      const s = first ? '\n' : ',\n';
      first = false;
      return s;
    };
    if (aggregated) {
      for (const row of queryAggregate(ring, { ...opts, functions: opts.functions! })) {
        if (flags.json) {
          const obj: Record<string, unknown> = { time_ms: usToMs(row.timeUs), tags: row.tags, field: row.field };
          for (const fn of opts.functions!) obj[fn] = jsonValue(row.values[fn] ?? null);
          await out.write(sep() + JSON.stringify(obj));
        } else {
          const cells = opts.functions!.map((fn) => csvCell(jsonValue(row.values[fn] ?? null)));
          await out.write([usToMs(row.timeUs), ...tagCells(row.tags), csvCell(row.field), ...cells].join(',') + '\n');
        }
      }
    } else {
      for (const row of queryRaw(ring, opts)) {
        if (flags.json) {
          await out.write(sep() + JSON.stringify({ time_ms: usToMs(row.timeUs), tags: row.tags, field: row.field, value: jsonValue(row.value) }));
        } else {
          await out.write([usToMs(row.timeUs), ...tagCells(row.tags), csvCell(row.field), csvCell(jsonValue(row.value))].join(',') + '\n');
        }
      }
    }
    if (flags.json) await out.write(first ? ']\n' : '\n]\n');
    await out.flush();
    return 0;
  } finally {
    ring.close();
  }
}
