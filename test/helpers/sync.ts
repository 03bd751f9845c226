// Shared pieces of the output tests: a logger that keeps its lines, a ring filled with known points,
// and an engine wired to a driver with test-sized timings.
import type { Logger, Output } from '../../src/core/component.js';
import { Unsigned, type Point } from '../../src/core/point.js';
import { BulkWriter } from '../../src/store/bulk.js';
import { SqliteRing, type RingOptions } from '../../src/store/ring.js';
import { OutputSync, type SyncSettings } from '../../src/sync/engine.js';
import { syncSettings } from '../../src/sync/settings.js';
import { RingSource, type SyncSource } from '../../src/sync/source.js';
import { tmpDir } from './tmp.js';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  obj: Record<string, unknown>;
}

export class CaptureLogger implements Logger {
  constructor(
    readonly lines: LogLine[] = [],
    private readonly bindings: Record<string, unknown> = {},
  ) {}
  private add(level: LogLine['level'], obj: object, msg?: string): void {
    this.lines.push({ level, msg: msg ?? '', obj: { ...this.bindings, ...obj } });
    if (process.env.SLUICE_TEST_LOG) console.log(level, msg, JSON.stringify(obj));
  }
  debug(obj: object, msg?: string): void {
    this.add('debug', obj, msg);
  }
  info(obj: object, msg?: string): void {
    this.add('info', obj, msg);
  }
  warn(obj: object, msg?: string): void {
    this.add('warn', obj, msg);
  }
  error(obj: object, msg?: string): void {
    this.add('error', obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new CaptureLogger(this.lines, { ...this.bindings, ...bindings });
  }
  /** Every line as text, for "the secret never appears" checks. */
  text(): string {
    return this.lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.obj, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`).join('\n');
  }
}

export function ringOptions(dataDir = tmpDir(), extra: Partial<RingOptions> = {}): RingOptions {
  return { dataDir, maxBytes: 256 * 1024 * 1024, whenFull: 'drop_oldest', commitIntervalMs: 50, ...extra };
}

/**
 * Points of `series` sensors, `perSeries` readings each at 1 s steps from `startMs`, with every field
 * type (unsigned included) and values that make each point distinguishable.
 */
export function makePoints(series: number, perSeries: number, startMs = 1_700_000_000_000, measurement = 'plant'): Point[] {
  const out: Point[] = [];
  for (let i = 0; i < perSeries; i++) {
    for (let s = 0; s < series; s++) {
      const n = i * series + s;
      out.push({
        measurement,
        tags: { sensor: `s${String(s).padStart(3, '0')}`, area: s % 2 ? 'north' : 'south' },
        fields: {
          temp: Math.round((20 + Math.sin(n) * 10) * 1000) / 1000,
          count: BigInt(n),
          raw: new Unsigned(BigInt(n * 7)),
          on: n % 3 === 0,
          state: n % 5 === 0 ? 'warn' : 'ok',
        },
        timeUs: (startMs + i * 1000) * 1000,
      });
    }
  }
  return out;
}

/** A ring holding `points`, written as an import would (full chunks). */
export function ringWith(points: Point[], options: RingOptions = ringOptions()): SqliteRing {
  const ring = SqliteRing.open(options);
  const writer = new BulkWriter(ring, 4096);
  writer.add(points);
  writer.finish();
  return ring;
}

/** Short timings so faults resolve in test time. */
export function testSettings(overrides: Partial<SyncSettings> = {}): SyncSettings {
  return syncSettings(
    { resolution: 'raw', batch_size: 5000, flush_interval: 200, timeout: 2000 },
    { retry: { minDelayMs: 50, maxDelayMs: 400, maxUnreachedDelayMs: 200 }, pausedRetryMs: 500, stopGraceMs: 1000, ...overrides },
  );
}

export function engine(output: Output, ring: SqliteRing, opts: { id?: string; log?: CaptureLogger; settings?: Partial<SyncSettings>; source?: SyncSource } = {}): OutputSync {
  const id = opts.id ?? 'up';
  return new OutputSync({
    id,
    output,
    source: opts.source ?? new RingSource(ring, id),
    log: opts.log ?? new CaptureLogger(),
    settings: testSettings(opts.settings),
  });
}

export async function until<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Field values as the line protocol writes them, for comparing what a server stored. */
export function expectedFields(p: Point, api: 'v1' | 'v2'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.fields)) {
    if (v instanceof Unsigned) out[k] = api === 'v1' ? `${v.value}i` : `${v.value}u`;
    else if (typeof v === 'bigint') out[k] = `${v}i`;
    else out[k] = String(v);
  }
  return out;
}
