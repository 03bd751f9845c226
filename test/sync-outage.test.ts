// A long outage and the recovery, through the whole agent: a simulator with many series and a short
// interval keeps collecting while the upstream (the fake InfluxDB 2, which records when each point
// arrived) is down, on top of ten minutes of older data that piled up before; then the upstream comes
// back. Live points must arrive within 2 s while the backlog drains behind them, oldest first at
// max_rate; nothing may be lost, and each series must arrive in order within each stream.
import { describe, expect, it } from 'vitest';
import { Agent } from '../src/agent/agent.js';
import { ringOptions as agentRingOptions } from '../src/cli/settings.js';
import { loadConfig } from '../src/config/index.js';
import { groupRows } from '../src/query/rows.js';
import type { Point } from '../src/core/point.js';
import { SqliteRing } from '../src/store/ring.js';
import { FakeInfluxV2, type Arrival } from './helpers/fake-influx-v2.js';
import { CaptureLogger, ringOptions, ringWith, until } from './helpers/sync.js';
import { tmpDir } from './helpers/tmp.js';

const SERIES = 60;

/**
 * True when the arrival order of one series splits into two streams, each in time order: everything
 * older than some time S (the backfill) and everything from S on (live). Every pair that arrived out of
 * order must then straddle S, i.e. the newest "late" point is older than the oldest "early" one.
 */
export function twoOrderedStreams(times: number[]): { ok: boolean; split: number | null } {
  let prefixMax = -Infinity;
  let maxLow = -Infinity;
  for (const t of times) {
    if (t < prefixMax) maxLow = Math.max(maxLow, t);
    prefixMax = Math.max(prefixMax, t);
  }
  let suffixMin = Infinity;
  let minHigh = Infinity;
  for (let i = times.length - 1; i >= 0; i--) {
    if (times[i] > suffixMin) minHigh = Math.min(minHigh, times[i]);
    suffixMin = Math.min(suffixMin, times[i]);
  }
  if (maxLow === -Infinity) return { ok: true, split: null };
  return { ok: maxLow < minHigh, split: minHigh };
}

describe('twoOrderedStreams', () => {
  it.each([
    [[1, 2, 3], true],
    [[5, 6, 1, 2, 7, 3, 8, 4], true],
    [[5, 6, 1, 2, 7, 3, 8, 6.5], false],
    [[2, 1, 3], true],
    [[3, 1, 2, 0], false],
  ])('%j → %s', (times, ok) => {
    expect(twoOrderedStreams(times).ok).toBe(ok);
  });
});

describe('a long outage, then recovery (agent + simulator + fake InfluxDB 2)', () => {
  it('live points within 2 s of recovery while the backlog drains behind them; nothing lost; each series in order per stream', async () => {
    const dir = tmpDir();
    // Ten minutes of 1 Hz readings of the same series that piled up before this run (as if the agent had
    // been cut off for that long): the backlog.
    const startMs = Math.floor(Date.now() / 1000) * 1000 - 11 * 60_000;
    const old: Point[] = [];
    for (let i = 0; i < 600; i++) {
      for (let s = 0; s < SERIES; s++) {
        old.push({ measurement: 'sim', tags: { sensor: `s${String(s).padStart(3, '0')}` }, fields: { temperature: 20 + ((i + s) % 50) / 10, humidity: 50.5, counter: BigInt(i), alarm: false }, timeUs: (startMs + i * 1000) * 1000 });
      }
    }
    ringWith(old, ringOptions(dir)).close();

    const fake = await FakeInfluxV2.start();
    await fake.down();
    const loaded = loadConfig({
      text: [
        'version: 1',
        `agent: { id: outage, data_dir: ${dir}, commit_interval: 200ms }`,
        'buffer: { max_size: 256MiB, when_full: drop_oldest }',
        'aggregate: { windows: [] }',
        'http: { listen: "off" }',
        'inputs:',
        `  sim: { type: simulator, series: ${SERIES}, interval: 100ms }`,
        'outputs:',
        '  region:',
        '    type: influxdb',
        `    url: ${fake.url}`,
        '    api: v2',
        `    org: ${fake.org}`,
        `    bucket: ${fake.bucket}`,
        `    token: ${fake.token}`,
        '    flush_interval: 500ms',
        '    max_rate: 8000',
        '',
      ].join('\n'),
      env: {},
      hostname: 'test',
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const log = new CaptureLogger();
    const agent = new Agent({ config: loaded.config, ring: agentRingOptions(loaded.config), log });
    let stopped = false;
    try {
      await agent.start();
      // The outage: the simulator keeps collecting (600 points/s) into the ring.
      await new Promise((r) => setTimeout(r, 12_000));
      const outage = agent.ring.outputStatus('region');
      expect(outage.sent_points).toBe(0);
      expect(outage.backlog_points).toBeGreaterThan(old.length + 5000);
      const recoveredMs = Date.now();
      await fake.up();
      // Live data flows while the backlog drains at max_rate (~6 s for ~44k points).
      await until(() => agent.ring.outputStatus('region').backlog_points < 2000, 60_000, 'the backlog to drain');
      await new Promise((r) => setTimeout(r, 1500));
      await agent.inputs.get('sim')!.stop();
      agent.ring.commit();
      await until(() => agent.ring.outputStatus('region').backlog_points === 0, 30_000, 'the last points');
      await agent.stop();
      stopped = true;

      // Nothing lost: every point in the store reached the upstream, with its values.
      const ring = SqliteRing.open({ ...ringOptions(dir), readonly: true });
      let stored = 0;
      for (const s of ring.scan()) {
        for (const row of groupRows(s.group)) {
          stored++;
          expect(fake.points.get(`${s.key}\n${row.timeUs}`)).toEqual(Object.fromEntries(row.fields));
        }
      }
      ring.close();
      expect(fake.points.size).toBe(stored);
      expect(stored).toBeGreaterThan(old.length + 10_000);

      // First arrival of each point.
      const first = new Map<string, Arrival>();
      for (const a of fake.arrivals) {
        const key = `${a.series}\n${a.timeUs}`;
        if (!first.has(key)) first.set(key, a);
      }
      const arrivals = [...first.values()];
      const liveArrivals = arrivals.filter((a) => a.timeUs >= recoveredMs * 1000);
      const backlogArrivals = arrivals.filter((a) => a.timeUs < (recoveredMs - 3000) * 1000);
      expect(liveArrivals.length).toBeGreaterThan(1000);

      // Live within 2 s: each point produced after the upstream came back reached it within 2 s of being produced.
      const lags = liveArrivals.map((a) => a.atMs - a.timeUs / 1000);
      if (process.env.SLUICE_TEST_LOG) console.log({ maxLagMs: Math.max(...lags), live: liveArrivals.length, backlog: backlogArrivals.length, firstLiveAfterRecoveryMs: Math.min(...liveArrivals.map((a) => a.atMs)) - recoveredMs });
      expect(Math.max(...lags)).toBeLessThanOrEqual(2000);

      // ... while the backlog was still draining behind it: when the first live point arrived, most of the
      // backlog had not, and the backlog went oldest first.
      const firstLive = Math.min(...liveArrivals.map((a) => a.atMs));
      const backlogBefore = backlogArrivals.filter((a) => a.atMs <= firstLive).length;
      expect(backlogBefore / backlogArrivals.length).toBeLessThan(0.5);
      expect(Math.max(...backlogArrivals.map((a) => a.atMs))).toBeGreaterThan(firstLive + 2000);

      // In order per series within each stream (at most one split: backfill below it, live from it on),
      // and the split lies near the recovery.
      const bySeries = new Map<string, Arrival[]>();
      for (const a of arrivals) {
        let list = bySeries.get(a.series);
        if (!list) bySeries.set(a.series, (list = []));
        list.push(a);
      }
      expect(bySeries.size).toBe(SERIES);
      for (const [series, list] of bySeries) {
        const streams = twoOrderedStreams(list.map((a) => a.timeUs));
        expect(streams.ok, series).toBe(true);
        if (streams.split !== null) expect(Math.abs(streams.split / 1000 - recoveredMs)).toBeLessThan(5000);
      }
      expect(log.lines.some((l) => /accepts writes again/.test(l.msg))).toBe(true);
    } finally {
      if (!stopped) await agent.stop().catch(() => undefined);
      await fake.close();
    }
  }, 120_000);
});
