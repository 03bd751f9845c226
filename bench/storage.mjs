// Storage and import figures on the real datasets in ../shared/data (read from there, converted to line
// protocol with ../shared/tools/csv2lp.mjs; not part of this repository). For each dataset, in one run:
// sluice's store on disk after `sluice import`, gzip -6 of the same line protocol, and a naive SQLite
// table with one row per value, plus import speed and peak RSS.
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';

const ROOT = new URL('..', import.meta.url).pathname;
const SHARED = process.env.SLUICE_SHARED ?? join(ROOT, '..', 'shared');
const OUT = join(ROOT, 'bench', 'out');
const CLI = join(ROOT, 'bin', 'sluice.js');

export function datasetLineProtocol(name) {
  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, `${name}.lp`);
  if (!existsSync(file)) {
    const lp = execFileSync(process.execPath, [join(SHARED, 'tools', 'csv2lp.mjs'), name, join(SHARED, 'data')], { maxBuffer: 1 << 30 });
    writeFileSync(file, lp);
  }
  return file;
}

async function gzipSize(file) {
  let size = 0;
  await pipeline(
    createReadStream(file),
    createGzip({ level: 6 }),
    new Writable({
      write(chunk, _enc, cb) {
        size += chunk.length;
        cb();
      },
    }),
  );
  return size;
}

/** Runs a command and returns its wall time and peak RSS (getrusage of the child, via python3). */
export function measured(cmd, args, opts = {}) {
  const wrapper =
    'import resource,subprocess,sys,time,json\n' +
    't=time.time(); p=subprocess.run(sys.argv[1:], stdin=open(sys.stdin.fileno(), closefd=False), capture_output=True)\n' +
    'sys.stderr.write(p.stderr.decode(errors="replace"))\n' +
    'print(json.dumps({"code":p.returncode,"seconds":time.time()-t,"maxrss_kb":resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"stdout":p.stdout.decode(errors="replace")}))';
  const r = spawnSync('python3', ['-c', wrapper, cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 30, ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function naiveSqlite(file, dir) {
  const dbFile = join(dir, 'naive.db');
  rmSync(dbFile, { force: true });
  const db = new Database(dbFile);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE points(series TEXT NOT NULL, field TEXT NOT NULL, time_ms INTEGER NOT NULL, value)');
  const insert = db.prepare('INSERT INTO points VALUES (?, ?, ?, ?)');
  const text = readFileSync(file, 'utf8');
  const started = process.hrtime.bigint();
  let values = 0;
  let batch = [];
  const flush = db.transaction((rows) => {
    for (const r of rows) insert.run(r[0], r[1], r[2], r[3]);
  });
  // Simple split: the datasets have no escaped spaces or commas inside string values.
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [series, fieldsText, time] = line.split(' ');
    for (const kv of fieldsText.split(',')) {
      const eq = kv.indexOf('=');
      const raw = kv.slice(eq + 1);
      batch.push([series, kv.slice(0, eq), Number(time), raw.startsWith('"') ? raw.slice(1, -1) : Number(raw)]);
      values++;
    }
    if (batch.length >= 50_000) {
      flush(batch);
      batch = [];
    }
  }
  flush(batch);
  db.pragma('wal_checkpoint(TRUNCATE)');
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  db.close();
  return { bytes: statSync(dbFile).size, values, seconds };
}

export async function storageBench(names = ['beijing', 'skab', 'nab']) {
  const results = [];
  for (const name of names) {
    const lp = datasetLineProtocol(name);
    const dir = join(OUT, `store-${name}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const run = measured(process.execPath, [CLI, 'import', '--data-dir', dir, '--precision', 'ms', lp]);
    const summary = JSON.parse(run.stdout.trim().split('\n').pop());
    const db = new Database(join(dir, 'sluice.db'), { readonly: true });
    const chunkBytes = db.prepare('SELECT sum(length(data)) AS b FROM chunks').get().b;
    db.close();
    const storeBytes = ['sluice.db', 'sluice.db-wal', 'sluice.db-shm'].reduce((n, f) => n + (existsSync(join(dir, f)) ? statSync(join(dir, f)).size : 0), 0);
    const gzip = await gzipSize(lp);
    const naive = naiveSqlite(lp, dir);
    results.push({
      dataset: name,
      values: summary.values,
      points: summary.points,
      lp_bytes: statSync(lp).size,
      chunk_bits_per_value: (8 * chunkBytes) / summary.values,
      store_bytes: storeBytes,
      store_bytes_per_value: storeBytes / summary.values,
      gzip6_bits_per_value: (8 * gzip) / summary.values,
      naive_sqlite_bytes_per_value: naive.bytes / naive.values,
      import_values_per_s: summary.values / run.seconds,
      import_seconds: run.seconds,
      import_peak_rss_mb: run.maxrss_kb / 1024,
      naive_insert_values_per_s: naive.values / naive.seconds,
    });
    rmSync(join(dir, 'naive.db'), { force: true });
  }
  return results;
}
