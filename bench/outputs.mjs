// Output figures, in one run, against real servers started here (the same helpers the tests use,
// test/helpers/{influxdb,postgres}.ts, bundled on the fly with esbuild):
//   1. drain to InfluxDB 1.6.7: the Beijing dataset imported into a ring, drained by `sluice run` with an
//      influxdb v1 output, against the rate the same server accepts the same line protocol posted by
//      node:http in 5000-line batches (sequential keep-alive requests, as a curl loop would, minus
//      curl's process start). Each side writes its own database (each pays its own shard creation); two
//      rounds each, alternating, best of each.
//   2. drain to PostgreSQL 15 (durable settings) through the timescaledb output, in both layouts (narrow:
//      a row per value; wide: a row per point): the first 100,000 lines of Beijing (about 1.2 million
//      values), values/s and the tables' bytes (indexes included) per value.
//   3. memory against backlog size: the agent's RSS while draining a backlog of 1 million and of 10
//      million synthetic points (one float field, 1000 series) to an HTTP sink that accepts everything,
//      both at the same pace (max_rate 50,000 points/s, 15 s sampled): memory follows the drain rate
//      (buffers in flight, garbage between collections), so only an equal rate isolates the backlog.
// Usage: node bench/outputs.mjs (or through bench/run.mjs); `npm run build` first.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { once } from 'node:events';
import Database from 'better-sqlite3';
import { memoryMb } from './proc.mjs';
import { testHelpers } from './test-helpers.mjs';
import { datasetLineProtocol, measured } from './storage.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const OUT = join(ROOT, 'bench', 'out');
const CLI = join(ROOT, 'bin', 'sluice.js');
const BATCH_LINES = 5000;
const MEMORY_RATE = 50_000;

const helpers = () => testHelpers(['influxdb', 'postgres']);

function post(agent, url, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'text/plain' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`${res.statusCode} ${text}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What the server accepts from plain HTTP posting of the same lines, 5000 per request. */
async function baseline(server, db, lines) {
  await server.query(`CREATE DATABASE ${db}`);
  const agent = new http.Agent({ keepAlive: true });
  const started = performance.now();
  for (let i = 0; i < lines.length; i += BATCH_LINES) {
    await post(agent, `${server.url}/write?db=${db}&precision=ms`, lines.slice(i, i + BATCH_LINES).join('\n'));
  }
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { seconds, linesPerS: lines.length / seconds };
}

function writeConfig(dir, output) {
  const file = join(dir, 'sluice.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      `agent: { id: bench, data_dir: ${dir}, commit_interval: 500ms }`,
      'buffer: { max_size: 2GiB, when_full: drop_oldest }',
      'aggregate: { windows: [] }',
      'http: { listen: "off" }',
      'outputs:',
      '  up:',
      ...output.map((l) => '    ' + l),
      '',
    ].join('\n'),
  );
  return file;
}

const rssMb = (pid) => memoryMb(pid)?.rss ?? null;

/**
 * Runs `sluice run` on a data dir until the output's cursor holds `points` (or `stopAfterS`), sampling
 * RSS. Returns seconds from spawn to done, from the agent's "sluice started" log line to done (the
 * drain itself, without Node's start and module loading), and the RSS samples.
 */
async function drain(dir, configFile, points, { stopAfterS = Infinity } = {}) {
  const db = new Database(join(dir, 'sluice.db'), { readonly: true });
  const done = () => {
    try {
      const row = db.prepare("SELECT sent_points + rejected_points AS n FROM cursors WHERE output = 'up'").get();
      return row ? row.n : 0;
    } catch {
      return 0;
    }
  };
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'run', '-c', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let startedS = null;
  let logTail = '';
  child.stdout.on('data', (d) => {
    logTail = (logTail + d.toString()).slice(-4000);
    if (startedS === null && logTail.includes('"msg":"sluice started"')) startedS = (performance.now() - started) / 1000;
  });
  const rss = [];
  let firstProgressS = null;
  let lastRssMs = 0;
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const n = done();
    const s = (performance.now() - started) / 1000;
    if (s * 1000 - lastRssMs >= 200) {
      lastRssMs = s * 1000;
      const mb = rssMb(child.pid);
      if (mb !== null) rss.push({ s, mb, n });
    }
    if (firstProgressS === null && n > 0) firstProgressS = s;
    if (n >= points || s >= stopAfterS) break;
    if (child.exitCode !== null) throw new Error(`sluice run exited with ${child.exitCode} before the drain was done`);
  }
  const seconds = (performance.now() - started) / 1000;
  const delivered = done();
  if (child.exitCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
  db.close();
  return { seconds, startedS, drainS: seconds - (startedS ?? 0), firstProgressS, delivered, rss };
}

function importFile(dir, file, precision) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const run = measured(process.execPath, [CLI, 'import', '--data-dir', dir, '--precision', precision, file]);
  return JSON.parse(run.stdout.trim().split('\n').pop());
}

async function influxBench(h) {
  const lp = datasetLineProtocol('beijing');
  const lines = readFileSync(lp, 'utf8').split('\n').filter(Boolean);
  const server = await h.startInfluxdb();
  try {
    const rounds = [];
    // InfluxDB compacts what it was just sent in the background, which slows whoever writes next: the
    // order alternates between rounds, and each run starts after a pause.
    const settle = () => new Promise((r) => setTimeout(r, 5000));
    for (let round = 1; round <= 2; round++) {
      const dir = join(OUT, `drain-influx-${round}`);
      const summary = importFile(dir, lp, 'ms');
      await server.query(`CREATE DATABASE sluice${round}`);
      const cfg = writeConfig(dir, ['type: influxdb', `url: ${server.url}`, 'api: v1', `database: sluice${round}`, `batch_size: ${BATCH_LINES}`, 'gzip: false']);
      let base;
      let d;
      if (round % 2 === 1) {
        await settle();
        base = await baseline(server, `baseline${round}`, lines);
        await settle();
        d = await drain(dir, cfg, summary.points);
      } else {
        await settle();
        d = await drain(dir, cfg, summary.points);
        await settle();
        base = await baseline(server, `baseline${round}`, lines);
      }
      rounds.push({ base, d, points: summary.points, values: summary.values });
      rmSync(dir, { recursive: true, force: true });
    }
    const best = (f) => rounds.reduce((a, b) => (f(b) > f(a) ? b : a));
    const baseBest = Math.max(...rounds.map((r) => r.base.linesPerS));
    const drainBest = best((r) => r.points / r.d.drainS);
    const check = await server.rows('SELECT COUNT("PM2.5") FROM air_quality', 'sluice1');
    return {
      dataset: `beijing (${lines.length} lines, ${rounds[0].values} values)`,
      baseline_lines_per_s: baseBest,
      sluice_points_per_s: drainBest.points / drainBest.d.drainS,
      sluice_points_per_s_with_process_start: drainBest.points / drainBest.d.seconds,
      ratio: drainBest.points / drainBest.d.drainS / baseBest,
      rounds: rounds.map((r) => ({ baseline_s: r.base.seconds, sluice_drain_s: r.d.drainS, sluice_process_s: r.d.seconds, sluice_started_s: r.d.startedS })),
      sluice1_pm25_count: check[0]?.count,
    };
  } finally {
    await server.close();
  }
}

/** Bytes of every table of the database's public schema, indexes and TOAST included. */
const TABLE_BYTES_SQL = `SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint::text AS b FROM pg_class
WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace`;

async function postgresBench(h) {
  const lp = datasetLineProtocol('beijing');
  const subset = join(OUT, 'beijing-100k.lp');
  if (!existsSync(subset)) writeFileSync(subset, readFileSync(lp, 'utf8').split('\n').slice(0, 100_000).join('\n') + '\n');
  const pg = await h.startPostgres({ durable: true });
  try {
    const layouts = {};
    // Each layout in its own database; wide writes a table per measurement (air_quality here).
    for (const [layout, table, keys] of [
      ['narrow', 'sensor_data', ['layout: narrow', 'table: sensor_data']],
      ['wide', 'air_quality', ['layout: wide']],
    ]) {
      await pg.query(`CREATE DATABASE ${layout}`);
      const url = pg.url.replace(/\/postgres$/, `/${layout}`);
      const dir = join(OUT, `drain-pg-${layout}`);
      rmSync(dir, { recursive: true, force: true });
      const summary = importFile(dir, subset, 'ms');
      const cfg = writeConfig(dir, ['type: timescaledb', `url: ${url}`, ...keys, `batch_size: ${BATCH_LINES}`]);
      const d = await drain(dir, cfg, summary.points);
      const client = new (await import('pg')).default.Client({ connectionString: url });
      await client.connect();
      try {
        const [{ n }] = (await client.query(`SELECT count(*)::int AS n FROM ${table}`)).rows;
        const [{ b }] = (await client.query(TABLE_BYTES_SQL)).rows;
        layouts[layout] = {
          dataset: `beijing, first 100,000 lines (${summary.points} points, ${summary.values} values)`,
          values_per_s: summary.values / d.drainS,
          values_per_s_with_process_start: summary.values / d.seconds,
          seconds: d.drainS,
          rows_in_table: n,
          table_bytes: Number(b),
          bytes_per_value: Number(b) / summary.values,
        };
      } finally {
        await client.end();
      }
      rmSync(dir, { recursive: true, force: true });
    }
    return layouts;
  } finally {
    await pg.close();
  }
}

/** Synthetic line protocol: `points` points, one float field, 1000 series, 1 s apart per series. */
async function syntheticFile(points) {
  const file = join(OUT, `synthetic-${points}.lp`);
  if (existsSync(file)) return file;
  const out = createWriteStream(file);
  const t0 = 1_600_000_000_000;
  let buf = [];
  for (let i = 0; i < points; i++) {
    const s = i % 1000;
    buf.push(`synth,sensor=s${s} v=${((i * 7919) % 100000) / 100} ${t0 + Math.floor(i / 1000) * 1000}`);
    if (buf.length === 50_000) {
      if (!out.write(buf.join('\n') + '\n')) await once(out, 'drain');
      buf = [];
    }
  }
  out.write(buf.join('\n') + '\n');
  out.end();
  await once(out, 'finish');
  return file;
}

async function memoryBench() {
  // An upstream that takes everything at once: the agent's own memory is what is measured.
  const sink = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(204);
      res.end();
    });
  });
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  const url = `http://127.0.0.1:${sink.address().port}`;
  const rows = [];
  try {
    for (const points of [1_000_000, 10_000_000]) {
      const file = await syntheticFile(points);
      const dir = join(OUT, `drain-mem-${points}`);
      const t = performance.now();
      const summary = importFile(dir, file, 'ms');
      const importS = (performance.now() - t) / 1000;
      const storeMb = ['sluice.db', 'sluice.db-wal'].reduce((n, f) => n + (existsSync(join(dir, f)) ? statSync(join(dir, f)).size : 0), 0) / 2 ** 20;
      const cfg = writeConfig(dir, ['type: influxdb', `url: ${url}`, 'api: v1', 'database: sink', 'batch_size: 5000', 'gzip: false', `max_rate: ${MEMORY_RATE}`]);
      const d = await drain(dir, cfg, summary.points, { stopAfterS: 15 });
      const steady = d.rss.filter((r) => r.s >= 3).map((r) => r.mb);
      rows.push({
        backlog_points: summary.points,
        import_s: importS,
        store_mb: storeMb,
        drained_points_in_window: d.delivered,
        window_s: d.seconds,
        rss_peak_mb: Math.max(...d.rss.map((r) => r.mb)),
        rss_steady_median_mb: steady.sort((a, b) => a - b)[Math.floor(steady.length / 2)] ?? null,
      });
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    sink.close();
  }
  return rows;
}

/** Rows for the results table: figure, measured, target, note. */
export async function outputsBench(which = ['influxdb', 'postgres', 'memory']) {
  mkdirSync(OUT, { recursive: true });
  const h = await helpers();
  const out = { rows: [] };
  if (which.includes('influxdb')) {
    const r = (out.influxdb = await influxBench(h));
    out.rows.push({
      figure: 'drain to InfluxDB 1.6.7 (api v1, beijing)',
      measured: `${Math.round(r.sluice_points_per_s).toLocaleString('en')} points/s = ${r.ratio.toFixed(2)} × baseline ${Math.round(r.baseline_lines_per_s).toLocaleString('en')} lines/s`,
      target: '≥ 0.8 × baseline',
      note: `from "sluice started" to drained; ${Math.round(r.sluice_points_per_s_with_process_start).toLocaleString('en')} points/s with Node's start included`,
    });
  }
  if (which.includes('postgres')) {
    const layouts = (out.postgres = await postgresBench(h));
    for (const [layout, r] of Object.entries(layouts)) {
      out.rows.push({
        figure: `drain to PostgreSQL 15 (timescaledb output, layout ${layout})`,
        measured: `${Math.round(r.values_per_s).toLocaleString('en')} values/s, ${r.bytes_per_value.toFixed(1)} bytes/value`,
        target: '≥ 50,000 values/s',
        note: `${r.dataset}; ${r.rows_in_table.toLocaleString('en')} rows, ${(r.table_bytes / 2 ** 20).toFixed(1)} MB table + indexes; ${Math.round(r.values_per_s_with_process_start).toLocaleString('en')} values/s with Node's start included`,
      });
    }
  }
  if (which.includes('memory')) {
    const rows = (out.memory = await memoryBench());
    for (const r of rows) {
      out.rows.push({
        figure: `agent RSS draining a ${r.backlog_points.toLocaleString('en')}-point backlog`,
        measured: `peak ${r.rss_peak_mb.toFixed(0)} MB, steady ${r.rss_steady_median_mb?.toFixed(0)} MB`,
        target: 'independent of backlog size',
        note: `${r.drained_points_in_window.toLocaleString('en')} points drained at max_rate ${MEMORY_RATE.toLocaleString('en')}/s in the ${r.window_s.toFixed(0)} s sampled; store ${r.store_mb.toFixed(0)} MB`,
      });
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const which = process.argv.slice(2);
  const result = await outputsBench(which.length ? which : undefined);
  console.table(result.rows);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'outputs.json'), JSON.stringify(result, null, 2) + '\n');
}
