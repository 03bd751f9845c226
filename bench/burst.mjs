// A burst, then silence (issue 17), end to end with real peers started here (the test helpers
// test/helpers/{mosquitto,influxdb}.ts, bundled on the fly): four `mosquitto_pub -q 1 -l` publish
// 100,000 JSON messages to a real mosquitto as fast as they can, into `sluice run` with an mqtt input
// (QoS 1, acknowledged after commit) and an influxdb v1 output to InfluxDB 1.6.7, then nothing more.
// Figures:
//   - from the last commit (the ring holds every message, so every one is acknowledged) to the last
//     point in InfluxDB (the agent's cursor records InfluxDB's 204s within 100 ms; a count confirms
//     it): the time committed points wait once no new record comes (target ≤ 2 s);
//   - the drain rate of what was still unsent at the last commit (the output alone), against `curl`
//     posting the same line protocol to the same InfluxDB (5000 lines per request, one curl after the
//     other, into its own database) in the same run (target ≥ 0.8×); and, for context, the end-to-end
//     rate from the first message published to the last point in InfluxDB (MQTT ingest included).
// Usage: node bench/burst.mjs (or `node bench/run.mjs burst`); `npm run build` first.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { testHelpers } from './test-helpers.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const OUT = join(ROOT, 'bench', 'out');
const CLI = join(ROOT, 'bin', 'sluice.js');
const MESSAGES = 100_000;
const PUBLISHERS = 4;
const BATCH_LINES = 5000;
const FLUSH_INTERVAL_MS = 1000;

const helpers = () => testHelpers(['influxdb', 'mosquitto']);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function publish(port, topic, lines) {
  return new Promise((resolve, reject) => {
    const child = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-t', topic, '-l'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}: ${stderr}`))));
    child.stdin.end(lines.join('\n') + '\n');
  });
}

async function count(server, db) {
  const rows = await server.rows('SELECT count(v) FROM plant', db);
  return rows.length === 0 ? 0 : Number(rows[0].count);
}

/** `curl` posting `lines` in batches, one request after the other, as a shell loop would. */
function curlPost(server, db, lines, dir) {
  const started = performance.now();
  for (let i = 0; i < lines.length; i += BATCH_LINES) {
    const file = join(dir, `batch-${i}.lp`);
    writeFileSync(file, lines.slice(i, i + BATCH_LINES).join('\n') + '\n');
    const r = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-XPOST', `${server.url}/write?db=${db}&precision=u`, '--data-binary', `@${file}`], { encoding: 'utf8' });
    if (r.stdout !== '204') throw new Error(`curl: ${r.stdout} ${r.stderr}`);
  }
  return (performance.now() - started) / 1000;
}

export async function burstBench() {
  mkdirSync(OUT, { recursive: true });
  const h = await helpers();
  const dir = join(OUT, 'burst');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const [broker, server] = await Promise.all([h.startMosquitto({ global: ['max_queued_messages 0'] }), h.startInfluxdb()]);
  let agent;
  try {
    await server.query('CREATE DATABASE burst');
    await server.query('CREATE DATABASE curl');
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      [
        'version: 1',
        `agent: { id: burst, data_dir: ${dir} }`,
        'http: { listen: "off" }',
        'inputs:',
        '  bus: { type: mqtt, url: "mqtt://127.0.0.1:' + broker.port + '", topics: ["bench/#"], format: json, qos: 1, measurement: plant }',
        'outputs:',
        `  influx: { type: influxdb, url: "${server.url}", api: v1, database: burst, flush_interval: ${FLUSH_INTERVAL_MS}ms }`,
        '',
      ].join('\n'),
    );
    agent = spawn(process.execPath, [CLI, 'run', '-c', config], { stdio: ['ignore', 'pipe', 'inherit'] });
    let logTail = '';
    agent.stdout.on('data', (d) => (logTail = (logTail + d.toString()).slice(-20_000)));
    // Subscribed once a warm-up message is in InfluxDB (a message before the subscription would be lost).
    const warmDeadline = Date.now() + 30_000;
    while ((await count(server, 'burst')) < 1) {
      if (Date.now() > warmDeadline || agent.exitCode !== null) throw new Error(`the agent did not take a message: ${logTail.slice(-2000)}`);
      await publish(broker.port, 'bench/warm', [JSON.stringify({ v: -1, p: -1 })]);
      await sleep(500);
    }
    // A warm-up message still on its way would be counted in the burst: let them all land first.
    await sleep(2000);
    const ring = new Database(join(dir, 'sluice.db'), { readonly: true });
    const stored = () => ring.prepare('SELECT coalesce(sum(rows), 0) AS n FROM chunks WHERE tier = 0').get().n;
    // What InfluxDB acknowledged (so holds), from the agent's cursor: asking InfluxDB for a count over the
    // burst every few ms would cost it the CPU the drain needs. One count confirms it at the end.
    const acknowledged = () => ring.prepare("SELECT sent_points + rejected_points AS n FROM cursors WHERE output = 'influx'").get()?.n ?? 0;
    const total = stored() + MESSAGES;

    const per = MESSAGES / PUBLISHERS;
    const publishStarted = performance.now();
    let publishedS = null;
    const publishing = Promise.all(
      Array.from({ length: PUBLISHERS }, (_, p) => publish(broker.port, `bench/${p}`, Array.from({ length: per }, (_, i) => JSON.stringify({ v: p * per + i, p })))),
    ).then(() => (publishedS = (performance.now() - publishStarted) / 1000));
    let committedS = null;
    let unsentAtCommit = 0;
    let deliveredS = null;
    let frozenMaxS = 0;
    let lastCount = -1;
    let lastChangeS = 0;
    const deadline = performance.now() + 180_000;
    while (deliveredS === null) {
      await sleep(20);
      const s = (performance.now() - publishStarted) / 1000;
      const n = acknowledged();
      if (committedS === null && stored() >= total) {
        committedS = s;
        unsentAtCommit = total - n;
      }
      if (n !== lastCount) {
        lastCount = n;
        lastChangeS = s;
      } else frozenMaxS = Math.max(frozenMaxS, s - lastChangeS);
      if (n >= total && committedS !== null) deliveredS = (performance.now() - publishStarted) / 1000;
      if (performance.now() > deadline) throw new Error(`not delivered in time: ${n} of ${total} in InfluxDB`);
    }
    await publishing;
    ring.close();
    const inInflux = await count(server, 'burst');
    if (inInflux !== total) throw new Error(`the cursor says delivered, InfluxDB holds ${inInflux} of ${total}`);
    const behind = [...logTail.matchAll(/"lag_ms":(\d+)[^\n]*falling behind/g)].map((m) => Number(m[1]));

    // The same line protocol by curl, into its own database on the same server, after InfluxDB settles.
    await sleep(3000);
    const t0 = Date.now() * 1000;
    const lines = Array.from({ length: MESSAGES }, (_, i) => `plant p=${Math.floor(i / per)},v=${i} ${t0 + i}`);
    const curlS = curlPost(server, 'curl', lines, dir);
    const curlCount = await count(server, 'curl');

    const sluiceRate = MESSAGES / deliveredS;
    const curlRate = MESSAGES / curlS;
    const tailRate = unsentAtCommit / Math.max(0.001, deliveredS - committedS);
    return {
      rows: [
        {
          figure: 'last commit → last point in InfluxDB (burst, then silence)',
          measured: `${(deliveredS - committedS).toFixed(2)} s`,
          target: '≤ 2 s',
          note: `${MESSAGES.toLocaleString('en')} QoS 1 messages by ${PUBLISHERS} mosquitto_pub in ${publishedS.toFixed(2)} s; all committed at ${committedS.toFixed(2)} s; InfluxDB count frozen at most ${frozenMaxS.toFixed(2)} s`,
        },
        {
          figure: 'drain rate of what was unsent at the last commit',
          measured: `${Math.round(tailRate).toLocaleString('en')} points/s = ${(tailRate / curlRate).toFixed(2)} × curl ${Math.round(curlRate).toLocaleString('en')} lines/s`,
          target: '≥ 0.8 × curl',
          note: `${unsentAtCommit.toLocaleString('en')} points unsent when the last one was committed; the output alone, without MQTT ingest`,
        },
        {
          figure: 'drain rate of the burst (first publish → last point in InfluxDB)',
          measured: `${Math.round(sluiceRate).toLocaleString('en')} points/s = ${(sluiceRate / curlRate).toFixed(2)} × curl ${Math.round(curlRate).toLocaleString('en')} lines/s`,
          target: '',
          note: `sluice ${deliveredS.toFixed(2)} s end to end (MQTT ingest included); curl ${curlS.toFixed(2)} s for the same ${MESSAGES.toLocaleString('en')} lines in ${BATCH_LINES}-line requests (${curlCount.toLocaleString('en')} stored); "falling behind" lag_ms: ${behind.length ? behind.join(', ') : 'none'}`,
        },
      ],
      publishedS,
      committedS,
      deliveredS,
      frozenMaxS,
      curlS,
      unsentAtCommit,
      fallingBehindLagMs: behind,
    };
  } finally {
    if (agent && agent.exitCode === null) {
      const exited = once(agent, 'exit');
      agent.kill('SIGTERM');
      await exited;
    }
    await Promise.allSettled([broker.stop(), server.close()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await burstBench();
  console.table(result.rows);
  writeFileSync(join(OUT, 'burst.json'), JSON.stringify(result, null, 2) + '\n');
}
