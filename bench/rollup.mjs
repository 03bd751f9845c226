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
