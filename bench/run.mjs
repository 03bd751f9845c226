// `npm run bench`: every performance target of the SPEC measured in one run, printed as a table and
// written to bench/out/results.json. Targets live here, never in timed tests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { storageBench } from './storage.mjs';

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

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, 'results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(`\nJSON: ${join(OUT, 'results.json')}`);
