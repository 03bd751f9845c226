// Rollup figures: what maintaining rollups costs an import, and how fast queries answer from them.
// Synthetic data (generated here), 4 sensors with a temperature random walk at two decimals:
//   cost:  one value a second for 3 days (1,036,800 points): import with and without 1m/1h rollups;
//   query: one value every 10 s for 30 days (1,036,800 points), one measurement per sensor.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { measured } from './storage.mjs';

const ROOT = new URL('..', import.meta.url).pathname;
const OUT = join(ROOT, 'bench', 'out');
const CLI = join(ROOT, 'bin', 'sluice.js');
const DAY_MS = 86_400_000;
const T0 = Date.UTC(2024, 0, 1);

function syntheticLp(file, stepMs, days, measurementPerSensor) {
  const lines = [];
  let x = [20, 21, 22, 23];
  for (let t = 0; t < days * DAY_MS; t += stepMs) {
    for (let s = 0; s < 4; s++) {
      x[s] += (Math.random() - 0.5) * 0.2;
      lines.push(`${measurementPerSensor ? `room${s}` : 'room'},sensor=s${s} temp=${x[s].toFixed(2)} ${T0 + t}`);
    }
  }
  writeFileSync(file, lines.join('\n') + '\n');
  return lines.length;
}

export async function rollupBench() {
  mkdirSync(OUT, { recursive: true });
  const lp = join(OUT, 'rollup-3d-1s.lp');
  const points = syntheticLp(lp, 1000, 3, false);
  const queryLp = join(OUT, 'rollup-30d-10s.lp');
  syntheticLp(queryLp, 10_000, 30, true);
  const plain = join(OUT, 'rollup-plain');
  const rolled = join(OUT, 'rollup-with');
  rmSync(plain, { recursive: true, force: true });
  rmSync(rolled, { recursive: true, force: true });
  const config = join(OUT, 'rollup.yaml');
  writeFileSync(config, `version: 1\nagent:\n  data_dir: ${rolled}\naggregate:\n  windows: [1m, 1h]\n`);
  const noConfig = join(OUT, 'rollup-none.yaml');
  writeFileSync(noConfig, `version: 1\nagent:\n  data_dir: ${plain}\naggregate:\n  windows: []\nbuffer:\n  when_full: drop_oldest\n`);
  // Best of three each, interleaved, so a busy moment on the machine does not decide the figure.
  let without = Infinity;
  let withRollups = Infinity;
  for (let i = 0; i < 3; i++) {
    rmSync(plain, { recursive: true, force: true });
    rmSync(rolled, { recursive: true, force: true });
    without = Math.min(without, measured(process.execPath, [CLI, 'import', '-c', noConfig, '--precision', 'ms', lp]).seconds);
    withRollups = Math.min(withRollups, measured(process.execPath, [CLI, 'import', '-c', config, '--precision', 'ms', lp]).seconds);
  }
  rmSync(rolled, { recursive: true, force: true });
  measured(process.execPath, [CLI, 'import', '-c', config, '--precision', 'ms', queryLp]);
  const lib = join(OUT, 'bench-lib.mjs');
  await build({ entryPoints: [join(ROOT, 'bench', 'lib.ts')], outfile: lib, bundle: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'warning' });
  const { SqliteRing, queryAggregate } = await import(lib);
  const ring = SqliteRing.open({ dataDir: rolled, maxBytes: 256 * 1024 * 1024, whenFull: 'rollup', commitIntervalMs: 500, readonly: true });
  const time = (fn, runs = 20) => {
    fn();
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const t = process.hrtime.bigint();
      fn();
      samples.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    return samples.sort((a, b) => a - b)[Math.floor(runs / 2)];
  };
  const day = { measurement: 'room0', field: 'temp', fromUs: (T0 + 10 * DAY_MS) * 1000, toUs: (T0 + 11 * DAY_MS) * 1000, functions: ['mean', 'min', 'max'] };
  const oneDay1m = time(() => [...queryAggregate(ring, { ...day, everyUs: 60_000_000 })]);
  const month = { measurement: 'room0', field: 'temp', fromUs: T0 * 1000, toUs: (T0 + 30 * DAY_MS) * 1000, functions: ['mean', 'min', 'max'] };
  const month1h = time(() => [...queryAggregate(ring, { ...month, everyUs: 3_600_000_000 })]);
  const rawDay = time(() => [...queryAggregate(ring, { ...day, everyUs: 120_000_000 })], 5);
  ring.close();
  return {
    points,
    import_s_without_rollups: without,
    import_s_with_rollups: withRollups,
    rollup_cost_pct: (100 * (withRollups - without)) / without,
    query_1day_1m_ms: oneDay1m,
    query_30day_1h_ms: month1h,
    query_1day_2m_from_raw_ms: rawDay,
  };
}

/**
 * Rollups under pressure (issue 12): 20 days of one series at 1 Hz (noisy values, three decimals)
 * imported day by day into a 512 KiB store, `when_full: rollup`, windows 1m and 1h. Reports the
 * bytes on disk (at their peak while importing, and at the end) against the cap, what each tier holds
 * and the time it covers, and what was dropped by reason.
 */
export async function rollupPressureBench() {
  const { spawn } = await import('node:child_process');
  const { statSync } = await import('node:fs');
  mkdirSync(OUT, { recursive: true });
  const dir = join(OUT, 'rollup-pressure');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const capBytes = 512 * 1024;
  const config = join(dir, 'sluice.yaml');
  writeFileSync(config, `version: 1\nagent:\n  data_dir: ${join(dir, 'store')}\nbuffer:\n  max_size: 512KiB\n  when_full: rollup\naggregate:\n  windows: [1m, 1h]\n`);
  const db = join(dir, 'store', 'sluice.db');
  const size = (f) => {
    try {
      return statSync(f).size;
    } catch {
      return 0;
    }
  };
  let peakBytes = 0;
  let peakFiles = {};
  let importSeconds = 0;
  const days = 20;
  for (let day = 0; day < days; day++) {
    const lines = [];
    for (let s = 0; s < 86_400; s++) lines.push(`tank,sensor=a temp=${Math.round(Math.random() * 1e6) / 1e3} ${T0 / 1000 + day * 86_400 + s}`);
    const file = join(dir, 'day.lp');
    writeFileSync(file, lines.join('\n') + '\n');
    const started = process.hrtime.bigint();
    // Polled while the import runs: the cap bounds the files at every moment, not only at the end.
    const child = spawn(process.execPath, [CLI, 'import', '-c', config, '--precision', 's', file], { stdio: ['ignore', 'ignore', 'inherit'] });
    const poll = setInterval(() => {
      const files = { db: size(db), wal: size(db + '-wal'), shm: size(db + '-shm') };
      const bytes = files.db + files.wal + files.shm;
      if (bytes > peakBytes) {
        peakBytes = bytes;
        peakFiles = { ...files, day };
      }
    }, 2);
    const code = await new Promise((resolve) => child.on('exit', resolve));
    clearInterval(poll);
    if (code !== 0) throw new Error(`import of day ${day} exited ${code}`);
    importSeconds += Number(process.hrtime.bigint() - started) / 1e9;
  }
  const status = JSON.parse(measured(process.execPath, [CLI, 'status', '-c', config, '--json']).stdout);
  const day0 = JSON.parse(
    measured(process.execPath, [CLI, 'query', '-c', config, '--measurement', 'tank', '--every', '1h', '--fn', 'count', '--from', String(T0), '--to', String(T0 + DAY_MS), '--json']).stdout,
  );
  const tier = (name) => {
    const t = status.tiers[name];
    return t ? { rows: t.rows, chunks: t.chunks, from: new Date(t.oldest_ms).toISOString(), to: new Date(t.newest_ms).toISOString(), hours: (t.newest_ms - t.oldest_ms) / 3_600_000 } : null;
  };
  return {
    cap_bytes: capBytes,
    peak_store_bytes: peakBytes,
    peak_files: peakFiles,
    store_bytes: status.store_bytes,
    used_bytes: status.used_bytes,
    tiers: { raw: tier('raw'), '1m': tier('1m'), '1h': tier('1h') },
    dropped: status.dropped,
    day0_1h_windows: day0.length,
    import_seconds: importSeconds,
  };
}
