// MQTT ingest: a real mosquitto on loopback, the real agent (built CLI) subscribed with QoS 1, and
// several mqtt.js publishers publishing QoS 1 as fast as the broker takes it for ~10 s. The figure is
// points committed into the ring per second, from the first publish to the moment the last point is
// committed (so a backlog left in the broker counts against it); every published point must arrive.
// Acknowledgements go out only after commit, as always.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { freePort, memoryMb } from './proc.mjs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'bin', 'sluice.js');
const MOSQUITTO = process.env.MOSQUITTO ?? '/usr/sbin/mosquitto';
const PUBLISH_MS = Number(process.env.SLUICE_BENCH_MQTT_MS ?? 10_000);
const PUBLISHERS = 4;
/** QoS 1 publishes each publisher keeps unacknowledged by the broker. */
const PUBLISH_WINDOW = 500;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(probe, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function startBroker(dir) {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // Unbounded queues: publishers may run ahead of the subscriber, and the bench must not lose messages
  // in the broker (a default mosquitto would drop beyond 1000 queued per client). The in-flight window
  // stays at its default (20) for MQTT 3.1.1 clients; MQTT 5 clients set their own.
  writeFileSync(
    conf,
    [`user ${userInfo().username}`, 'persistence false', 'allow_anonymous true', 'max_queued_messages 0', 'log_dest stderr', 'log_type error', 'log_type warning', 'log_type subscribe', `listener ${port} 127.0.0.1`, ''].join('\n'),
  );
  const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => (log += d.toString()));
  await waitUntil(() => canConnect(port), 10_000, 'mosquitto');
  return { port, url: `mqtt://127.0.0.1:${port}`, log: () => log, stop: () => new Promise((r) => (proc.exitCode !== null ? r() : (proc.once('exit', r), proc.kill('SIGTERM')))) };
}

function committedPoints(db) {
  try {
    return db.prepare('SELECT coalesce(sum(rows), 0) AS n FROM chunks').get().n;
  } catch {
    return 0; // the agent has not created the schema yet
  }
}

const peakRssMb = (pid) => memoryMb(pid)?.peak ?? null;

/** Publishes as fast as the broker acknowledges, for `ms`; resolves with the messages published. */
function publishFor(client, ms, payload) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    let inflight = 0;
    let sent = 0;
    let done = false;
    const pump = () => {
      while (!done && inflight < PUBLISH_WINDOW) {
        if (Date.now() >= deadline) {
          done = true;
          break;
        }
        inflight++;
        const [topic, body] = payload(sent++);
        client.publish(topic, body, { qos: 1 }, (err) => {
          if (err) return reject(err);
          inflight--;
          if (done) {
            if (inflight === 0) resolve(sent);
          } else if (inflight < PUBLISH_WINDOW / 2) pump();
        });
      }
      if (done && inflight === 0) resolve(sent);
    };
    pump();
  });
}

async function runCase({ name, format, protocolVersion, linesPerMessage }) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-mqtt-'));
  const broker = await startBroker(dir);
  const dataDir = join(dir, 'data');
  const config = join(dir, 'sluice.yaml');
  writeFileSync(
    config,
    [
      'version: 1',
      'agent: { id: bench, commit_interval: 500ms }',
      'buffer: { max_size: 2GiB, when_full: drop_oldest }',
      'inputs:',
      '  bench:',
      '    type: mqtt',
      `    url: ${broker.url}`,
      '    topics: ["bench/#"]',
      '    topic_tags: "bench/{publisher}/{sensor}"',
      `    format: ${format}`,
      ...(format === 'json' ? ['    json: { time_key: t, time_precision: us }'] : ['    influx: { precision: us }']),
      '    qos: 1',
      `    protocol_version: ${protocolVersion}`,
      '',
    ].join('\n'),
  );
  const agent = spawn(process.execPath, [CLI, 'run', '-c', config, '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, SLUICE_LOG_LEVEL: 'warn' } });
  let agentErr = '';
  agent.stderr.on('data', (d) => (agentErr += d.toString()));
  const clients = [];
  try {
    await waitUntil(() => broker.log().includes('sluice-bench-bench 1 bench/#'), 20_000, `the agent's subscription (${agentErr})`);
    for (let i = 0; i < PUBLISHERS; i++) clients.push(await mqtt.connectAsync(broker.url, { clientId: `bench-pub-${i}`, reconnectPeriod: 0 }));
    const baseUs = Date.now() * 1000;
    const payloadFor = (p) => (n) => {
      const sensor = n % 50;
      const tUs = baseUs + Math.floor(n / 50) * 1000;
      if (format === 'json') return [`bench/p${p}/s${sensor}`, JSON.stringify({ t: tUs, temperature: 20 + (n % 100) / 10, humidity: 40 + (n % 7) })];
      const lines = [];
      for (let l = 0; l < linesPerMessage; l++) lines.push(`env,line=${l} temperature=${20 + ((n + l) % 100) / 10},humidity=${40 + (n % 7)} ${tUs}`);
      return [`bench/p${p}/s${sensor}`, lines.join('\n')];
    };
    const db = new Database(join(dataDir, 'sluice.db'), { readonly: true, fileMustExist: true });
    const startMs = Date.now();
    const published = await Promise.all(clients.map((c, p) => publishFor(c, PUBLISH_MS, payloadFor(p))));
    const publishedMessages = published.reduce((a, b) => a + b, 0);
    const publishSeconds = (Date.now() - startMs) / 1000;
    const points = publishedMessages * (format === 'json' ? 1 : linesPerMessage);
    await waitUntil(() => committedPoints(db) >= points, 300_000, `${points} committed points (have ${committedPoints(db)})`);
    const seconds = (Date.now() - startMs) / 1000;
    db.close();
    const rss = peakRssMb(agent.pid);
    return {
      case: name,
      protocol: protocolVersion === 5 ? 'MQTT 5' : 'MQTT 3.1.1',
      format,
      points_per_message: format === 'json' ? 1 : linesPerMessage,
      messages: publishedMessages,
      points,
      publish_seconds: publishSeconds,
      seconds,
      messages_per_s: publishedMessages / seconds,
      points_per_s: points / seconds,
      agent_peak_rss_mb: rss,
      target: format === 'influx' ? '≥ 50,000 points/s' : '',
    };
  } finally {
    for (const c of clients) await c.endAsync().catch(() => {});
    if (agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
    }
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Rows for bench/run.mjs's table: one per case. */
export async function mqttBench() {
  const cases = [
    { name: 'influx, 10 lines/message', format: 'influx', protocolVersion: 5, linesPerMessage: 10 },
    { name: 'json, 1 point/message', format: 'json', protocolVersion: 5, linesPerMessage: 1 },
    { name: 'json, 1 point/message', format: 'json', protocolVersion: 4, linesPerMessage: 1 },
  ];
  const rows = [];
  for (const c of cases) rows.push(await runCase(c));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await mqttBench();
  console.table(rows.map((r) => ({ ...r, points_per_s: Math.round(r.points_per_s), messages_per_s: Math.round(r.messages_per_s) })));
}
