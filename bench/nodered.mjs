// sluice side by side with Node-RED, the tool these users most often run today, in one run of the bench:
// the same MQTT → InfluxDB 1.6.7 flow, the same real mosquitto and InfluxDB (the tests' own helpers),
// the same publisher, one agent after the other (never both at once: 2 cores).
//
// Node-RED is installed by this bench into bench/out/nodered/install (npm `node-red@4` and
// `node-red-contrib-influxdb`, not project dependencies) and runs the flow its users build: an
// `mqtt in` node (QoS 1, parsed JSON, the broker node's defaults) wired to an `influxdb out` node (1.x,
// measurement `plant`, precision ms). sluice runs `bin/sluice.js run` as a user starts it, with an mqtt
// input (QoS 1, json) and an influxdb v1 output, everything else default.
//
// Each message is `{"time": <ms>, "n": <number>, "v": <float>}`, one point, its own timestamp, so the
// count of `n` in InfluxDB is the number of distinct messages stored. Three runs per agent:
//   flood    FLOOD messages (20,000) from 4 publishers as fast as the broker takes them: messages/s
//            from the first publish to the last point in InfluxDB, RSS peak and mean, CPU.
//   outage   RATE messages/s (200) for 90 s; InfluxDB stopped at 10 s for 60 s, then started again.
//   kill -9  RATE messages/s for 30 s; the agent killed with SIGKILL at 10 s and started again 2 s later.
// After publishing, each run waits until the count in InfluxDB has not moved for 10 s (or 120 s).
// Figures: what each has in InfluxDB (lost = published − stored), and the ratios sluice / Node-RED.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { cpuSeconds, freePort, memoryMb } from './proc.mjs';
import { testHelpers } from './test-helpers.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const OUT = join(ROOT, 'bench', 'out', 'nodered');
const CLI = join(ROOT, 'bin', 'sluice.js');
const FLOOD = Number(process.env.SLUICE_BENCH_NODERED_FLOOD ?? 20_000);
const RATE = Number(process.env.SLUICE_BENCH_NODERED_RATE ?? 200);
const OUTAGE_S = Number(process.env.SLUICE_BENCH_NODERED_OUTAGE_S ?? 60);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function installNodeRed() {
  const dir = join(OUT, 'install');
  const redJs = join(dir, 'node_modules', 'node-red', 'red.js');
  if (existsSync(redJs) && existsSync(join(dir, 'node_modules', 'node-red-contrib-influxdb'))) return dir;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'nodered-bench', private: true }));
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', 'node-red@4', 'node-red-contrib-influxdb'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`npm install node-red failed: ${r.stderr}`);
  return dir;
}

/** The agents, each a spawnable process writing to its own database. */
function noderedAgent(installDir, broker, server, db) {
  const userDir = join(OUT, `userdir-${db}`);
  rmSync(userDir, { recursive: true, force: true });
  mkdirSync(userDir, { recursive: true });
  const flows = [
    { id: 'tab', type: 'tab', label: 'bench' },
    { id: 'broker', type: 'mqtt-broker', name: 'mosquitto', broker: '127.0.0.1', port: String(broker.port), clientid: '', autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: true },
    { id: 'in', type: 'mqtt in', z: 'tab', name: '', topic: 'bench/#', qos: '1', datatype: 'json', broker: 'broker', nl: false, rap: true, rh: 0, inputs: 0, wires: [['out']] },
    { id: 'influx', type: 'influxdb', hostname: '127.0.0.1', port: String(server.port), protocol: 'http', database: db, name: '', usetls: false, influxdbVersion: '1.x' },
    { id: 'out', type: 'influxdb out', z: 'tab', influxdb: 'influx', name: '', measurement: 'plant', precision: 'ms', retentionPolicy: '', wires: [] },
  ];
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flows));
  writeFileSync(join(userDir, 'settings.cjs'), `module.exports = { flowFile: 'flows.json', credentialSecret: false, httpAdminRoot: false, httpNodeRoot: false, uiPort: 0, logging: { console: { level: 'warn' } } };\n`);
  const args = [join(installDir, 'node_modules', 'node-red', 'red.js'), '--userDir', userDir, '--settings', join(userDir, 'settings.cjs')];
  return { name: 'Node-RED', spawn: () => spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }) };
}

function sluiceAgent(broker, server, db) {
  const dir = join(OUT, `sluice-${db}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'sluice.yaml');
  writeFileSync(
    config,
    [
      'version: 1',
      `agent: { id: nr, data_dir: ${join(dir, 'data')} }`,
      'http: { listen: "off" }',
      'inputs:',
      `  bus: { type: mqtt, url: "mqtt://127.0.0.1:${broker.port}", topics: ["bench/#"], format: json, json: { time_key: time, time_precision: ms }, qos: 1, measurement: plant }`,
      'outputs:',
      `  influx: { type: influxdb, url: "${server.url}", api: v1, database: ${db} }`,
      '',
    ].join('\n'),
  );
  return { name: 'sluice', spawn: () => spawn(process.execPath, [CLI, 'run', '-c', config], { stdio: ['ignore', 'pipe', 'pipe'] }) };
}

async function count(server, db) {
  try {
    const rows = await server.rows('SELECT count(n) FROM plant', db);
    return rows.length === 0 ? 0 : Number(rows[0].count);
  } catch {
    return null; // InfluxDB stopped
  }
}

/**
 * RSS of the process tree (sluice is a parent that waits and the agent) every 250 ms for the mean; the
 * peak also takes each process's high-water mark (VmHWM), so a spike between two samples counts.
 */
function sampler(getPid) {
  const rss = [];
  let peak = 0;
  const timer = setInterval(() => {
    const pid = getPid();
    const m = pid ? memoryMb(pid) : null;
    if (!m) return;
    rss.push(m.rss);
    peak = Math.max(peak, m.rss, m.peak);
  }, 250);
  return {
    stop() {
      clearInterval(timer);
      return { peak, mean: rss.length ? rss.reduce((a, b) => a + b, 0) / rss.length : 0 };
    },
  };
}

function startProcess(agent) {
  const child = agent.spawn();
  let log = '';
  child.stdout.on('data', (d) => (log = (log + d).slice(-10_000)));
  child.stderr.on('data', (d) => (log = (log + d).slice(-10_000)));
  return { child, log: () => log };
}

async function stopProcess(p, signal = 'SIGTERM') {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill(signal);
  await Promise.race([exited, sleep(20_000).then(() => p.child.kill('SIGKILL'))]);
  await exited;
}

/** Publishes `total` messages (numbered from `first`) at `perSecond`, or as fast as the broker takes them. */
async function publish(broker, total, { perSecond = Infinity, publishers = 1, first = 0, onProgress } = {}) {
  const baseMs = Date.UTC(2026, 0, 1);
  const clients = await Promise.all(Array.from({ length: publishers }, (_, i) => mqtt.connectAsync(broker.url, { clientId: `nr-pub-${i}-${process.pid}-${first}`, reconnectPeriod: 0 })));
  const started = performance.now();
  let sent = 0;
  await Promise.all(
    clients.map(async (c, p) => {
      const pending = [];
      for (let n = first + p; n < first + total; n += publishers) {
        if (perSecond !== Infinity) {
          const dueMs = ((n - first) / perSecond) * 1000;
          const waitMs = dueMs - (performance.now() - started);
          if (waitMs > 0) await sleep(waitMs);
        }
        pending.push(c.publishAsync(`bench/${p}`, JSON.stringify({ time: baseMs + n, n, v: (n % 1000) / 10 }), { qos: 1 }));
        sent++;
        onProgress?.((performance.now() - started) / 1000);
        if (pending.length >= 200) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
    }),
  );
  await Promise.all(clients.map((c) => c.endAsync()));
  return sent;
}

/** Waits until the count has not moved for `quietS` (or `maxS`): what the agent delivered in the end. */
async function settle(server, db, target, { quietS = 10, maxS = 120 } = {}) {
  const deadline = performance.now() + maxS * 1000;
  let last = -1;
  let sinceMs = performance.now();
  for (;;) {
    const n = (await count(server, db)) ?? last;
    if (n !== last) {
      last = n;
      sinceMs = performance.now();
    }
    if (n >= target) return { count: n, at: performance.now() };
    if (performance.now() - sinceMs > quietS * 1000 || performance.now() > deadline) return { count: n, at: sinceMs };
    await sleep(200);
  }
}

/** Starts the agent and waits until a warm-up message reaches InfluxDB (so it is subscribed). */
async function warmUp(agent, broker, server, db) {
  const p = startProcess(agent);
  const deadline = Date.now() + 60_000;
  let n = -1_000_000;
  while (((await count(server, db)) ?? 0) < 1) {
    if (Date.now() > deadline || p.child.exitCode !== null) throw new Error(`${agent.name} took no message: ${p.log().slice(-2000)}`);
    await publish(broker, 1, { first: n++ });
    await sleep(500);
  }
  await sleep(2000);
  return p;
}

async function floodRun(makeAgent, broker, server, db) {
  await server.query(`CREATE DATABASE ${db}`);
  const agent = makeAgent(db);
  const p = await warmUp(agent, broker, server, db);
  const before = (await count(server, db)) ?? 0;
  const cpuBefore = cpuSeconds(p.child.pid);
  const mem = sampler(() => p.child.pid);
  const started = performance.now();
  const published = await publish(broker, FLOOD, { publishers: 4 });
  const done = await settle(server, db, before + FLOOD, { quietS: 15 });
  const seconds = (done.at - started) / 1000;
  const cpu = cpuSeconds(p.child.pid) - cpuBefore;
  const rss = mem.stop();
  await stopProcess(p);
  const stored = done.count - before;
  return { stored, published, seconds, messagesPerS: stored / seconds, rssPeak: rss.peak, rssMean: rss.mean, cpuPct: (100 * cpu) / seconds };
}

async function faultRun(makeAgent, broker, server, db, fault) {
  await server.query(`CREATE DATABASE ${db}`);
  const agent = makeAgent(db);
  let p = await warmUp(agent, broker, server, db);
  const before = (await count(server, db)) ?? 0;
  const seconds = fault === 'outage' ? 30 + OUTAGE_S : 30;
  const total = RATE * seconds;
  let faultStarted = false;
  let faultDone = Promise.resolve();
  const published = await publish(broker, total, {
    perSecond: RATE,
    onProgress: (s) => {
      if (faultStarted || s < 10) return;
      faultStarted = true;
      faultDone = (async () => {
        if (fault === 'outage') {
          await server.stop();
          await sleep(OUTAGE_S * 1000);
          await server.start();
        } else {
          await stopProcess(p, 'SIGKILL');
          await sleep(2000);
          p = startProcess(agent);
        }
      })();
    },
  });
  await faultDone;
  const done = await settle(server, db, before + total, { quietS: 15, maxS: 180 });
  await stopProcess(p);
  return { stored: done.count - before, published };
}

export async function noderedBench() {
  mkdirSync(OUT, { recursive: true });
  const installDir = installNodeRed();
  const h = await testHelpers(['influxdb', 'mosquitto']);
  const [broker, server] = await Promise.all([h.startMosquitto({ global: ['max_queued_messages 0'] }), h.startInfluxdb()]);
  const agents = {
    sluice: (db) => sluiceAgent(broker, server, db),
    'Node-RED': (db) => noderedAgent(installDir, broker, server, db),
  };
  const raw = {};
  try {
    for (const [name, make] of Object.entries(agents)) {
      const key = name === 'sluice' ? 's' : 'nr';
      raw[name] = {
        flood: await floodRun(make, broker, server, `${key}_flood`),
        outage: await faultRun(make, broker, server, `${key}_outage`, 'outage'),
        kill: await faultRun(make, broker, server, `${key}_kill`, 'kill'),
      };
    }
  } finally {
    await server.stop().catch(() => {});
    await broker.stop();
  }
  const s = raw.sluice;
  const n = raw['Node-RED'];
  const r1 = (x) => Math.round(x * 10) / 10;
  const lost = (run) => `${(run.published - run.stored).toLocaleString('en')} of ${run.published.toLocaleString('en')}`;
  const rows = [
    { figure: 'flood: messages/s (first publish → last point in InfluxDB)', sluice: Math.round(s.flood.messagesPerS), 'Node-RED': Math.round(n.flood.messagesPerS), 'sluice / Node-RED': r1(s.flood.messagesPerS / n.flood.messagesPerS), target: '≥ 2×' },
    { figure: 'flood: RSS peak MB', sluice: r1(s.flood.rssPeak), 'Node-RED': r1(n.flood.rssPeak), 'sluice / Node-RED': Math.round((100 * s.flood.rssPeak) / n.flood.rssPeak) / 100, target: '≤ 0.7×' },
    { figure: 'flood: RSS mean MB', sluice: r1(s.flood.rssMean), 'Node-RED': r1(n.flood.rssMean), 'sluice / Node-RED': Math.round((100 * s.flood.rssMean) / n.flood.rssMean) / 100, target: '≤ 0.7×' },
    { figure: 'flood: CPU % of one core', sluice: r1(s.flood.cpuPct), 'Node-RED': r1(n.flood.cpuPct), 'sluice / Node-RED': Math.round((100 * s.flood.cpuPct) / n.flood.cpuPct) / 100, target: '' },
    { figure: 'flood: stored of published', sluice: `${s.flood.stored} of ${s.flood.published}`, 'Node-RED': `${n.flood.stored} of ${n.flood.published}`, 'sluice / Node-RED': '', target: '' },
    { figure: `InfluxDB stopped ${OUTAGE_S} s mid-run: lost`, sluice: lost(s.outage), 'Node-RED': lost(n.outage), 'sluice / Node-RED': '', target: '0 (sluice)' },
    { figure: 'agent kill -9 mid-run: lost', sluice: lost(s.kill), 'Node-RED': lost(n.kill), 'sluice / Node-RED': '', target: '0 (sluice)' },
  ];
  return { rows, raw };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await noderedBench();
  console.table(out.rows);
  console.log(JSON.stringify(out.raw, null, 2));
}
