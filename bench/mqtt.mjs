// MQTT ingest: a real mosquitto on loopback, the real agent (built CLI) subscribed with QoS 1, and
// several mqtt.js publishers publishing QoS 1 as fast as the broker takes it for ~10 s. The figure is
// points committed into the ring per second, from the first publish to the moment the last point is
// committed (so a backlog left in the broker counts against it); every published point must arrive.
// Acknowledgements go out only after commit, as always.
import { spawn, spawnSync } from 'node:child_process';
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

export async function startBroker(dir) {
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
export function publishFor(client, ms, payload) {
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

// ------------------------------------------------------------------------------ SIGKILL loop
//
// The agent (built CLI) with four inputs (MQTT 3.1.1 and 5, QoS 1 and 2) killed with SIGKILL
// SLUICE_BENCH_KILLS times (100) and restarted, while one publisher per input sends numbered JSON
// messages without a time (SLUICE_BENCH_CRASH_MESSAGES, 20,000 each), released evenly over the kill
// cycles. Afterwards `sluice export` says how many rows each message number has: 0 is lost, 2+ stored
// twice. The figure is "duplicates / lost over N SIGKILLs" per input.
const KILLS = Number(process.env.SLUICE_BENCH_KILLS ?? 100);
const CRASH_MESSAGES = Number(process.env.SLUICE_BENCH_CRASH_MESSAGES ?? 20_000);

/** Publishes numbered messages while `quota()` allows, at most `perS` a second; resolves when `count` are acknowledged. */
function publishNumbered(client, topic, qos, count, quota, perS) {
  return (async () => {
    const inflight = new Set();
    for (let n = 0; n < count; n++) {
      while (n >= quota()) await sleep(20);
      const p = client.publishAsync(topic, JSON.stringify({ n }), { qos }).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= 50) await Promise.race(inflight);
      if (n % Math.max(1, Math.round(perS / 50)) === 0) await sleep(20);
    }
    await Promise.all(inflight);
  })();
}

function startAgent(config, dataDir) {
  const child = spawn(process.execPath, [CLI, 'run', '-c', config, '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_LOG_LEVEL: 'info' } });
  let out = '';
  child.stdout.on('data', (d) => (out += d.toString()));
  child.stderr.on('data', (d) => (out += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  return { child, exited, output: () => out };
}

function rowsPerNumber(dataDir, measurement) {
  const out = spawnSync(process.execPath, [CLI, 'export', '--data-dir', dataDir, '--measurement', measurement], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (out.status !== 0) throw new Error(`sluice export failed: ${out.stderr}`);
  const counts = new Map();
  for (const line of out.stdout.split('\n')) {
    const m = / n=(\d+)(?:,| )/.exec(line);
    if (m) counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1);
  }
  return counts;
}

/** Rows for bench/run.mjs: one per protocol and QoS. */
export async function mqttCrashBench() {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-mqtt-crash-'));
  const broker = await startBroker(dir);
  const dataDir = join(dir, 'data');
  const config = join(dir, 'sluice.yaml');
  const cases = [
    { protocolVersion: 4, qos: 1 },
    { protocolVersion: 4, qos: 2 },
    { protocolVersion: 5, qos: 1 },
    { protocolVersion: 5, qos: 2 },
  ].map((c) => ({ ...c, id: `c${c.protocolVersion}${c.qos}` }));
  writeFileSync(
    config,
    [
      'version: 1',
      'agent: { id: bench-crash }',
      'buffer: { max_size: 256MiB, when_full: drop_oldest }',
      'inputs:',
      ...cases.flatMap((c) => [`  ${c.id}:`, '    type: mqtt', `    url: ${broker.url}`, `    topics: ["crash/${c.id}"]`, '    format: json', `    qos: ${c.qos}`, `    protocol_version: ${c.protocolVersion}`, `    measurement: ${c.id}`]),
      '',
    ].join('\n'),
  );
  const clients = [];
  let agent;
  const startMs = Date.now();
  try {
    agent = startAgent(config, dataDir);
    await waitUntil(() => cases.every((c) => new RegExp(`sluice-bench-crash-${c.id} \\d crash/${c.id}`).test(broker.log())), 30_000, 'the subscriptions');
    let cycle = 0;
    const quota = () => Math.ceil((CRASH_MESSAGES * (cycle + 1)) / (KILLS + 1));
    const published = [];
    for (const c of cases) {
      const client = await mqtt.connectAsync(broker.url, { clientId: `bench-crash-pub-${c.id}`, protocolVersion: c.protocolVersion, reconnectPeriod: 0 });
      clients.push(client);
      published.push(publishNumbered(client, `crash/${c.id}`, c.qos, CRASH_MESSAGES, quota, 400));
    }
    for (; cycle < KILLS; cycle++) {
      if (cycle > 0) agent = startAgent(config, dataDir);
      await waitUntil(() => agent.output().split('"msg":"connected to the MQTT broker"').length - 1 >= cases.length, 30_000, `the agent's connections (cycle ${cycle})`);
      await sleep(200 + Math.random() * 600);
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
    agent = startAgent(config, dataDir);
    await Promise.all(published);
    // Every number stored at least once (copies do not count), checked every few seconds.
    const deadline = Date.now() + 300_000;
    while (!cases.every((c) => rowsPerNumber(dataDir, c.id).size >= CRASH_MESSAGES)) {
      if (Date.now() > deadline) throw new Error('timed out waiting for every message in the store');
      await sleep(3000);
    }
    agent.child.kill('SIGTERM');
    await agent.exited;
    const seconds = (Date.now() - startMs) / 1000;
    return cases.map((c) => {
      const counts = rowsPerNumber(dataDir, c.id);
      let lost = 0;
      let duplicates = 0;
      for (let n = 0; n < CRASH_MESSAGES; n++) {
        const k = counts.get(n) ?? 0;
        if (k === 0) lost++;
        else duplicates += k - 1;
      }
      return {
        case: `MQTT ${c.protocolVersion === 5 ? '5' : '3.1.1'} QoS ${c.qos}`,
        messages: CRASH_MESSAGES,
        sigkills: KILLS,
        rows: [...counts.values()].reduce((a, b) => a + b, 0),
        [`duplicates / lost over ${KILLS} SIGKILLs`]: `${duplicates} / ${lost}`,
        target: '0 / 0',
        run_seconds: seconds,
      };
    });
  } finally {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    if (agent && agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv[2] === 'crash') {
  console.table(await mqttCrashBench());
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await mqttBench();
  console.table(rows.map((r) => ({ ...r, points_per_s: Math.round(r.points_per_s), messages_per_s: Math.round(r.messages_per_s) })));
}
