// OPC UA subscription cost: the node-opcua test server (drivers/opcua/testing/server.mjs) with 1,000
// Double variables whose values the bench changes, and the real agent (built CLI) subscribed to them:
//   - 1,000 monitored items sampled and published every 1 s, every value changing every second;
//   - 100 monitored items sampled and published every 100 ms, every value changing every 100 ms.
// The figures are the agent's CPU time (utime + stime from /proc/<pid>/stat) over the steady part of
// the run as a percentage of one core, its RSS at the start and the end of it, and the values it
// stored against those the server produced meanwhile. Session set-up (and the client certificate made
// on first start) is excluded: the clock starts once the agent logged its session and a warm-up passed.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cpuSeconds, freePort, memoryMb } from './proc.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'bin', 'sluice.js');
const SERVER = join(ROOT, 'drivers', 'opcua', 'testing', 'server.mjs');
const MEASURE_MS = Number(process.env.SLUICE_BENCH_OPCUA_MS ?? 20_000);
const WARMUP_MS = 3000;
const ITEMS = 1000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssMb = (pid) => memoryMb(pid)?.rss ?? NaN;

async function startServer(dir, port) {
  const proc = spawn(process.execPath, [SERVER, JSON.stringify({ port, pki: join(dir, 'server-pki'), items: ITEMS })], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const answers = [];
  const lines = createInterface({ input: proc.stdout });
  await new Promise((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`OPC UA server exited (${code}): ${stderr}`)));
    lines.on('line', (line) => {
      if (!line.startsWith('{"')) return;
      if (line.includes('"ready"')) resolve();
      else answers.push(line);
    });
  });
  return {
    proc,
    url: `opc.tcp://127.0.0.1:${port}/sluice`,
    tick: (count, value) => proc.stdin.write(JSON.stringify({ tick: { from: 0, count, value } }) + '\n'),
    failures: () => answers.filter((a) => !a.includes('"ok":true')).length,
  };
}

/** Values in the store so far (`sluice status` works beside a running agent). */
function storedValues(data) {
  return JSON.parse(execFileSync(process.execPath, [CLI, 'status', '--json', '--data-dir', data], { encoding: 'utf8' })).values;
}

async function scenario(server, dir, { items, intervalMs, label }) {
  const data = join(dir, `data-${items}`);
  const cfg = join(dir, `bench-${items}.yaml`);
  const nodes = Array.from({ length: items }, (_, i) => `      - { name: v${i}, node_id: "ns=1;s=Bench.${i}" }`);
  writeFileSync(
    cfg,
    [
      'version: 1',
      'agent: { id: bench }',
      'http: { listen: "off" }',
      'inputs:',
      '  plc:',
      '    type: opcua',
      `    url: ${server.url}`,
      `    publishing_interval: ${intervalMs}ms`,
      '    timestamp: source',
      '    nodes:',
      ...nodes.map((n) => n.replace(' }', `, sampling_interval: ${intervalMs}ms }`)),
      '',
    ].join('\n'),
  );
  const agent = spawn(process.execPath, [CLI, 'run', '-c', cfg, '--data-dir', data], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  agent.stdout.on('data', (d) => (log += d));
  agent.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => agent.once('exit', (code) => resolve(code)));
  let tick = 0;
  const ticker = setInterval(() => server.tick(items, ++tick + 0.5), intervalMs);
  try {
    const deadline = Date.now() + 60_000;
    while (!log.includes('connected to the OPC UA server')) {
      if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`the agent did not connect:\n${log}`);
      await sleep(100);
    }
    await sleep(WARMUP_MS);
    const cpu0 = cpuSeconds(agent.pid);
    const server0 = cpuSeconds(server.proc.pid);
    const tick0 = tick;
    const stored0 = storedValues(data);
    const t0 = performance.now();
    const rss = [rssMb(agent.pid)];
    while (performance.now() - t0 < MEASURE_MS) {
      await sleep(1000);
      rss.push(rssMb(agent.pid));
    }
    const wallS = (performance.now() - t0) / 1000;
    const cpuPct = ((cpuSeconds(agent.pid) - cpu0) / wallS) * 100;
    const serverPct = ((cpuSeconds(server.proc.pid) - server0) / wallS) * 100;
    const ticks = tick - tick0;
    clearInterval(ticker);
    // The last changes are committed within a commit interval; the status is read after it.
    await sleep(1000);
    const stored = storedValues(data) - stored0;
    agent.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) throw new Error(`agent exited ${code}:\n${log}`);
    const warnings = log.split('\n').filter((l) => /"level":(40|50)/.test(l)).length;
    return {
      figure: label,
      items,
      interval_ms: intervalMs,
      seconds: Math.round(wallS * 10) / 10,
      agent_cpu_pct_one_core: cpuPct,
      agent_rss_mb_start: rss[0],
      agent_rss_mb_end: rss.at(-1),
      agent_rss_mb_max: Math.max(...rss),
      server_cpu_pct_one_core: serverPct,
      values_changed_per_s: (ticks * items) / wallS,
      values_stored_per_s: stored / wallS,
      warnings_logged: warnings,
    };
  } finally {
    clearInterval(ticker);
    if (agent.exitCode === null) agent.kill('SIGKILL');
  }
}

export async function opcuaBench() {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-opcua-'));
  const server = await startServer(dir, await freePort());
  try {
    const rows = [];
    rows.push(await scenario(server, dir, { items: 1000, intervalMs: 1000, label: 'opcua subscribe: 1,000 monitored items at 1 s' }));
    rows.push(await scenario(server, dir, { items: 100, intervalMs: 100, label: 'opcua subscribe: 100 monitored items at 100 ms' }));
    if (server.failures() > 0) throw new Error(`${server.failures()} server commands failed`);
    return rows;
  } finally {
    server.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// `node bench/opcua.mjs` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await opcuaBench(), null, 2));
}
