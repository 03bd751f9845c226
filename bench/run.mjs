// `npm run bench`: every performance target measured in one run (each row carries its target), printed as a table and
// written to bench/out/results.json. Targets live here, never in timed tests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { storageBench } from './storage.mjs';
import { rollupBench, rollupPressureBench } from './rollup.mjs';

/** The optional sections: each returns rows (objects) printed as a table with one column per key. */
const SECTIONS = [
  ['mqtt', 'MQTT ingest from a real mosquitto (QoS 1, acknowledged after commit)', './mqtt.mjs', 'mqttBench'],
  ['mqtt-crash', 'MQTT: the agent killed with SIGKILL while messages flow (duplicates / lost; 4 inputs, one agent)', './mqtt.mjs', 'mqttCrashBench'],
  ['modbus', 'Modbus TCP polling against pymodbus', './modbus.mjs', 'modbusBench'],
  ['opcua', 'OPC UA subscriptions against the node-opcua server: 1,000 items at 1 s, 100 items at 100 ms', './opcua.mjs', 'opcuaBench'],
  ['outputs', 'Drain to real InfluxDB 1.6.7 and PostgreSQL 15; memory with a backlog', './outputs.mjs', 'outputsBench'],
  ['burst', 'A burst, then silence: MQTT → sluice → real InfluxDB 1.6.7, against curl', './burst.mjs', 'burstBench'],
  ['agent', 'The binary: size, start, memory and CPU', './agent.mjs', 'agentBench'],
  ['nodered', 'Side by side with Node-RED: the same MQTT → InfluxDB 1.6.7 flow, flood, InfluxDB outage, kill -9', './nodered.mjs', 'noderedBench'],
  ['memory', 'Memory as a user starts it (bin/sluice.js by hand and the binary, no NODE_OPTIONS): 10k points/s, a 200,000-message MQTT backlog', './memory.mjs', 'memoryBench'],
];

const OUT = new URL('./out/', import.meta.url).pathname;
const only = process.argv.slice(2);
const want = (name) => only.length === 0 || only.includes(name);

function table(rows, columns) {
  const head = columns.map((c) => c[0]);
  const body = rows.map((r) => columns.map(([, f]) => f(r)));
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}

const fmt = (n, d = 2) => (typeof n === 'number' ? n.toLocaleString('en', { maximumFractionDigits: d, minimumFractionDigits: d }) : String(n));
const results = { machine: { cpus: (await import('node:os')).cpus().length, node: process.version }, at: new Date().toISOString() };

if (want('storage')) {
  results.storage = await storageBench();
  const targets = { beijing: { bits: 6, bytes: 1.0 }, skab: { bits: 14 }, nab: {} };
  console.log('\n## Storage and import (datasets from ../shared/data)\n');
  console.log(
    table(results.storage, [
      ['dataset', (r) => r.dataset],
      ['values', (r) => r.values.toLocaleString('en')],
      ['chunk bits/value', (r) => fmt(r.chunk_bits_per_value) + (targets[r.dataset]?.bits ? ` (≤ ${targets[r.dataset].bits})` : '')],
      ['store bytes/value', (r) => fmt(r.store_bytes_per_value, 3) + (targets[r.dataset]?.bytes ? ` (≤ ${targets[r.dataset].bytes})` : '')],
      ['gzip -6 bits/value', (r) => fmt(r.gzip6_bits_per_value)],
      ['naive SQLite bytes/value', (r) => fmt(r.naive_sqlite_bytes_per_value, 1)],
      ['import values/s', (r) => Math.round(r.import_values_per_s).toLocaleString('en') + ' (≥ 500,000)'],
      ['naive insert values/s', (r) => Math.round(r.naive_insert_values_per_s).toLocaleString('en')],
      ['import peak RSS MB', (r) => fmt(r.import_peak_rss_mb, 0) + ' (≤ 150)'],
    ]),
  );
}

if (want('rollup')) {
  const r = (results.rollup = await rollupBench());
  console.log('\n## Rollups (synthetic, 1m and 1h windows; cost: 4 series at 1 s for 3 days; queries: 10 s data over 30 days)\n');
  console.log(
    table(
      [
        ['points imported', r.points.toLocaleString('en'), ''],
        ['import without rollups', fmt(r.import_s_without_rollups) + ' s', ''],
        ['import with rollups', fmt(r.import_s_with_rollups) + ' s', ''],
        ['rollup maintenance cost', fmt(r.rollup_cost_pct, 1) + ' %', '≤ 15 %'],
        ['1-day 1m query, one series (rollups)', fmt(r.query_1day_1m_ms) + ' ms', '≤ 20 ms'],
        ['30-day 1h query, one series (rollups)', fmt(r.query_30day_1h_ms) + ' ms', '≤ 50 ms'],
        ['1-day 2m query, one series (from raw)', fmt(r.query_1day_2m_from_raw_ms) + ' ms', ''],
      ],
      [
        ['figure', (x) => x[0]],
        ['measured', (x) => x[1]],
        ['target', (x) => x[2]],
      ],
    ),
  );
}

if (want('rollup-pressure')) {
  const r = (results.rollup_pressure = await rollupPressureBench());
  const kib = (n) => fmt(n / 1024, 0) + ' KiB';
  const pct = (n) => fmt((100 * n) / r.cap_bytes, 1) + ' %';
  console.log('\n## Rollups under pressure (20 days of one series at 1 Hz imported day by day; max_size 512KiB, when_full: rollup, windows 1m and 1h)\n');
  console.log(
    table(
      [
        ['bytes on disk, peak while importing', `${kib(r.peak_store_bytes)} (${pct(r.peak_store_bytes)})`, '≤ 100 %'],
        ['bytes on disk at the end', `${kib(r.store_bytes)} (${pct(r.store_bytes)})`, ''],
        ['bytes in pages in use at the end', `${kib(r.used_bytes)} (${pct(r.used_bytes)})`, ''],
        ...['raw', '1m', '1h'].map((t) => [`${t} tier: rows, chunks, hours covered`, r.tiers[t] ? `${r.tiers[t].rows.toLocaleString('en')}, ${r.tiers[t].chunks}, ${fmt(r.tiers[t].hours, 1)} h (from ${r.tiers[t].from})` : 'empty', t === '1h' ? '479 h (all 20 days)' : '']),
        ['dropped by reason (points or windows)', Object.entries(r.dropped).map(([k, v]) => `${k} ${v.toLocaleString('en')}`).join(', ') || 'nothing', ''],
        ['day 0 at --every 1h: windows answered', String(r.day0_1h_windows), '24'],
        ['20 imports', fmt(r.import_seconds) + ' s', ''],
      ],
      [
        ['figure', (x) => x[0]],
        ['measured', (x) => x[1]],
        ['target', (x) => x[2]],
      ],
    ),
  );
}

for (const [name, title, file, fn] of SECTIONS) {
  if (!want(name)) continue;
  let mod;
  try {
    mod = await import(file);
  } catch (err) {
    console.log(`\n## ${title}\n\nnot run: ${err.message}`);
    results[name] = { error: err.message };
    continue;
  }
  try {
    const out = await mod[fn]();
    results[name] = out;
    // A section returns rows, or an object with `rows` (the table) and its raw figures beside them.
    const rows = Array.isArray(out) ? out : out.rows;
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const cell = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? v.toLocaleString('en') : fmt(v)) : String(v ?? ''));
    console.log(`\n## ${title}\n`);
    console.log(table(rows, keys.map((k) => [k, (r) => cell(r[k])])));
  } catch (err) {
    console.log(`\n## ${title}\n\nfailed: ${err.stack ?? err}`);
    results[name] = { error: String(err) };
    process.exitCode = 1;
  }
}

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, 'results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(`\nJSON: ${join(OUT, 'results.json')}`);
