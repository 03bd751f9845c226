// A burst, then silence (issue 17): QoS 1 JSON messages published as fast as four mosquitto_pub can,
// through a real mosquitto into an agent with an mqtt input and an influxdb v1 output to a real
// InfluxDB 1.6.7, then nothing more. Every point the agent committed (and so acknowledged) must reach
// InfluxDB within flush_interval and a few seconds, although no new record arrives to wake the live
// lane; and while InfluxDB accepts writes the live lane never lags more than its limit and a flush.
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent/agent.js';
import { ringOptions as agentRingOptions } from '../src/cli/settings.js';
import { loadConfig } from '../src/config/index.js';
import { freePort, httpRequest, startInfluxdb, type InfluxdbServer } from './helpers/influxdb.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { CaptureLogger, until } from './helpers/sync.js';
import { tmpDir } from './helpers/tmp.js';

const PUBLISHERS = 4;
const MESSAGES = 40_000;
const FLUSH_INTERVAL_MS = 1000;
/** What "within seconds" allows on a loaded two-core machine; the reported stall was 15–47 s. */
const DELIVERY_SLACK_MS = 3000;

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Publishes `count` lines with `mosquitto_pub -q 1 -l` (one message per line), as the report did. */
function publish(broker: Mosquitto, topic: string, lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-q', '1', '-t', topic, '-l'], { stdio: ['pipe', 'ignore', 'pipe'] });
    cleanup.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}: ${stderr}`))));
    child.stdin.end(lines.join('\n') + '\n');
  });
}

async function countIn(influx: InfluxdbServer): Promise<number> {
  const rows = await influx.rows('SELECT count(v) FROM plant', 'burst');
  return rows.length === 0 ? 0 : Number(rows[0].count);
}

describe('a burst, then silence (mqtt → agent → real InfluxDB 1.6.7)', () => {
  it('every committed point reaches InfluxDB within flush_interval and a few seconds; the live lane never lags past its limit', async () => {
    const [broker, influx] = await Promise.all([startMosquitto({ global: ['max_queued_messages 0'] }), startInfluxdb()]);
    cleanup.push(() => broker.stop(), () => influx.close());
    await influx.query('CREATE DATABASE burst');
    const dir = tmpDir();
    const httpPort = await freePort();
    const loaded = loadConfig({
      text: [
        'version: 1',
        `agent: { id: burst, data_dir: ${dir} }`,
        `http: { listen: "127.0.0.1:${httpPort}" }`,
        'inputs:',
        '  bus:',
        '    type: mqtt',
        `    url: mqtt://127.0.0.1:${broker.port}`,
        '    topics: ["bench/#"]',
        '    format: json',
        '    qos: 1',
        '    measurement: plant',
        'outputs:',
        '  influx:',
        '    type: influxdb',
        `    url: ${influx.url}`,
        '    api: v1',
        '    database: burst',
        `    flush_interval: ${FLUSH_INTERVAL_MS}ms`,
        '',
      ].join('\n'),
      env: {},
      hostname: 'test',
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const log = new CaptureLogger();
    const agent = new Agent({ config: loaded.config, ring: agentRingOptions(loaded.config), log });
    cleanup.push(() => agent.stop());
    await agent.start();
    const status = () => agent.ring.outputStatus('influx');
    const committed = () => {
      const s = status();
      return s.backlog_points + s.sent_points + s.rejected_points;
    };
    // The subscription is in place once a first message is stored (a message before it would be lost).
    await until(async () => {
      await publish(broker, 'bench/warm', [JSON.stringify({ v: -1, p: -1 })]);
      return until(() => committed() >= 1, 1000, 'the warm-up message').catch(() => false);
    }, 20_000, 'the agent subscribed');
    const total = committed() + MESSAGES;

    const perPublisher = MESSAGES / PUBLISHERS;
    await Promise.all(
      Array.from({ length: PUBLISHERS }, (_, p) =>
        publish(broker, `bench/${p}`, Array.from({ length: perPublisher }, (_, i) => JSON.stringify({ v: p * perPublisher + i, p }))),
      ),
    );
    // Every message acknowledged means every point committed: the publishers exit only after their PUBACKs.
    await until(() => committed() >= total, 20_000, 'every message committed');
    const committedMs = Date.now();

    let deliveredMs = 0;
    await until(
      async () => {
        if ((await countIn(influx)) < total) return false;
        deliveredMs = Date.now();
        return true;
      },
      FLUSH_INTERVAL_MS + DELIVERY_SLACK_MS + 60_000,
      'every point in InfluxDB',
    );
    const laterMs = deliveredMs - committedMs;
    expect(laterMs, 'from the last commit to the last point in InfluxDB, ms').toBeLessThanOrEqual(FLUSH_INTERVAL_MS + DELIVERY_SLACK_MS);
    expect(await countIn(influx)).toBe(total);
    // The cursor follows the acknowledgements (recorded in batches a little later).
    await until(() => status().backlog_points === 0, 10_000, 'the cursor to record every delivery');
    expect(status()).toMatchObject({ backlog_points: 0, sent_points: total, rejected_points: 0 });

    // The live lane's lag check keeps its limit: when it hands records to the backfill, they are at most
    // a flush interval older than the limit (before the fix: 15 s and 41 s, with a 5 s limit).
    const liveLagMs = Math.max(5000, 3 * FLUSH_INTERVAL_MS);
    const behind = log.lines.filter((l) => /live data is falling behind/.test(l.msg)).map((l) => Number(l.obj.lag_ms));
    for (const lag of behind) expect(lag).toBeLessThanOrEqual(liveLagMs + FLUSH_INTERVAL_MS);
    // Drained: the live lane's lag gauge says so.
    const metrics = await httpRequest(`http://127.0.0.1:${httpPort}/metrics`, 'GET');
    expect(metrics.body).toMatch(/^sluice_output_live_lag_seconds\{output="influx",type="influxdb"\} 0$/m);
  }, 120_000);
});
