// The sync engine: its small pure parts (backoff, Retry-After, AIMD, pacing, cutting batches, reading
// InfluxDB error bodies) case by case, then its behaviour end to end against the fake v2 server:
// live data within the flush interval, max_rate, stop/restart resending at most what was in flight.
import { describe, expect, it } from 'vitest';
import { OutputError, type OutputBatch } from '../src/core/component.js';
import { Unsigned, type Point } from '../src/core/point.js';
import { Aimd } from '../src/sync/aimd.js';
import { halve, makeBatch, without } from '../src/sync/batch.js';
import { RateLimiter } from '../src/sync/rate.js';
import { ExponentialRetry } from '../src/sync/retry.js';
import { RingSource } from '../src/sync/source.js';
import { SqliteRing } from '../src/store/ring.js';
import { allLines, batchLines } from '../drivers/influxdb/lines.js';
import { InfluxdbOutput } from '../drivers/influxdb/influxdb.js';
import { namedLines } from '../drivers/influxdb/responses.js';
import { parseRetryAfter } from '../src/core/retry-after.js';
import { FakeInfluxV2 } from './helpers/fake-influx-v2.js';
import { CaptureLogger, engine, makePoints, ringOptions, ringWith, until } from './helpers/sync.js';
import { tmpDir } from './helpers/tmp.js';
import { groupRows } from '../src/query/rows.js';
import { serializeLine } from '../src/core/line-protocol.js';

describe('ExponentialRetry', () => {
  const retry = (random: number) => new ExponentialRetry({ minDelayMs: 100, maxDelayMs: 10_000, maxUnreachedDelayMs: 1000, factor: 2, jitter: 0.2, random: () => random });
  const err = (details = {}) => new OutputError('x', 'retry', details);

  it('grows exponentially, jittered within ±20 %, up to the cap', () => {
    expect([1, 2, 3, 4].map((n) => retry(0.5).nextDelay(err(), n))).toEqual([100, 200, 400, 800]);
    expect(retry(0).nextDelay(err(), 3)).toBe(320);
    expect(retry(1).nextDelay(err(), 3)).toBe(480);
    expect(retry(0.5).nextDelay(err(), 30)).toBe(10_000);
    expect(retry(1).nextDelay(err(), 30)).toBeLessThanOrEqual(12_000);
  });

  it('caps short when nothing reached the upstream (probing is free)', () => {
    expect(retry(0.5).nextDelay(err({ unreached: true }), 30)).toBe(1000);
  });

  it('never waits less than Retry-After', () => {
    for (const r of [0, 0.5, 0.999]) {
      const d = retry(r).nextDelay(new OutputError('x', 'throttle', { retryAfterMs: 2000 }), 1);
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(2200);
    }
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  it.each([
    ['2', 2000],
    ['0', 0],
    ['1.5', 1500],
    ['Wed, 01 May 2024 12:00:07 GMT', 7000],
    ['Wed, 01 May 2024 11:59:00 GMT', 0],
    ['soon', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('%s → %s ms', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });
});

describe('Aimd', () => {
  const make = () => new Aimd({ maxConcurrency: 4, maxBatchPoints: 1000, minBatchPoints: 100, timeoutMs: 10_000, latencyTolerance: 2 });

  it('adds one request per window of successes while latency holds, halves on throttling', () => {
    const a = make();
    for (let i = 0; i < 20; i++) a.onSuccess(100, 1000);
    expect(a.concurrency).toBe(4);
    a.onThrottle();
    expect(a.concurrency).toBe(2);
    a.onThrottle();
    a.onThrottle();
    expect(a.concurrency).toBe(1);
  });

  it('backs off when latency climbs well above its baseline', () => {
    const a = make();
    for (let i = 0; i < 20; i++) a.onSuccess(100, 1000);
    for (let i = 0; i < 4; i++) a.onSuccess(900, 1000);
    expect(a.concurrency).toBeLessThan(4);
  });

  it('413 sets a ceiling on the batch; timeouts halve it and it grows back to the ceiling', () => {
    const a = make();
    a.onTooLarge(600);
    expect(a.batchPoints).toBe(300);
    a.onTimeout();
    expect(a.batchPoints).toBe(150);
    for (let i = 0; i < 20; i++) a.onSuccess(100, 150);
    expect(a.batchPoints).toBe(300);
  });
});

describe('RateLimiter', () => {
  it('holds the average: a batch may overdraw, the next waits', () => {
    const r = new RateLimiter(1000, 1000, 0);
    expect(r.waitMs(0)).toBe(0);
    r.take(3000, 0);
    expect(r.waitMs(0)).toBeGreaterThanOrEqual(2000);
    expect(r.waitMs(2001)).toBe(0);
  });
});

describe('batches', () => {
  const ring = () => ringWith(makePoints(3, 10));
  const batchOf = (r: SqliteRing) => {
    r.registerOutput('b');
    const lease = r.lease('b', { maxPoints: 1000, order: 'oldest' })!;
    return makeBatch(lease.chunks.map((c) => ({ seriesKey: c.seriesKey, group: c.group })));
  };
  const rowsOf = (b: ReturnType<typeof makeBatch>) => b.parts.flatMap((p) => [...groupRows(p.group)].map((r) => `${p.seriesKey} ${r.timeUs} ${r.fields.map(([k, v]) => `${k}=${String(v)}`).join(',')}`));

  it('halves into two batches holding every row once, in order', () => {
    const r = ring();
    const b = batchOf(r);
    const [x, y] = halve(b);
    expect(x.points + y.points).toBe(30);
    expect(x.points).toBe(15);
    expect([...rowsOf(x), ...rowsOf(y)]).toEqual(rowsOf(b));
    r.close();
  });

  it('drops exactly the points at the given indices', () => {
    const r = ring();
    const b = batchOf(r);
    const rest = without(b, [0, 7, 29]);
    const all = rowsOf(b);
    expect(rowsOf(rest)).toEqual(all.filter((_, i) => ![0, 7, 29].includes(i)));
    r.close();
  });
});

describe('line protocol for InfluxDB, and reading its error bodies', () => {
  const points: Point[] = [
    { measurement: 'm', tags: { s: 'a' }, fields: { u: new Unsigned(5n), big: new Unsigned(2n ** 63n) }, timeUs: 1_000_001 },
    { measurement: 'm', tags: { s: 'a' }, fields: { x: NaN }, timeUs: 1_000_002 },
    { measurement: 'm', tags: { s: 'a' }, fields: { x: 1.5 }, timeUs: 1_000_003 },
  ];
  const r = ringWith(points);
  r.registerOutput('l');
  const lease = r.lease('l', { maxPoints: 100, order: 'oldest' })!;
  const batch = makeBatch(lease.chunks.map((c) => ({ seriesKey: c.seriesKey, group: c.group })));
  r.close();

  it('v1 sends unsigned as integers (floats beyond int64, counted); v2 as unsigned; NaN-only points are skipped', () => {
    const v1 = batchLines(batch, 'v1');
    expect(allLines(v1)).toEqual(['m,s=a u=5i,big=9223372036854776000 1000001', 'm,s=a x=1.5 1000003']);
    expect(v1.payload.toString()).toBe('m,s=a u=5i,big=9223372036854776000 1000001\nm,s=a x=1.5 1000003\n');
    expect(v1).toMatchObject({ pointOfLine: [0, 2], skippedPoints: 1, unsignedAsFloat: 1 });
    expect(allLines(batchLines(batch, 'v2'))[0]).toBe('m,s=a u=5u,big=9223372036854775808u 1000001');
  });

  it('the fast writer writes byte for byte what serializeLine (the reference) writes', () => {
    const r = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const rand = r(7);
    const names = ['a', 'b c', 'd,e', 'f=g', '"q"', 'é✓', 'x\\', '\ty'];
    const pts: Point[] = [];
    for (let i = 0; i < 400; i++) {
      const fields: Point['fields'] = {};
      for (const n of names) {
        if (rand() < 0.4) continue;
        const k = rand();
        fields[n] = k < 0.2 ? (rand() < 0.1 ? NaN : rand() < 0.1 ? -0 : (rand() - 0.5) * 10 ** Math.floor(rand() * 30 - 10)) : k < 0.4 ? BigInt(Math.floor((rand() - 0.5) * 1e15)) : k < 0.6 ? new Unsigned(BigInt(Math.floor(rand() * 1e15))) : k < 0.8 ? rand() < 0.5 : `s"\\${i}\né`;
      }
      if (Object.keys(fields).length === 0) fields.z = i;
      pts.push({ measurement: i % 3 ? 'm m,x' : 'plain', tags: i % 2 ? { 't k': `v=${i % 5}`, u: 'é' } : {}, fields, timeUs: 1_000_000 + i });
    }
    const ring = ringWith(pts);
    ring.registerOutput('f');
    const lease = ring.lease('f', { maxPoints: 10_000, order: 'oldest' })!;
    const b = makeBatch(lease.chunks.map((c) => ({ seriesKey: c.seriesKey, group: c.group })));
    const expected: string[] = [];
    for (const part of b.parts) for (const row of groupRows(part.group)) {
      const line = serializeLine(part.seriesKey, row.fields, row.timeUs, 'us');
      if (line !== '') expected.push(line);
    }
    const got = batchLines(b, 'v2');
    expect(allLines(got)).toEqual(expected);
    expect(got.payload.toString()).toBe(expected.map((l) => l + '\n').join(''));
    ring.close();
  });

  const text = ['m f=1 1', "m,t=it's s=\"a': b\" 2", 'm f=3 3'];
  const payload = Buffer.from(text.join('\n') + '\n');
  const starts = [0, text[0].length + 1, text[0].length + text[1].length + 2];
  const lines = { payload, starts, pointOfLine: [0, 1, 2], skippedPoints: 0, skippedFields: 0, unsignedAsFloat: 0 };

  it.each([
    ['v1 unable to parse (quotes inside the line)', `unable to parse 'm,t=it's s="a': b" 2': invalid field format`, undefined, [1]],
    ['v2 json line', 'failed to parse', 3, [2]],
    ['v2 partial, lines listed', 'partial write has occurred, errors encountered on line(s): line 1: x\nline 3: y', undefined, [0, 2]],
    ['nothing named', 'field type conflict', undefined, []],
  ])('%s', (_name, message, line, expected) => {
    expect(namedLines(message, line, lines)).toEqual(expected);
  });
  // What each write answer means is the table in drivers/influxdb/cases/responses.json (responses.test.ts).
});

describe('the engine end to end (fake InfluxDB 2)', () => {
  function v2(fake: FakeInfluxV2) {
    return new InfluxdbOutput(
      { type: 'influxdb', url: fake.url, api: 'v2', org: fake.org, bucket: fake.bucket, token: fake.token, resolution: 'raw', batch_size: 5000, flush_interval: 200, timeout: 2000, gzip: false },
      { id: 'up', log: new CaptureLogger(), agentId: 't' },
    );
  }

  it('caught up: a new point reaches the upstream within the flush interval (+ commit), within 2 s', async () => {
    const fake = await FakeInfluxV2.start();
    const ring = SqliteRing.open(ringOptions(undefined, { commitIntervalMs: 100 }));
    const sync = engine(v2(fake), ring, { settings: { flushIntervalMs: 500 } });
    await sync.start();
    const lags: number[] = [];
    for (let i = 0; i < 8; i++) {
      const now = Date.now();
      await ring.write([{ measurement: 'live', tags: {}, fields: { i }, timeUs: now * 1000 }]);
      await until(() => fake.arrivals.some((a) => a.timeUs === now * 1000), 5000, 'arrival');
      lags.push(fake.arrivals.find((a) => a.timeUs === now * 1000)!.atMs - now);
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(Math.max(...lags)).toBeLessThan(2000);
    await sync.stop();
    ring.close();
    await fake.close();
  });

  it('max_rate paces the backfill: after one burst, no faster than the rate', async () => {
    const fake = await FakeInfluxV2.start();
    const ring = ringWith(makePoints(10, 1200));
    const rate = 4000;
    const sync = engine(v2(fake), ring, { settings: { maxRatePointsPerS: rate, batchPoints: 1000 } });
    await sync.start();
    await until(() => ring.outputStatus('up').backlog_points === 0, 20_000, 'drained');
    const t0 = fake.writes[0].atMs;
    let delivered = 0;
    for (const w of fake.writes) {
      delivered += w.written;
      // The bucket starts full (one second's worth) and a lease (whole chunks: 1200 points here) may overdraw it.
      // (+100 ms: the first lease precedes the first arrival by about one request.)
      expect(delivered).toBeLessThanOrEqual(rate + 1200 + (rate * (w.atMs - t0 + 100)) / 1000);
    }
    expect((fake.writes[fake.writes.length - 1].atMs - t0) / 1000).toBeGreaterThanOrEqual((12_000 - rate - 1200) / rate - 0.1);
    await sync.stop();
    ring.close();
    await fake.close();
  });

  it('stop aborts what is in flight and releases it; a restart resends at most that, from the cursor', async () => {
    const fake = await FakeInfluxV2.start();
    const dir = tmpDir();
    const points = makePoints(10, 1000);
    let ring = ringWith(points, ringOptions(dir));
    let sync = engine(v2(fake), ring, { settings: { batchPoints: 1000, maxConcurrency: 1, stopGraceMs: 100 } });
    // Three requests answered at once, then slow ones.
    fake.faults.push({ kind: 'delay', ms: 0 }, { kind: 'delay', ms: 0 }, { kind: 'delay', ms: 0 }, { kind: 'delay', ms: 3000 }, { kind: 'delay', ms: 3000 });
    await sync.start();
    await until(() => fake.writes.length >= 4, 10_000, 'a slow request in flight');
    await sync.stop();
    const sentBefore = ring.outputStatus('up').sent_points;
    ring.close();
    const arrivalsBefore = fake.arrivals.length;
    ring = SqliteRing.open(ringOptions(dir));
    sync = engine(v2(fake), ring, { settings: { batchPoints: 1000 } });
    await sync.start();
    await until(() => ring.outputStatus('up').backlog_points === 0, 20_000, 'drained after restart');
    await sync.stop();
    // The three answered requests were recorded by stop(); everything arrived; what arrived twice is at
    // most the request that was in flight (the fake drops a slow request whose client went away).
    const resent = fake.arrivals.length - points.length;
    expect(sentBefore).toBe(3000);
    expect(arrivalsBefore).toBe(3000);
    expect(fake.points.size).toBe(points.length);
    expect(resent).toBeLessThanOrEqual(1000);
    expect(ring.outputStatus('up').sent_points).toBe(points.length);
    ring.close();
    await fake.close();
  });

  it('resolution 1m: ships the rollup tier, one point per window with <field>_<function> fields', async () => {
    const fake = await FakeInfluxV2.start();
    const ring = SqliteRing.open({ ...ringOptions(), rollupWindowsMs: [60_000] });
    const base = 1_700_000_040_000; // a minute boundary in ms
    const pts = Array.from({ length: 180 }, (_, i) => ({ measurement: 'r', tags: { s: 'x' }, fields: { v: i }, timeUs: (base + i * 1000) * 1000 }));
    await ring.write(pts);
    ring.commit();
    ring.rollUp();
    const sync = engine(v2(fake), ring, { id: 'agg', source: new (await import('../src/sync/source.js')).RollupSource(ring, 'agg', 60_000, ['mean', 'max', 'count']) });
    await sync.start();
    await until(() => fake.points.size >= 2, 10_000, 'rollups delivered');
    const first = fake.points.get(`r,s=x\n${base * 1000}`);
    expect(first).toEqual({ v_mean: 29.5, v_max: 59, v_count: 60n });
    await sync.stop();
    ring.close();
    await fake.close();
    void RingSource;
  });

  it('pipelines one series: its next request is leased and encoded while the previous is out, sent only after it is acknowledged, in order', async () => {
    // One series, many chunks: the shape of a burst from one MQTT topic. A real ring and an output that
    // records what the engine asks of it and when.
    const ring = ringWith(makePoints(1, 4000), ringOptions(undefined, { maxChunkRows: 500 }));
    const events: { kind: 'encode' | 'start' | 'end'; firstUs: number }[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const output = {
      connect: () => Promise.resolve(),
      close: () => Promise.resolve(),
      encode: (batch: OutputBatch) => {
        events.push({ kind: 'encode', firstUs: firstTimeUs(batch) });
        return { firstUs: firstTimeUs(batch) };
      },
      write: async (batch: OutputBatch) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        events.push({ kind: 'start', firstUs: firstTimeUs(batch) });
        await new Promise((r) => setTimeout(r, 30));
        events.push({ kind: 'end', firstUs: firstTimeUs(batch) });
        inFlight--;
        return { rejectedPoints: 0, bytes: 0 };
      },
    };
    const sync = engine(output, ring, { settings: { batchPoints: 500, maxConcurrency: 4 } });
    await sync.start();
    await until(() => ring.outputStatus('up').backlog_points === 0, 20_000, 'drained');
    await sync.stop();
    ring.close();
    const starts = events.filter((e) => e.kind === 'start');
    expect(starts.length).toBe(8);
    // In order, one at a time: a series is never in two requests at once, whatever the concurrency limit.
    expect(maxInFlight).toBe(1);
    for (let i = 1; i < starts.length; i++) expect(starts[i].firstUs).toBeGreaterThan(starts[i - 1].firstUs);
    // Each request after the first was encoded before the previous one was acknowledged, and started after it.
    for (let i = 1; i < starts.length; i++) {
      const encodedAt = events.findIndex((e) => e.kind === 'encode' && e.firstUs === starts[i].firstUs);
      const previousEnd = events.findIndex((e) => e.kind === 'end' && e.firstUs === starts[i - 1].firstUs);
      const startedAt = events.findIndex((e) => e.kind === 'start' && e.firstUs === starts[i].firstUs);
      expect(encodedAt, `request ${i} encoded ahead`).toBeGreaterThan(-1);
      expect(encodedAt, `request ${i} encoded ahead`).toBeLessThan(previousEnd);
      expect(startedAt, `request ${i} after its predecessor`).toBeGreaterThan(previousEnd);
    }
  });

  it('a failed request takes back the request prepared behind it: the series goes again oldest first', async () => {
    const ring = ringWith(makePoints(1, 2000), ringOptions(undefined, { maxChunkRows: 500 }));
    const starts: number[] = [];
    let failed = false;
    const output = {
      connect: () => Promise.resolve(),
      close: () => Promise.resolve(),
      encode: (batch: OutputBatch) => firstTimeUs(batch),
      write: async (batch: OutputBatch) => {
        starts.push(firstTimeUs(batch));
        await new Promise((r) => setTimeout(r, 20));
        // The second request fails once, while the third is prepared behind it.
        if (starts.length === 2 && !failed) {
          failed = true;
          throw new OutputError('connection reset', 'retry');
        }
        return { rejectedPoints: 0, bytes: 0 };
      },
    };
    const sync = engine(output, ring, { settings: { batchPoints: 500 } });
    await sync.start();
    await until(() => ring.outputStatus('up').backlog_points === 0, 20_000, 'drained');
    await sync.stop();
    ring.close();
    // The failed request is sent again before anything newer of its series.
    expect(starts[2]).toBe(starts[1]);
    for (let i = 3; i < starts.length; i++) expect(starts[i]).toBeGreaterThan(starts[i - 1]);
    expect(new Set(starts).size).toBe(4);
  });
});

function firstTimeUs(batch: OutputBatch): number {
  let min = Infinity;
  for (const part of batch.parts) min = Math.min(min, part.group.timesUs[0]);
  return min;
}
