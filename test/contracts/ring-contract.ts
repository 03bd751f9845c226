// The ring's promises, stated once, in the MQTT.js style: `ringContract(name, open)` returns named
// checks (plain async functions that throw a ContractViolation naming the rule) that any ring
// implementation must pass. test/contracts/ring.test.ts runs them on SqliteRing; suite.test.ts runs
// them on rings broken on purpose, to show that each check catches what it claims to.
//
// The checks use only what the agent, the sync engine and the query layer use of a ring (RingUnderTest
// below), so a ring reorganised inside (eviction, group commit) is held to the same promises.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RowGroup } from '../../src/core/chunk.js';
import { seriesKey } from '../../src/core/line-protocol.js';
import { Unsigned, type FieldValue, type Point } from '../../src/core/point.js';
import { groupRows } from '../../src/query/rows.js';
import { groupToStates } from '../../src/store/rollup.js';
import { readFunction } from '../../src/core/aggregate.js';
import type { Lease, OutputStatus, StoreStatus, WhenFull } from '../../src/store/ring.js';
import { assert, checked, type ContractCheck } from './violation.js';
import { rng } from '../helpers/random.js';

/** What the checks use of a ring. */
export interface RingUnderTest {
  write(points: readonly Point[]): Promise<void>;
  commit(): void;
  close(): void;
  listSeries(measurement?: string): { id: number; key: string }[];
  seriesGroups(seriesId: number, tier: number): Iterable<RowGroup>;
  status(): StoreStatus;
  storeBytes(): number;
  registerOutput(output: string, tier?: number): void;
  lease(output: string, opts: { maxPoints: number; order: 'oldest' | 'newest' }): Lease | null;
  settle(lease: Lease, result?: { rejectedPoints?: number }): void;
  release(lease: Lease): void;
  outputStatus(output: string): OutputStatus;
  rollUp(opts: { nowUs: number }): number;
}

export interface RingSettings {
  maxBytes: number;
  whenFull: WhenFull;
  /** Rollup windows, shortest first; [] for none. */
  rollupWindowsMs: readonly number[];
}

/** Opens the ring stored in `dataDir` (creating it when empty): called again on the same dir to reopen. */
export type OpenRing = (dataDir: string, settings: RingSettings) => RingUnderTest;

const MiB = 1024 * 1024;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const T0_MS = Date.UTC(2024, 2, 1);
/** Incompressible points offered to a 1 MiB store: about twice what it holds. */
const FILL_POINTS = 60_000;
const FILL_BATCH = 5000;
const ROOMY: RingSettings = { maxBytes: 64 * MiB, whenFull: 'drop_oldest', rollupWindowsMs: [] };

/** Every field type, with the edges a codec gets wrong: int64 and uint64 limits, -0, unicode, empty strings. */
function everyType(count: number, series: number): Point[] {
  const r = rng(7);
  const edgesInt = [-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n];
  const edgesUint = [0n, 2n ** 64n - 1n, 2n ** 53n + 1n];
  const texts = ['ok', '', 'é✓ "quoted", comma', 'a\nb'];
  const out: Point[] = [];
  for (let i = 0; i < count; i++) {
    const s = i % series;
    const fields: Record<string, FieldValue> = {
      temp: i % 97 === 0 ? -0 : Math.round((r() - 0.5) * 1e9) / 1e3,
      count: i < edgesInt.length ? edgesInt[i] : BigInt(i) * 1_000_003n,
      raw: new Unsigned(i < edgesUint.length ? edgesUint[i] : BigInt(Math.floor(r() * 2 ** 32))),
      on: r() < 0.5,
      state: texts[i % texts.length],
    };
    // Sparse fields: not every point has every field.
    if (i % 3 === 0) delete fields.state;
    out.push({ measurement: 'plant', tags: { sensor: `s${s}`, area: s % 2 ? 'north' : 'south' }, fields, timeUs: (T0_MS + Math.floor(i / series) * 1000) * 1000 + s });
  }
  return out;
}

/** Points whose values do not compress (random floats): fills a small cap quickly. */
function noisy(count: number, startMs: number, seed: number): Point[] {
  const r = rng(seed);
  const out: Point[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ measurement: 'load', tags: { sensor: `n${i % 4}` }, fields: { a: r(), b: r() * 1e6, c: r() - 0.5 }, timeUs: (startMs + Math.floor(i / 4) * 1000) * 1000 });
  }
  return out;
}

function valueText(v: FieldValue): string {
  if (v instanceof Unsigned) return `u:${v.value}`;
  if (typeof v === 'number' && Object.is(v, -0)) return 'number:-0';
  return `${typeof v}:${JSON.stringify(typeof v === 'bigint' ? v.toString() : v)}`;
}

/** Points as sorted canonical lines (series, time, field, typed value), for exact comparison. */
function canonical(points: readonly Point[]): string[] {
  const out: string[] = [];
  for (const p of points) {
    const key = seriesKey(p.measurement, p.tags);
    for (const [f, v] of Object.entries(p.fields)) out.push(`${key} ${p.timeUs} ${f}=${valueText(v)}`);
  }
  return out.sort();
}

/** The raw tier of a ring as canonical lines. */
function stored(ring: RingUnderTest, measurement?: string): string[] {
  const out: string[] = [];
  for (const s of ring.listSeries(measurement)) {
    for (const g of ring.seriesGroups(s.id, 0)) for (const row of groupRows(g)) for (const [f, v] of row.fields) out.push(`${s.key} ${row.timeUs} ${f}=${valueText(v)}`);
  }
  return out.sort();
}

function sum(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

function sameLines(got: string[], want: string[], what: string): void {
  if (got.length === want.length && got.every((l, i) => l === want[i])) return;
  const missing = want.filter((l) => !got.includes(l)).slice(0, 3);
  const extra = got.filter((l) => !want.includes(l)).slice(0, 3);
  throw new Error(`${what}: ${got.length} values read back, ${want.length} written; missing e.g. ${JSON.stringify(missing)}, unexpected e.g. ${JSON.stringify(extra)}`);
}

/** A fresh data directory for one check, removed afterwards whatever happens. */
async function inDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ring-contract-'));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes batches until `total` points were offered; returns what was accepted and refused. */
async function fill(ring: RingUnderTest, total: number, perWrite: number, maxBytes: number, startMs = T0_MS): Promise<{ accepted: Point[]; refused: Point[]; offered: Point[] }> {
  const accepted: Point[] = [];
  const refused: Point[] = [];
  const offered: Point[] = [];
  for (let i = 0; i < total; i += perWrite) {
    const batch = noisy(perWrite, startMs + (i / 4) * 1000, i + 1);
    offered.push(...batch);
    try {
      await ring.write(batch);
      accepted.push(...batch);
    } catch {
      refused.push(...batch);
    }
    assert(ring.storeBytes() <= maxBytes, `store is ${ring.storeBytes()} bytes after a commit, above max_size ${maxBytes}`);
  }
  return { accepted, refused, offered };
}

/** Window aggregates computed by plain arithmetic over the raw points (not the store's own code). */
function expectedWindows(points: readonly Point[], windowMs: number): Map<string, Record<string, FieldValue | null>> {
  const groups = new Map<string, { timeUs: number; value: FieldValue }[]>();
  for (const p of points) {
    const start = Math.floor(p.timeUs / 1000 / windowMs) * windowMs;
    for (const [f, v] of Object.entries(p.fields)) {
      const key = `${seriesKey(p.measurement, p.tags)} ${f} ${start}`;
      const list = groups.get(key) ?? [];
      list.push({ timeUs: p.timeUs, value: v });
      groups.set(key, list);
    }
  }
  const out = new Map<string, Record<string, FieldValue | null>>();
  for (const [key, list] of groups) {
    list.sort((a, b) => a.timeUs - b.timeUs);
    const nums = list.map((x) => (typeof x.value === 'bigint' ? Number(x.value) : typeof x.value === 'boolean' ? Number(x.value) : x.value)).filter((x): x is number => typeof x === 'number');
    const total = nums.reduce((a, b) => a + b, 0);
    out.set(key, {
      count: list.length,
      first: list[0].value,
      last: list[list.length - 1].value,
      sum: nums.length ? total : null,
      mean: nums.length ? total / nums.length : null,
      min: nums.length ? Math.min(...nums) : null,
      max: nums.length ? Math.max(...nums) : null,
    });
  }
  return out;
}

function close(a: FieldValue | null, b: FieldValue | null): boolean {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  return valueText(a ?? 'null') === valueText(b ?? 'null');
}

export function ringContract(name: string, open: OpenRing): ContractCheck[] {
  const check = (rule: string, run: () => Promise<void>): ContractCheck => checked(name, rule, run);
  return [
    check('durable: what a resolved write committed is read back exactly after close and reopen', () =>
      inDir(async (dir) => {
        const points = everyType(1200, 5);
        let ring = open(dir, ROOMY);
        try {
          for (let i = 0; i < points.length; i += 150) await ring.write(points.slice(i, i + 150));
        } finally {
          ring.close();
        }
        ring = open(dir, ROOMY);
        try {
          sameLines(stored(ring), canonical(points), 'after reopen');
          assert(ring.status().points === points.length, `status says ${ring.status().points} points after reopen, ${points.length} were committed`);
        } finally {
          ring.close();
        }
      }),
    ),

    check('capped: the store never exceeds max_size, and its status adds up', () =>
      inDir(async (dir) => {
        const maxBytes = 1 * MiB;
        const ring = open(dir, { ...ROOMY, maxBytes });
        try {
          const { offered } = await fill(ring, FILL_POINTS, FILL_BATCH, maxBytes);
          const st = ring.status();
          assert(st.capacity_bytes === maxBytes, `status capacity_bytes ${st.capacity_bytes}, max_size is ${maxBytes}`);
          assert(st.store_bytes <= maxBytes, `status store_bytes ${st.store_bytes} above max_size ${maxBytes}`);
          assert(st.used_bytes <= st.store_bytes, `used_bytes ${st.used_bytes} above store_bytes ${st.store_bytes}`);
          assert(sum(st.dropped) > 0, `incompressible points fit in 1 MiB without dropping anything? dropped=${JSON.stringify(st.dropped)}`);
          assert(st.points + sum(st.dropped) === offered.length, `${st.points} points stored + ${sum(st.dropped)} dropped ≠ ${offered.length} written`);
          assert(st.values + sum(st.dropped_values) === offered.length * 3, `${st.values} values stored + ${sum(st.dropped_values)} dropped ≠ ${offered.length * 3} written`);
        } finally {
          ring.close();
        }
      }),
    ),

    check('when_full drop_oldest: the oldest points go first, each counted as dropped_oldest', () =>
      inDir(async (dir) => {
        const maxBytes = 1 * MiB;
        const ring = open(dir, { ...ROOMY, maxBytes, whenFull: 'drop_oldest' });
        try {
          const { offered, refused } = await fill(ring, FILL_POINTS, FILL_BATCH, maxBytes);
          assert(refused.length === 0, `drop_oldest refused ${refused.length} new points`);
          const st = ring.status();
          assert((st.dropped.dropped_oldest ?? 0) > 0, `nothing counted as dropped_oldest: ${JSON.stringify(st.dropped)}`);
          assert(sum(st.dropped) === st.dropped.dropped_oldest, `drops under other reasons: ${JSON.stringify(st.dropped)}`);
          assert(st.points + st.dropped.dropped_oldest === offered.length, `${st.points} stored + ${st.dropped.dropped_oldest} dropped_oldest ≠ ${offered.length} written`);
          // What is kept is unaltered, and newer than (or as new as) everything that went.
          const kept = stored(ring);
          const offeredLines = canonical(offered);
          const all = new Set(offeredLines);
          assert(kept.every((l) => all.has(l)), 'the store holds values that were never written');
          const keptSet = new Set(kept);
          const timeOf = (l: string) => Number(l.split(' ')[1]);
          let oldestKept = Infinity;
          for (const l of kept) oldestKept = Math.min(oldestKept, timeOf(l));
          let newestGone = -Infinity;
          for (const l of offeredLines) if (!keptSet.has(l)) newestGone = Math.max(newestGone, timeOf(l));
          assert(newestGone <= oldestKept, `a point of ${newestGone} µs was dropped while one of ${oldestKept} µs (older) was kept`);
        } finally {
          ring.close();
        }
      }),
    ),

    check('when_full drop_newest: new points are refused when full and counted as dropped_newest; the old ones stay', () =>
      inDir(async (dir) => {
        const maxBytes = 1 * MiB;
        const ring = open(dir, { ...ROOMY, maxBytes, whenFull: 'drop_newest' });
        try {
          const { accepted, refused } = await fill(ring, FILL_POINTS, FILL_BATCH, maxBytes);
          assert(refused.length > 0, 'a full store under drop_newest accepted every write');
          const st = ring.status();
          assert((st.dropped.dropped_newest ?? 0) === refused.length, `dropped_newest is ${st.dropped.dropped_newest ?? 0}, ${refused.length} points were refused`);
          assert(sum(st.dropped) === refused.length, `drops under other reasons: ${JSON.stringify(st.dropped)}`);
          sameLines(stored(ring), canonical(accepted), 'the accepted points');
        } finally {
          ring.close();
        }
      }),
    ),

    check('when_full rollup: the oldest raw points are replaced by rollups before anything is dropped', () =>
      inDir(async (dir) => {
        const maxBytes = 1 * MiB;
        const ring = open(dir, { maxBytes, whenFull: 'rollup', rollupWindowsMs: [MINUTE_MS, HOUR_MS] });
        try {
          const { offered, refused } = await fill(ring, FILL_POINTS, FILL_BATCH, maxBytes);
          assert(refused.length === 0, `rollup refused ${refused.length} new points`);
          const st = ring.status();
          const rolled = st.dropped.rolled_up ?? 0;
          assert(rolled > 0, `nothing counted as rolled_up: ${JSON.stringify(st.dropped)}`);
          assert(sum(st.dropped) === rolled, `points dropped before the rollups were used up: ${JSON.stringify(st.dropped)}`);
          assert(st.points + rolled === offered.length, `${st.points} stored + ${rolled} rolled up ≠ ${offered.length} written`);
          // Every point that left raw is in a 1m window, exactly counted.
          const keptTimes = new Set<number>();
          for (const s of ring.listSeries('load')) for (const g of ring.seriesGroups(s.id, 0)) for (const t of g.timesUs) keptTimes.add(t);
          const gone = offered.filter((p) => !keptTimes.has(p.timeUs));
          const want = expectedWindows(gone, MINUTE_MS);
          const counted = new Map<string, number>();
          for (const s of ring.listSeries('load')) {
            for (const g of ring.seriesGroups(s.id, MINUTE_MS)) {
              for (const [start, fields] of groupToStates(g)) for (const [f, state] of fields) counted.set(`${s.key} ${f} ${start / 1000}`, state.count);
            }
          }
          for (const [key, w] of want) {
            const got = counted.get(key);
            // The window at the raw boundary also holds points still kept raw: at least, not exactly.
            assert(got !== undefined && got >= (w.count as number), `window ${key}: ${got ?? 'no'} rolled-up values, ${String(w.count)} raw ones left the store`);
          }
        } finally {
          ring.close();
        }
      }),
    ),

    check('cursors: a settled lease is never delivered again, also after reopen', () =>
      inDir(async (dir) => {
        const points = everyType(400, 4);
        let ring = open(dir, ROOMY);
        let settledTimes: string[];
        try {
          ring.registerOutput('up');
          for (let i = 0; i < points.length; i += 40) await ring.write(points.slice(i, i + 40));
          const lease = ring.lease('up', { maxPoints: 150, order: 'oldest' });
          assert(lease !== null, 'nothing to lease from a store holding 400 unsent points');
          ring.settle(lease);
          settledTimes = lease.chunks.flatMap((c) => [...c.group.timesUs].map((t) => `${c.seriesKey} ${t}`));
          assert(ring.outputStatus('up').backlog_points === points.length - lease.points, `backlog ${ring.outputStatus('up').backlog_points} after settling ${lease.points} of ${points.length}`);
        } finally {
          ring.close();
        }
        ring = open(dir, ROOMY);
        try {
          ring.registerOutput('up');
          const delivered: string[] = [];
          for (let l = ring.lease('up', { maxPoints: 100, order: 'oldest' }); l; l = ring.lease('up', { maxPoints: 100, order: 'oldest' })) {
            for (const c of l.chunks) for (const t of c.group.timesUs) delivered.push(`${c.seriesKey} ${t}`);
            ring.settle(l);
          }
          const again = delivered.filter((d) => settledTimes.includes(d));
          assert(again.length === 0, `${again.length} settled points offered again after reopen, e.g. ${again[0]}`);
          assert(delivered.length + settledTimes.length === points.length, `${delivered.length} delivered after reopen + ${settledTimes.length} before ≠ ${points.length}`);
          assert(ring.outputStatus('up').backlog_points === 0, `backlog ${ring.outputStatus('up').backlog_points} after everything was settled`);
        } finally {
          ring.close();
        }
      }),
    ),

    check('cursors: a leased chunk is not offered twice, and a released lease is delivered again', () =>
      inDir(async (dir) => {
        const ring = open(dir, ROOMY);
        try {
          ring.registerOutput('up');
          const points = everyType(200, 2);
          for (let i = 0; i < points.length; i += 20) await ring.write(points.slice(i, i + 20));
          const first = ring.lease('up', { maxPoints: 60, order: 'oldest' });
          assert(first !== null, 'nothing to lease');
          const ids = new Set(first.chunks.map((c) => c.chunkId));
          const second = ring.lease('up', { maxPoints: 1000, order: 'oldest' });
          assert(!second || second.chunks.every((c) => !ids.has(c.chunkId)), 'a chunk still leased was offered again');
          if (second) ring.release(second);
          ring.release(first);
          const again = ring.lease('up', { maxPoints: 10_000, order: 'oldest' });
          assert(again !== null && again.points === points.length, `after releasing, ${again?.points ?? 0} of ${points.length} points are offered`);
          assert(ring.outputStatus('up').backlog_points === points.length, `released points left the backlog: ${ring.outputStatus('up').backlog_points}`);
        } finally {
          ring.close();
        }
      }),
    ),

    check('rollups: 1m and 1h windows equal mean/min/max/count/first/last/sum of the raw points', () =>
      inDir(async (dir) => {
        const ring = open(dir, { ...ROOMY, rollupWindowsMs: [MINUTE_MS, HOUR_MS] });
        try {
          const r = rng(11);
          const points: Point[] = [];
          // 2.5 hours, irregular steps, with integers, booleans and strings beside floats.
          for (let ms = 0; ms < 150 * MINUTE_MS; ms += 2000 + Math.floor(r() * 20_000)) {
            const fields: Record<string, FieldValue> = { temp: Math.round(r() * 1e5) / 100, level: BigInt(Math.floor(r() * 1000) - 500) };
            if (r() < 0.5) fields.open = r() < 0.5;
            if (r() < 0.3) fields.state = r() < 0.5 ? 'run' : 'idle';
            points.push({ measurement: 'tank', tags: { sensor: r() < 0.5 ? 'a' : 'b' }, fields, timeUs: (T0_MS + ms) * 1000 });
          }
          // Out of order, several commits: late points land in windows already written.
          const shuffled = [...points].sort(() => r() - 0.5);
          for (let i = 0; i < shuffled.length; i += 60) {
            await ring.write(shuffled.slice(i, i + 60));
            if (i % 180 === 0) ring.rollUp({ nowUs: (T0_MS + 200 * MINUTE_MS) * 1000 });
          }
          ring.rollUp({ nowUs: (T0_MS + 10 * HOUR_MS) * 1000 });
          for (const windowMs of [MINUTE_MS, HOUR_MS]) {
            const want = expectedWindows(points, windowMs);
            const seen = new Set<string>();
            for (const s of ring.listSeries('tank')) {
              for (const g of ring.seriesGroups(s.id, windowMs)) {
                for (const [start, fields] of groupToStates(g)) {
                  for (const [f, state] of fields) {
                    const key = `${s.key} ${f} ${start / 1000}`;
                    const w = want.get(key);
                    assert(w !== undefined, `${windowMs / 1000}s window ${key} has no raw points`);
                    assert(!seen.has(key), `${windowMs / 1000}s window ${key} stored twice`);
                    seen.add(key);
                    for (const fn of ['count', 'first', 'last', 'sum', 'mean', 'min', 'max'] as const) {
                      const got = readFunction(state, fn);
                      assert(close(got, w[fn]), `${windowMs / 1000}s window ${key}: ${fn} is ${String(got)}, the raw points give ${String(w[fn])}`);
                    }
                  }
                }
              }
            }
            assert(seen.size === want.size, `${seen.size} of ${want.size} ${windowMs / 1000}s windows were rolled up`);
          }
        } finally {
          ring.close();
        }
      }),
    ),
  ];
}
