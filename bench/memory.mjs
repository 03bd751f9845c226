// Memory in the modes a user starts the agent, Node's defaults, no NODE_OPTIONS in the environment
// (the agent sets its own limits from agent.memory_limit, default 96MiB: src/cli/limits.ts):
//   node       `node bin/sluice.js run` by hand
//   binary     the single binary (built fresh for x64 into bench/out/bin)
// Both execute themselves again with the limits, one process (under node with the addon npm install
// compiled; where it could not, the agent is a child and its parent waits: the tree is summed).
// SLUICE_BENCH_MEMORY_LAUNCHER=node|binary runs one. Every figure is of the whole process tree, from
// /proc/<pid>/smaps_rollup and /status (bench/proc.mjs):
//   RSS        resident pages of the tree; peak = the sum of each process's VmHWM
//   private    pages only this tree maps (anonymous memory, written pages of files)
//   file       file-backed resident pages (Node's executable and libraries: clean, shared, reclaimable)
//   PSS        shared pages divided among the processes that map them: what the tree costs the machine
//   held       anonymous + the largest file-backed part of one process: the tree's pages counted once
//              (under node, parent and child map the same Node executable)
//
//   steady     simulator, 1,000 series at 10 Hz (10k points/s), SLUICE_BENCH_MEMORY_S (120) seconds
//              after 20 s of warm-up
//   backlog    a real mosquitto (max_queued_messages 0) holds 200,000 QoS 1 messages published while
//              the agent was stopped (persistent session); the agent is started and drains them:
//              peak RSS while draining; messages/s from spawn to the last acknowledgement, and
//              "drain" from the first message received (start-up left out); the intake counters (how often and how long intake held back for its budget)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { cpuSeconds, freePort, memoryMb, smapsMb } from './proc.mjs';
import { startBroker } from './mqtt.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'bin', 'sluice.js');
const BIN_OUT = join(ROOT, 'bench/out/bin');
const STEADY_S = Number(process.env.SLUICE_BENCH_MEMORY_S ?? 120);
const WARMUP_S = 20;
const BACKLOG = Number(process.env.SLUICE_BENCH_BACKLOG ?? 200_000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The environment a user's shell would give: this one without NODE_OPTIONS or MALLOC_ARENA_MAX. */
function userEnv(extra = {}) {
  const env = { ...process.env, SLUICE_LOG_LEVEL: 'warn', ...extra };
  delete env.NODE_OPTIONS;
  delete env.MALLOC_ARENA_MAX;
  return env;
}

/** How each launcher starts `sluice <args>`. The binary is built once per bench run. */
let binaryBuilt = false;
const LAUNCHERS = {
  node: () => [process.execPath, [CLI]],
  binary: () => {
    const file = join(BIN_OUT, 'sluice-linux-x64');
    if (!binaryBuilt) {
      // Its warnings (postject's) stay out of the table; a failed build throws with them.
      execFileSync(process.execPath, [join(ROOT, 'build/bin.mjs'), 'x64'], { cwd: ROOT, env: { ...process.env, SLUICE_BIN_OUT: BIN_OUT }, stdio: ['ignore', 'ignore', 'pipe'] });
      binaryBuilt = true;
    }
    return [file, []];
  },
};

function startAgent(config, dataDir, launcher) {
  const [cmd, pre] = LAUNCHERS[launcher]();
  const child = spawn(cmd, [...pre, 'run', '-c', config, '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'], env: userEnv() });
  let err = '';
  child.stderr.on('data', (d) => (err += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  return { child, exited, stderr: () => err };
}

async function stopAgent(agent) {
  if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGTERM');
  await agent.exited;
}

async function status(port) {
  return fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.json());
}

function sample(pid, t) {
  const s = smapsMb(pid);
  const m = memoryMb(pid);
  return s && m ? { t, rss: s.rss, pss: s.pss, private: s.private, file: s.file, held: s.anon + s.fileMax, peak: m.peak, cpu: cpuSeconds(pid) } : null;
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const round1 = (n) => Math.round(n * 10) / 10;

async function steadyRun(launcher) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-memory-'));
  const port = await freePort();
  const config = join(dir, 'sluice.yaml');
  writeFileSync(config, `version: 1\ninputs: { sim: { type: simulator, series: 1000, interval: 100ms } }\naggregate: { windows: [1m, 1h] }\nhttp: { listen: "127.0.0.1:${port}" }\n`);
  const agent = startAgent(config, join(dir, 'data'), launcher);
  const samples = [];
  try {
    const start = Date.now();
    for (let t = 0; t < WARMUP_S + STEADY_S; t = (Date.now() - start) / 1000) {
      await sleep(1000);
      if (agent.child.exitCode !== null) throw new Error(`the agent exited: ${agent.stderr()}`);
      const s = sample(agent.child.pid, (Date.now() - start) / 1000);
      if (s) samples.push(s);
    }
    const st = await status(port);
    const steady = samples.filter((s) => s.t >= WARMUP_S);
    const first = steady[0];
    const last = steady[steady.length - 1];
    return {
      run: `10k points/s, ${Math.round(last.t - first.t)} s`,
      started: launcher,
      'points/s': Math.round(st.inputs.sim.points / ((st.now_ms - st.started_ms) / 1000)),
      'RSS MB steady mean': round1(mean(steady.map((s) => s.rss))),
      'RSS MB steady max': round1(Math.max(...steady.map((s) => s.rss))),
      'RSS MB peak (HWM)': round1(last.peak),
      'private MB mean': round1(mean(steady.map((s) => s.private))),
      'file MB mean': round1(mean(steady.map((s) => s.file))),
      'PSS MB mean': round1(mean(steady.map((s) => s.pss))),
      'held MB mean / max': `${round1(mean(steady.map((s) => s.held)))} / ${round1(Math.max(...steady.map((s) => s.held)))}`,
      'CPU %': round1(((last.cpu - first.cpu) / (last.t - first.t)) * 100),
      target: '≤ 80 / ≤ 90 MB',
    };
  } finally {
    await stopAgent(agent);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function backlogRun({ name, format, protocolVersion, linesPerMessage }, launcher) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-memory-mqtt-'));
  const broker = await startBroker(dir);
  const port = await freePort();
  const config = join(dir, 'sluice.yaml');
  const dataDir = join(dir, 'data');
  writeFileSync(
    config,
    [
      'version: 1',
      // SLUICE_BENCH_MEMORY_LIMIT sets agent.memory_limit (default: the agent's own default).
      `agent: { id: mem${process.env.SLUICE_BENCH_MEMORY_LIMIT ? `, memory_limit: ${process.env.SLUICE_BENCH_MEMORY_LIMIT}` : ''} }`,
      'buffer: { max_size: 2GiB, when_full: drop_oldest }',
      `http: { listen: "127.0.0.1:${port}" }`,
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
  let agent = startAgent(config, dataDir, launcher);
  const clients = [];
  try {
    const deadline = Date.now() + 30_000;
    while (!broker.log().includes('sluice-mem-bench 1 bench/#')) {
      if (Date.now() > deadline) throw new Error(`no subscription: ${agent.stderr()}`);
      await sleep(50);
    }
    await stopAgent(agent);
    // The backlog, published while the agent is away: the broker keeps it for the persistent session.
    const publishers = 4;
    for (let i = 0; i < publishers; i++) clients.push(await mqtt.connectAsync(broker.url, { clientId: `bench-mem-pub-${i}`, reconnectPeriod: 0 }));
    const baseUs = Date.now() * 1000;
    await Promise.all(
      clients.map(async (c, p) => {
        const per = BACKLOG / publishers;
        const inflight = new Set();
        for (let n = 0; n < per; n++) {
          const sensor = n % 50;
          const tUs = baseUs + Math.floor(n / 50) * 1000;
          const body =
            format === 'json'
              ? JSON.stringify({ t: tUs, temperature: 20 + (n % 100) / 10, humidity: 40 + (n % 7) })
              : Array.from({ length: linesPerMessage }, (_, l) => `env,line=${l} temperature=${20 + ((n + l) % 100) / 10},humidity=${40 + (n % 7)} ${tUs}`).join('\n');
          const pr = c.publishAsync(`bench/p${p}/s${sensor}`, body, { qos: 1 }).finally(() => inflight.delete(pr));
          inflight.add(pr);
          if (inflight.size >= 500) await Promise.race(inflight);
        }
        await Promise.all(inflight);
      }),
    );
    for (const c of clients.splice(0)) await c.endAsync();

    const startMs = Date.now();
    agent = startAgent(config, dataDir, launcher);
    let peakRss = 0;
    let peakPrivate = 0;
    let peakPss = 0;
    let peakHeld = 0;
    let last;
    // When the first message arrived (polled every 20 ms until then): the drain rate leaves start-up out.
    let firstMs;
    for (;;) {
      await sleep(firstMs === undefined ? 20 : 200);
      if (agent.child.exitCode !== null) throw new Error(`the agent exited: ${agent.stderr()}`);
      const s = sample(agent.child.pid, (Date.now() - startMs) / 1000);
      if (s) {
        peakRss = Math.max(peakRss, s.rss, s.peak);
        peakPrivate = Math.max(peakPrivate, s.private);
        peakPss = Math.max(peakPss, s.pss);
        peakHeld = Math.max(peakHeld, s.held);
      }
      last = await status(port).catch(() => last);
      if (firstMs === undefined && (last?.inputs.bench.counters.messages_received ?? 0) > 0) firstMs = Date.now();
      if ((last?.inputs.bench.counters.messages_acked ?? 0) >= BACKLOG) break;
      if (Date.now() - startMs > 600_000) throw new Error('the backlog did not drain in 10 minutes');
    }
    const seconds = (Date.now() - startMs) / 1000;
    const drainS = (Date.now() - (firstMs ?? startMs)) / 1000;
    const c = last.inputs.bench.counters;
    return {
      run: `backlog ${BACKLOG.toLocaleString('en')} QoS 1, ${name}`,
      started: launcher,
      'messages/s': Math.round(BACKLOG / seconds),
      'points/s': Math.round((BACKLOG * linesPerMessage) / seconds),
      'drain messages/s': Math.round(BACKLOG / drainS),
      'drain points/s': Math.round((BACKLOG * linesPerMessage) / drainS),
      'start s': round1(seconds - drainS),
      'RSS MB peak': round1(peakRss),
      'private MB peak': round1(peakPrivate),
      'PSS MB peak': round1(peakPss),
      'held MB peak': round1(peakHeld),
      'intake held back': `${c.intake_holdbacks}× for ${c.intake_held_ms} ms; at most ${round1(c.inflight_bytes_max / 1048576)} of ${round1(last.memory.intake_limit_bytes / 1048576)} MB`,
      'seconds (from spawn)': round1(seconds),
      target: format === 'json' ? '≤ 100 MB; ≥ 40,000 messages/s' : '≤ 100 MB; ≥ 100,000 points/s',
    };
  } finally {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await stopAgent(agent);
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Rows for bench/run.mjs. SLUICE_BENCH_MEMORY_ONLY=steady|backlog runs one kind. */
export async function memoryBench() {
  const only = process.env.SLUICE_BENCH_MEMORY_ONLY;
  const launchers = process.env.SLUICE_BENCH_MEMORY_LAUNCHER ? [process.env.SLUICE_BENCH_MEMORY_LAUNCHER] : ['node', 'binary'];
  const rows = [];
  for (const launcher of launchers) {
    if (!LAUNCHERS[launcher]) throw new Error(`SLUICE_BENCH_MEMORY_LAUNCHER: node or binary, not ${launcher}`);
    if (!only || only === 'steady') rows.push(await steadyRun(launcher));
    // SLUICE_BENCH_MEMORY_ONLY=backlog-json or backlog-influx runs one of the two drains.
    if (!only || only === 'backlog' || only === 'backlog-json') rows.push(await backlogRun({ name: 'JSON, 1 point/message, MQTT 3.1.1', format: 'json', protocolVersion: 4, linesPerMessage: 1 }, launcher));
    if (!only || only === 'backlog' || only === 'backlog-influx') rows.push(await backlogRun({ name: 'line protocol, 10 points/message, MQTT 5', format: 'influx', protocolVersion: 5, linesPerMessage: 10 }, launcher));
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) console.table(await memoryBench());
