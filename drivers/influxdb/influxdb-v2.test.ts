// The v2 write contract, against a FAKE InfluxDB 2 (test/helpers/fake-influx-v2.ts: InfluxDB 2 is not
// packaged here). Each fault of the contract and what the output does about it, asserted on what the
// server saw (its request log and timestamps) and on the ring's cursor.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { seriesKey } from '../../src/core/line-protocol.js';
import type { Point } from '../../src/core/point.js';
import type { SqliteRing } from '../../src/store/ring.js';
import type { OutputSync, SyncSettings } from '../../src/sync/engine.js';
import { FakeInfluxV2 } from '../../test/helpers/fake-influx-v2.js';
import { CaptureLogger, engine, makePoints, ringWith, until } from '../../test/helpers/sync.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { InfluxdbOutput } from './influxdb.js';
import type { InfluxdbOutputConfig } from './schema.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function v2Config(fake: FakeInfluxV2, extra: Partial<InfluxdbOutputConfig> = {}): InfluxdbOutputConfig {
  return {
    type: 'influxdb',
    url: fake.url,
    api: 'v2',
    org: fake.org,
    bucket: fake.bucket,
    token: 'fake-token',
    resolution: 'raw',
    batch_size: 5000,
    flush_interval: 200,
    // Long: on a loaded CI machine the fake and the client share one event loop; the test of timeouts sets its own.
    timeout: 10_000,
    gzip: true,
    ...extra,
  };
}

interface Setup {
  fake: FakeInfluxV2;
  ring: SqliteRing;
  sync: OutputSync;
  log: CaptureLogger;
  points: Point[];
}

async function setup(points: Point[], opts: { config?: Partial<InfluxdbOutputConfig>; settings?: Partial<SyncSettings> } = {}): Promise<Setup> {
  const fake = await FakeInfluxV2.start();
  cleanup.push(() => fake.close());
  const ring = ringWith(points);
  cleanup.push(() => ring.close());
  const log = new CaptureLogger();
  const output = new InfluxdbOutput(v2Config(fake, opts.config), { id: 'up', log, agentId: 'test' });
  const sync = engine(output, ring, { log, settings: { timeoutMs: 10_000, ...opts.settings } });
  cleanup.push(() => sync.stop());
  return { fake, ring, sync, log, points };
}

/** Every point of the ring is stored by the fake with exactly its fields. */
function expectStored(fake: FakeInfluxV2, points: Point[], except: (p: Point) => boolean = () => false): void {
  let expected = 0;
  for (const p of points) {
    const key = `${seriesKey(p.measurement, p.tags)}\n${p.timeUs}`;
    if (except(p)) {
      expect(fake.points.has(key)).toBe(false);
      continue;
    }
    expected++;
    expect(fake.points.get(key)).toEqual(p.fields);
  }
  expect(fake.points.size).toBe(expected);
}

const backlogDone = (ring: SqliteRing) => () => ring.outputStatus('up').backlog_points === 0;

describe('influxdb output, api v2 (against a fake InfluxDB 2 speaking the documented /api/v2/write contract)', () => {
  it('204: delivers every point exactly, gzipped, in microseconds, and moves the cursor', async () => {
    const { fake, ring, sync, points } = await setup(makePoints(20, 600));
    await sync.start();
    await until(backlogDone(ring), 20_000, 'backlog drained');
    expectStored(fake, points);
    expect(fake.writes.every((w) => w.status === 204 && w.gzip)).toBe(true);
    expect(ring.outputStatus('up')).toMatchObject({ backlog_points: 0, sent_points: points.length, rejected_points: 0 });
    expect(sync.stats()).toMatchObject({ sentPoints: points.length, rejectedPoints: 0, retries: 0 });
  });

  it('400 partial write: rejects only the offending lines, counts them, stores the rest', async () => {
    // `temp` is a float everywhere except in one sensor, where it is an integer: a field type conflict.
    const points = makePoints(10, 300).map((p) => (p.tags.sensor === 's007' ? { ...p, fields: { ...p.fields, temp: BigInt(Math.round(p.fields.temp as number)) } } : p));
    const bad = (p: Point) => p.tags.sensor === 's007';
    const { fake, ring, sync } = await setup(points);
    await sync.start();
    await until(backlogDone(ring), 20_000, 'backlog drained');
    expectStored(fake, points, bad);
    const rejected = points.filter(bad).length;
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: points.length - rejected, rejected_points: rejected });
    expect(fake.writes.some((w) => w.status === 400)).toBe(true);
  });

  it('400 naming only the first malformed line, nothing written (OSS 2.x): peels off bad lines until the rest is written', async () => {
    const points = makePoints(4, 50).map((p, i) => (i % 37 === 5 ? { ...p, fields: { ...p.fields, state: 1.5 } } : p));
    const bad = (p: Point) => typeof p.fields.state === 'number';
    const { fake, ring, sync } = await setup(points);
    fake.mode = 'first-line';
    await sync.start();
    await until(backlogDone(ring), 20_000, 'backlog drained');
    expectStored(fake, points, bad);
    expect(ring.outputStatus('up').rejected_points).toBe(points.filter(bad).length);
  });

  it('400 that names nothing: bisects the batch down to the refused point, delivers the rest', async () => {
    const points = makePoints(3, 100);
    const target = points[123];
    const bad = (p: Point) => p.timeUs === target.timeUs && p.tags.sensor === target.tags.sensor;
    const { fake, ring, sync } = await setup(points);
    fake.refuse = bad;
    fake.mode = 'blind';
    await sync.start();
    await until(backlogDone(ring), 20_000, 'backlog drained');
    expectStored(fake, points, bad);
    expect(ring.outputStatus('up')).toMatchObject({ rejected_points: 1, sent_points: points.length - 1 });
    // log2(300) rounds of halving, not one request per point.
    expect(fake.writes.length).toBeLessThan(40);
  });

  it('401: pauses with one loud log line, keeps every point, resumes when the token is fixed; the token is never logged', async () => {
    const points = makePoints(5, 100);
    const { fake, ring, sync, log } = await setup(points, { settings: { pausedRetryMs: 300, logEveryMs: 60_000 } });
    fake.token = 'the-right-token';
    await sync.start();
    await until(() => fake.writes.filter((w) => w.status === 401).length >= 3, 10_000, 'several 401s');
    expect(sync.stats().paused).toBe('auth');
    expect(ring.outputStatus('up')).toMatchObject({ backlog_points: points.length, sent_points: 0, rejected_points: 0 });
    const loud = log.lines.filter((l) => l.level === 'error' && /PAUSED/.test(l.msg));
    expect(loud).toHaveLength(1);
    // Paused means slow: at most one attempt per pausedRetryMs.
    const times = fake.writes.map((w) => w.atMs);
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(250);
    fake.token = 'fake-token';
    await until(backlogDone(ring), 10_000, 'resumed');
    expectStored(fake, points);
    expect(sync.stats().paused).toBeNull();
    expect(log.text()).not.toContain('fake-token');
    expect(log.text()).not.toContain('the-right-token');
  });

  it('413: halves the batch until the server takes it, then delivers everything', async () => {
    const points = makePoints(8, 1000);
    const { fake, ring, sync } = await setup(points, { config: { gzip: false } });
    fake.maxBodyBytes = 60_000;
    await sync.start();
    await until(backlogDone(ring), 30_000, 'backlog drained');
    expectStored(fake, points);
    expect(fake.writes.some((w) => w.status === 413)).toBe(true);
    expect(fake.writes.filter((w) => w.status === 204).every((w) => w.bytes <= 60_000)).toBe(true);
    expect(sync.stats().splits).toBeGreaterThan(0);
    expect(ring.outputStatus('up').rejected_points).toBe(0);
    // It learned: after the first split, few 413s follow.
    expect(fake.writes.filter((w) => w.status === 413).length).toBeLessThan(fake.writes.filter((w) => w.status === 204).length);
  });

  it('429 with Retry-After in seconds: the next request comes no sooner', async () => {
    const points = makePoints(2, 10);
    const { fake, ring, sync } = await setup(points);
    fake.faults.push({ kind: 'status', status: 429, headers: { 'retry-after': '2' }, body: '{"code":"too many requests","message":"slow down"}' });
    await sync.start();
    await until(backlogDone(ring), 15_000, 'delivered');
    const [throttled, next] = fake.writes;
    expect(throttled.status).toBe(429);
    expect(next.status).toBe(204);
    expect(next.atMs - throttled.atMs).toBeGreaterThanOrEqual(2000);
    expect(sync.stats().throttles).toBe(1);
    expectStored(fake, points);
  });

  it('429 with Retry-After as an HTTP date: waits until then', async () => {
    const points = makePoints(2, 10);
    const { fake, ring, sync } = await setup(points);
    const until3s = new Date(Math.ceil((Date.now() + 3000) / 1000) * 1000);
    fake.faults.push({ kind: 'status', status: 429, headers: { 'retry-after': until3s.toUTCString() } });
    await sync.start();
    await until(backlogDone(ring), 15_000, 'delivered');
    const next = fake.writes.find((w) => w.status === 204)!;
    expect(next.atMs).toBeGreaterThanOrEqual(until3s.getTime());
  });

  it('503 with Retry-After and 500 without: throttled, then backed off, nothing lost', async () => {
    const points = makePoints(3, 30);
    const { fake, ring, sync } = await setup(points);
    fake.faults.push(
      { kind: 'status', status: 503, headers: { 'retry-after': '1' } },
      { kind: 'status', status: 500 },
      { kind: 'status', status: 502 },
    );
    await sync.start();
    await until(backlogDone(ring), 15_000, 'delivered');
    const statuses = fake.writes.map((w) => w.status);
    expect(statuses.slice(0, 4)).toEqual([503, 500, 502, 204]);
    expect(fake.writes[1].atMs - fake.writes[0].atMs).toBeGreaterThanOrEqual(1000);
    // Exponential: the second backoff is longer than the first (base 50 ms ×2, ±20 % jitter).
    expect(fake.writes[3].atMs - fake.writes[2].atMs).toBeGreaterThanOrEqual(fake.writes[2].atMs - fake.writes[1].atMs - 30);
    expect(sync.stats()).toMatchObject({ throttles: 1, retries: 2 });
    expectStored(fake, points);
  });

  it('429 with Retry-After across lanes: no request of any lane starts inside the window a 429 announced', async () => {
    // A backlog for the backfill lane (two requests in flight) and fresh points written while it runs
    // (the live lane): the shape of the report, 429 ×3 with Retry-After: 2, then 503, then 204s.
    const points = makePoints(40, 500);
    const { fake, ring, sync } = await setup(points, { config: { batch_size: 1000 }, settings: { batchPoints: 1000, maxConcurrency: 4 } });
    const retryAfterMs = 2000;
    // The first request is slow and succeeds after the 429s: a success must not lift their window.
    fake.faults.push({ kind: 'delay', ms: 700 });
    for (let i = 0; i < 3; i++) fake.faults.push({ kind: 'status', status: 429, headers: { 'retry-after': '2' }, body: '{"code":"too many requests","message":"slow down"}' });
    fake.faults.push({ kind: 'status', status: 503 });
    // The client's view: when each write() began, and when a 429 reached the client.
    const starts: number[] = [];
    const throttledAt: number[] = [];
    const output = (sync as unknown as { opts: { output: InfluxdbOutput } }).opts.output;
    const write = output.write.bind(output);
    output.write = async (batch, signal, encoded) => {
      starts.push(Date.now());
      try {
        return await write(batch, signal, encoded);
      } catch (err) {
        if ((err as { details?: { status?: number } }).details?.status === 429) throttledAt.push(Date.now());
        throw err;
      }
    };
    let liveUs = Date.now() * 1000;
    const live = setInterval(() => {
      liveUs += 1000;
      void ring.write(makePoints(5, 1).map((p) => ({ ...p, measurement: 'live', timeUs: liveUs })));
    }, 50);
    cleanup.push(() => clearInterval(live));
    await sync.start();
    await until(() => fake.writes.filter((w) => w.status === 204).length >= 3, 20_000, 'delivering again');
    clearInterval(live);
    expect(throttledAt.length).toBe(3);
    for (const at of throttledAt) {
      const inside = starts.filter((s) => s > at && s < at + retryAfterMs);
      expect(inside.map((s) => s - at), `requests started within ${retryAfterMs} ms after a 429 at ${at}`).toEqual([]);
    }
    await until(backlogDone(ring), 30_000, 'backlog drained');
    expect(fake.writes.slice(0, 5).map((w) => w.status).sort()).toEqual([204, 429, 429, 429, 503]);
  });

  it('a slow response: the request times out and is sent again (the late copy is harmless)', async () => {
    const points = makePoints(2, 10);
    const { fake, ring, sync } = await setup(points, { config: { timeout: 500 }, settings: { timeoutMs: 500 } });
    fake.faults.push({ kind: 'delay', ms: 1500 });
    await sync.start();
    await until(backlogDone(ring), 15_000, 'delivered');
    expect(sync.stats().retries).toBeGreaterThanOrEqual(1);
    expect(sync.stats().lastError).toMatch(/no answer within 500 ms/);
    expect(fake.writes.filter((w) => w.status === 204).length).toBeGreaterThanOrEqual(1);
    expectStored(fake, points);
  });

  it('a reset connection: retried, delivered', async () => {
    const points = makePoints(2, 10);
    const { fake, ring, sync } = await setup(points);
    fake.faults.push({ kind: 'reset' }, { kind: 'reset' });
    await sync.start();
    await until(backlogDone(ring), 15_000, 'delivered');
    expect(fake.writes.map((w) => w.status)).toEqual([-1, -1, 204]);
    expect(sync.stats().retries).toBe(2);
    expectStored(fake, points);
  });

  it('404 (unknown bucket): paused as a configuration error, data kept', async () => {
    const points = makePoints(2, 10);
    const { ring, sync, log } = await setup(points, { config: { bucket: 'nope' } });
    await sync.start();
    await until(() => sync.stats().paused === 'fatal', 10_000, 'paused');
    expect(ring.outputStatus('up').backlog_points).toBe(points.length);
    expect(log.lines.some((l) => l.level === 'error' && /configuration/.test(l.msg) && /bucket "nope" not found/.test(String(l.obj.err)))).toBe(true);
  });

  it('https: an untrusted certificate pauses the output (configuration); tls.ca or insecure_skip_verify let it through', async () => {
    const dir = tmpDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'pipe' });
    const fake = await FakeInfluxV2.start({ tls: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) } });
    cleanup.push(() => fake.close());
    const points = makePoints(2, 20);
    const run = async (id: string, tls: InfluxdbOutputConfig['tls']) => {
      const ring = ringWith(points);
      cleanup.push(() => ring.close());
      const log = new CaptureLogger();
      const output = new InfluxdbOutput(v2Config(fake, { tls }), { id, log, agentId: 'test' });
      const sync = engine(output, ring, { log });
      cleanup.push(() => sync.stop());
      await sync.start();
      return { ring, sync, log };
    };
    const untrusted = await run('up', undefined);
    await until(() => untrusted.sync.stats().paused === 'fatal', 10_000, 'paused on the certificate');
    expect(untrusted.sync.stats().lastError).toMatch(/TLS: the server certificate is not trusted/);
    expect(untrusted.ring.outputStatus('up').backlog_points).toBe(points.length);
    const withCa = await run('up', { ca: join(dir, 'cert.pem'), insecure_skip_verify: false });
    await until(backlogDone(withCa.ring), 10_000, 'delivered with tls.ca');
    const insecure = await run('up', { insecure_skip_verify: true });
    await until(backlogDone(insecure.ring), 10_000, 'delivered with insecure_skip_verify');
    expectStored(fake, points);
  });
});
