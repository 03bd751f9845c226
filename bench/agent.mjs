// The single binary (build/out/sluice-linux-x64, built if missing): its size, how soon after start it
// stores its first point, and its memory and CPU with the simulator at 1k and 10k points/s.
//
//   start      spawn → first point visible in the store (a read-only poll of the SQLite file from this
//              process), default config timings (commit_interval 500ms); cold = first run of this
//              build on the machine (native addons written to the cache), warm = the median of 5 more
//   memory     /proc/<pid>/status every second; the first 20 s (series created, first compactions and
//              rollups) are left out of "steady". RSS is split into anonymous memory (what the agent
//              allocates) and file pages (the mapped binary: clean, shared, reclaimable)
//   CPU        utime+stime over the steady window, % of one core
//   growth     least-squares slope of RSS over the steady window, MB per minute
//   fresh      raw chunks not yet compacted when the window ends: flat if compaction keeps up
// Each load runs twice: with Node's defaults and with the environment systemd/sluice.service sets.
// SLUICE_BENCH_AGENT_S sets the 10k window (default 120 s; 600 for the 10-minute check), the 1k
// window is a third of it (at least 40 s). SLUICE_BENCH_AGENT_ONLY=<text> runs only the memory runs
// whose label contains it (e.g. "10k points/s, systemd").
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpuSeconds, freePort, memoryMb } from './proc.mjs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const ROOT = new URL('..', import.meta.url).pathname;
const OUT = join(ROOT, 'build/out');
const BIN = join(OUT, 'sluice-linux-x64');
const WINDOW_10K_S = Number(process.env.SLUICE_BENCH_AGENT_S ?? 120);
const WINDOW_1K_S = Math.max(40, Math.round(WINDOW_10K_S / 3));
const WARMUP_S = 20;
const START_TRIALS = 5;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The environment the systemd unit gives the agent (its Environment= lines), so the bench runs it alike. */
function unitEnvironment() {
  const unit = readFileSync(join(ROOT, 'systemd/sluice.service'), 'utf8');
  const env = {};
  for (const line of unit.split('\n')) {
    const m = /^Environment=(.*)$/.exec(line);
    if (!m) continue;
    // systemd quotes a whole assignment: "KEY=value with spaces" KEY2=value
    for (const [, qk, qv, k, v] of m[1].matchAll(/"([A-Z_][A-Z0-9_]*)=([^"]*)"|([A-Z_][A-Z0-9_]*)=(\S*)/g)) env[qk ?? k] = qv ?? v;
  }
  return env;
}

function ensureBinary() {
  if (!existsSync(BIN)) execFileSync(process.execPath, [join(ROOT, 'build/bin.mjs'), 'x64'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  let list = [];
  try {
    list = JSON.parse(readFileSync(join(OUT, 'binaries.json'), 'utf8')).binaries;
  } catch {
    // sizes from the files below
  }
  return ['x64', 'arm64']
    .map((arch) => ({ arch, file: join(OUT, `sluice-linux-${arch}`) }))
    .filter((b) => existsSync(b.file))
    .map((b) => {
      const built = list.find((x) => x.arch === b.arch);
      return { ...b, bytes: statSync(b.file).size, bundleBytes: built?.bundleBytes, jsAssets: built?.jsAssets ?? {} };
    });
}

function writeConfig(dir, { series, intervalMs, port }) {
  const file = join(dir, 'sluice.yaml');
  writeFileSync(
    file,
    `version: 1
agent: { data_dir: ${join(dir, 'data')} }
inputs: { sim: { type: simulator, series: ${series}, interval: ${intervalMs}ms } }
aggregate: { windows: [1m, 1h] }
http: { listen: "127.0.0.1:${port}" }
`,
  );
  return file;
}

/** ms from spawn until the store holds a point. */
async function timeToFirstPoint(nativeDir, { series, intervalMs }) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-start-'));
  const cfg = writeConfig(dir, { series, intervalMs, port: await freePort() });
  const dbFile = join(dir, 'data', 'sluice.db');
  const t0 = performance.now();
  const child = spawn(BIN, ['run', '-c', cfg], { env: { ...process.env, SLUICE_NATIVE_DIR: nativeDir }, stdio: 'ignore' });
  let db;
  try {
    for (;;) {
      if (performance.now() - t0 > 10_000) throw new Error('no point stored within 10 s');
      if (!db && existsSync(dbFile)) {
        try {
          db = new Database(dbFile, { readonly: true, fileMustExist: true });
        } catch {
          db = undefined;
        }
      }
      if (db) {
        try {
          if (db.prepare('SELECT count(*) AS n FROM chunks').get().n > 0) return performance.now() - t0;
        } catch {
          // schema not created yet
        }
      }
      await sleep(2);
    }
  } finally {
    db?.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

function procStatus(pid) {
  const m = memoryMb(pid);
  return { rssMb: m?.rss ?? NaN, anonMb: m?.anon ?? NaN, fileMb: m?.file ?? NaN, cpuS: cpuSeconds(pid) };
}

/**
 * Raw chunks not yet compacted (level 0), read from the live store. Steady when compaction keeps up
 * (a few per series: each series compacts once it has 16); growing when it falls behind.
 */
function uncompactedChunks(file) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT count(*) AS n FROM chunks WHERE level < 2 AND level = 0 AND tier = 0').get().n;
  } finally {
    db.close();
  }
}

function slopePerMinute(samples) {
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((s, p) => s + p.t, 0) / n;
  const my = samples.reduce((s, p) => s + p.y, 0) / n;
  const num = samples.reduce((s, p) => s + (p.t - mx) * (p.y - my), 0);
  const den = samples.reduce((s, p) => s + (p.t - mx) ** 2, 0);
  return den === 0 ? 0 : (num / den) * 60;
}

async function steadyRun({ label, series, intervalMs, windowS, env }) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-agent-'));
  const port = await freePort();
  const cfg = writeConfig(dir, { series, intervalMs, port });
  const child = spawn(BIN, ['run', '-c', cfg], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const samples = [];
  try {
    const start = Date.now();
    let t = 0;
    while (t < WARMUP_S + windowS) {
      await sleep(1000);
      if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode}): ${stderr}`);
      t = (Date.now() - start) / 1000;
      samples.push({ t, ...procStatus(child.pid) });
    }
    const status = await fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.json());
    const fresh = uncompactedChunks(join(dir, 'data', 'sluice.db'));
    const steady = samples.filter((s) => s.t >= WARMUP_S);
    const first = steady[0];
    const last = steady[steady.length - 1];
    const mean = (key) => steady.reduce((s, p) => s + p[key], 0) / steady.length;
    const max = (key) => Math.max(...steady.map((p) => p[key]));
    const sim = status.inputs.sim;
    return {
      run: label,
      'points/s': Math.round(sim.points / ((status.now_ms - status.started_ms) / 1000)),
      'RSS MB mean': mean('rssMb'),
      'RSS MB max': max('rssMb'),
      'anon MB mean': mean('anonMb'),
      'file MB mean': mean('fileMb'),
      'RSS growth MB/min': slopePerMinute(steady.map((s) => ({ t: s.t, y: s.rssMb }))),
      'CPU %': ((last.cpuS - first.cpuS) / (last.t - first.t)) * 100,
      'steady s': Math.round(last.t - first.t),
      'fresh chunks at end': fresh,
      refused: sim.refused,
    };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function agentBench() {
  const binaries = ensureBinary();
  const rows = [];
  for (const b of binaries) {
    rows.push({ figure: `binary size, linux-${b.arch}`, measured: `${(b.bytes / 1048576).toFixed(1)} MiB`, target: 'as small as Node allows', note: b.bundleBytes ? `JS bundle ${(b.bundleBytes / 1048576).toFixed(2)} MiB${Object.entries(b.jsAssets).map(([name, bytes]) => ` + ${name} module ${(bytes / 1048576).toFixed(2)} MiB (run only when used)`).join('')}; the rest is Node (stripped) and the native addons` : '' });
  }

  // Cold: the first run with an empty native-addon cache (the addons are written); warm: the next ones.
  for (const load of [
    { name: '3 series at 1 s', series: 3, intervalMs: 1000 },
    { name: '1,000 series at 10 Hz', series: 1000, intervalMs: 100 },
  ]) {
    const nativeDir = mkdtempSync(join(tmpdir(), 'sluice-bench-native-'));
    try {
      const cold = await timeToFirstPoint(nativeDir, load);
      const warm = [];
      for (let i = 0; i < START_TRIALS; i++) warm.push(await timeToFirstPoint(nativeDir, load));
      warm.sort((a, b) => a - b);
      rows.push({ figure: `first point stored after start, ${load.name} (cold: addons written)`, measured: `${Math.round(cold)} ms`, target: '< 1000 ms', note: 'includes commit_interval 500ms' });
      rows.push({ figure: `first point stored after start, ${load.name} (warm, median of ${START_TRIALS})`, measured: `${Math.round(warm[Math.floor(warm.length / 2)])} ms`, target: '< 1000 ms', note: `max ${Math.round(warm[warm.length - 1])} ms` });
    } finally {
      rmSync(nativeDir, { recursive: true, force: true });
    }
  }

  const unitEnv = unitEnvironment();
  const loads = [
    { name: '1k points/s', series: 100, intervalMs: 100, windowS: WINDOW_1K_S },
    { name: '10k points/s', series: 1000, intervalMs: 100, windowS: WINDOW_10K_S },
  ];
  const runs = [];
  for (const load of loads) {
    for (const [envName, env] of [
      ['Node defaults', {}],
      ['systemd unit env', unitEnv],
    ]) {
      const label = `${load.name}, ${envName}`;
      if (process.env.SLUICE_BENCH_AGENT_ONLY && !label.includes(process.env.SLUICE_BENCH_AGENT_ONLY)) continue;
      runs.push(await steadyRun({ label, ...load, env }));
    }
  }
  const fmt = (n, d = 1) => n.toFixed(d);
  for (const r of runs) {
    rows.push({
      figure: `${r.run}: RSS steady (mean / max)`,
      measured: `${fmt(r['RSS MB mean'])} / ${fmt(r['RSS MB max'])} MB`,
      target: r.run.startsWith('10k') ? '≤ 80 MB' : '',
      note: `anonymous ${fmt(r['anon MB mean'])} MB + binary file pages ${fmt(r['file MB mean'])} MB; ${r['points/s']} points/s, ${r.refused} refused`,
    });
    rows.push({ figure: `${r.run}: RSS growth`, measured: `${fmt(r['RSS growth MB/min'], 2)} MB/min over ${r['steady s']} s`, target: '≈ 0 (not growing)', note: '' });
    rows.push({ figure: `${r.run}: CPU`, measured: `${fmt(r['CPU %'])} % of one core`, target: '', note: `${r['fresh chunks at end']} raw chunks not yet compacted at the end (a few per series while compaction keeps up)` });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await agentBench();
  for (const r of rows) console.log(`${r.figure.padEnd(62)} ${r.measured.padEnd(28)} ${r.target.padEnd(24)} ${r.note}`);
}
