// The command line as a user runs it: the built CLI in child processes against real store files.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatFieldValue, parseLines, seriesKey } from '../src/core/line-protocol.js';
import { sluice, sluiceSpawn, waitFor } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

const SHARED = fileURLToPath(new URL('../../shared', import.meta.url));

function datasetLp(name: string): string {
  const tool = join(SHARED, 'tools', 'csv2lp.mjs');
  if (!existsSync(tool)) throw new Error(`the datasets are read from ${SHARED}; it is missing`);
  return execFileSync(process.execPath, [tool, name, join(SHARED, 'data')], { encoding: 'utf8', maxBuffer: 1 << 30 });
}

function statusJson(dataDir: string): Record<string, unknown> & { points: number; values: number } {
  const r = sluice(['status', '--data-dir', dataDir, '--json']);
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown> & { points: number; values: number };
}

function sortedLines(text: string): string[] {
  return text.split('\n').filter(Boolean).sort();
}

/**
 * Points as canonical text (series key, typed values, time), last write winning for the same series
 * and time as in InfluxDB: `126.0` and `126` are the same float, `1i` and `1` are not.
 */
function canonicalPoints(text: string): string[] {
  const { points, rejects } = parseLines(text, { precision: 'ms' });
  expect(rejects).toEqual([]);
  const byKey = new Map<string, string>();
  for (const p of points) {
    const key = `${seriesKey(p.measurement, p.tags)} ${p.timeUs}`;
    byKey.set(key, `${key} ${Object.entries(p.fields).map(([f, v]) => `${f}=${formatFieldValue(v)}`).join(',')}`);
  }
  return [...byKey.values()].sort();
}

describe('sluice CLI', () => {
  it('prints its version', () => {
    const r = sluice(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^sluice \d+\.\d+\.\d+/);
  });

  it.each(['beijing', 'skab', 'nab'])('round-trips the %s dataset exactly through import and export', (name) => {
    const lp = datasetLp(name);
    const dir = tmpDir();
    const file = join(dir, `${name}.lp`);
    writeFileSync(file, lp);
    const imported = sluice(['import', '--data-dir', join(dir, 'store'), '--precision', 'ms', file]);
    expect(imported.stderr).toBe('');
    expect(imported.status).toBe(0);
    const summary = JSON.parse(imported.stdout) as { points: number; values: number; rejected: number };
    expect(summary.points).toBe(sortedLines(lp).length);
    expect(summary.rejected).toBe(0);
    const exported = sluice(['export', '--data-dir', join(dir, 'store'), '--precision', 'ms']);
    expect(exported.status).toBe(0);
    // Same points, same values, same types, same field order. NAB repeats 12 timestamps: the later
    // reading replaces the earlier one, as InfluxDB does.
    const expected = canonicalPoints(lp);
    expect(canonicalPoints(exported.stdout)).toEqual(expected);
    if (name === 'beijing') expect(sortedLines(exported.stdout)).toEqual(sortedLines(lp));
  });

  it('rejects bad lines with their numbers and stores the good ones around them', () => {
    const dir = tmpDir();
    const input = ['m,s=a v=1 1000', 'm,s=a v= 2000', 'garbage', 'm,s=a v=3i 3000', 'm,s=a v="x 4000', 'm,s=a v=true 5000', ''].join('\n');
    const r = sluice(['import', '--data-dir', dir, '--precision', 'ms', '-'], { input });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ points: 3, values: 3, rejected: 3, dropped: 0 });
    expect(r.stderr).toMatch(/^line 2: /m);
    expect(r.stderr).toMatch(/^line 3: /m);
    expect(r.stderr).toMatch(/^line 5: /m);
    const out = sluice(['export', '--data-dir', dir, '--precision', 'ms']).stdout;
    expect(out).toBe('m,s=a v=1 1000\nm,s=a v=3i 3000\nm,s=a v=true 5000\n');
  });

  it('rejects lines whose bytes are not UTF-8 with their numbers, stores the good ones, and never U+FFFD', () => {
    const dir = tmpDir();
    const input = Buffer.concat([
      Buffer.from('m'),
      Buffer.from([0xff]),
      Buffer.from(' v=1 1000000000\nm'),
      Buffer.from([0xfe]),
      Buffer.from(' v=2 2000000000\nok,t=é v=3 3000000000\nm v="x'),
      Buffer.from([0xc3]),
      Buffer.from('" 4000000000\nm v=5 5000000000\n'),
    ]);
    const r = sluice(['import', '--data-dir', dir, '-'], { input });
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ points: 2, values: 2, rejected: 3, dropped: 0 });
    expect(r.stderr).toMatch(/^line 1: invalid UTF-8 \(byte 0xff\) at column 2$/m);
    expect(r.stderr).toMatch(/^line 2: invalid UTF-8 \(byte 0xfe\) at column 2$/m);
    expect(r.stderr).toMatch(/^line 4: invalid UTF-8 \(byte 0xc3\) at column 7$/m);
    const out = sluice(['export', '--data-dir', dir]).stdout;
    expect(sortedLines(out)).toEqual(['m v=5 5000000000', 'ok,t=é v=3 3000000000']);
    expect(out).not.toContain('\uFFFD');
  });

  it('exports names with backslashes before separators so that they import back to the same values', () => {
    const dir = tmpDir();
    // tag value `eas\ t`, tag key `reg\=ion`, measurement `a\,b`, field key `f\ g`; tags out of escaped-text order
    const text = String.raw`a\\,b,A\ FOO=bar,APPLE=orange,reg\\=ion=eas\\ t f\\ g=1 1000000000`;
    expect(sluice(['import', '--data-dir', dir, '-'], { input: text + '\n' }).status).toBe(0);
    const out = sluice(['export', '--data-dir', dir]).stdout;
    expect(out).toBe(text + '\n');
    expect(parseLines(out).points[0]).toMatchObject({ measurement: 'a\\,b', tags: { 'A FOO': 'bar', APPLE: 'orange', 'reg\\=ion': 'eas\\ t' }, fields: { 'f\\ g': 1 } });
  });

  it('answers raw and aggregated queries as CSV and JSON, windows aligned to the epoch', () => {
    const dir = tmpDir();
    const lines: string[] = [];
    // Two sensors, one value every 10 s for 5 minutes from a time that is not window-aligned.
    const t0 = 1_700_000_017_000;
    for (let i = 0; i < 30; i++) {
      lines.push(`env,room=a temp=${(20 + i / 10).toFixed(1)} ${t0 + i * 10_000}`);
      lines.push(`env,room=b temp=${(30 - i / 10).toFixed(1)},ok=${i % 2 === 0} ${t0 + i * 10_000}`);
    }
    expect(sluice(['import', '--data-dir', dir, '--precision', 'ms', '-'], { input: lines.join('\n') }).status).toBe(0);

    const raw = JSON.parse(sluice(['query', '--data-dir', dir, '--measurement', 'env', '--field', 'temp', '--json', '--from', String(t0), '--to', String(t0 + 20_000)]).stdout) as unknown[];
    expect(raw).toEqual([
      { time_ms: t0, tags: { room: 'a' }, field: 'temp', value: 20 },
      { time_ms: t0 + 10_000, tags: { room: 'a' }, field: 'temp', value: 20.1 },
      { time_ms: t0, tags: { room: 'b' }, field: 'temp', value: 30 },
      { time_ms: t0 + 10_000, tags: { room: 'b' }, field: 'temp', value: 29.9 },
    ]);

    const agg = JSON.parse(
      sluice(['query', '--data-dir', dir, '--measurement', 'env', '--field', 'temp', '--every', '1m', '--fn', 'mean,min,max,count,first,last,sum', '--json']).stdout,
    ) as { time_ms: number; tags: { room: string }; count: number; mean: number; min: number; max: number; first: number; last: number; sum: number }[];
    // Brute force over the same data.
    const expected = new Map<string, number[]>();
    for (const l of lines) {
      const [head, fields, time] = l.split(' ');
      const room = head.split('=')[1];
      const temp = Number(/temp=([^,]+)/.exec(fields)![1]);
      const key = `${room} ${Math.floor(Number(time) / 60_000) * 60_000}`;
      expected.set(key, [...(expected.get(key) ?? []), temp]);
    }
    expect(agg).toHaveLength(expected.size);
    for (const row of agg) {
      const values = expected.get(`${row.tags.room} ${row.time_ms}`)!;
      expect(row.time_ms % 60_000).toBe(0);
      expect(row.count).toBe(values.length);
      expect(row.min).toBe(Math.min(...values));
      expect(row.max).toBe(Math.max(...values));
      expect(row.first).toBe(values[0]);
      expect(row.last).toBe(values[values.length - 1]);
      expect(row.sum).toBeCloseTo(values.reduce((a, b) => a + b, 0), 9);
      expect(row.mean).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 9);
    }

    const csv = sluice(['query', '--data-dir', dir, '--measurement', 'env', '--field', 'ok', '--from', String(t0), '--to', String(t0 + 10_000)]).stdout;
    expect(csv).toBe(`time_ms,room,field,value\n${t0},b,ok,true\n`);
  });

  it('validates configs: exit 0, or every error as FILE:LINE:COL: key.path: message and exit 78', () => {
    const dir = tmpDir();
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'version: 1\ninputs:\n  demo:\n    type: simulator\n');
    expect(sluice(['check', '-c', good]).status).toBe(0);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\nbuffer:\n  max_size: 12\n  when_ful: rollup\ninputs:\n  demo:\n    type: simulator\n    interval: soon\n');
    const r = sluice(['check', '-c', bad]);
    expect(r.status).toBe(78);
    const errors = r.stderr.trim().split('\n');
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(new RegExp(`^${bad.replace(/[.]/g, '\\.')}:3:13: buffer\\.max_size: `));
    expect(errors[1]).toMatch(/:4:3: buffer\.when_ful: /);
    expect(errors[2]).toMatch(/:8:15: inputs\.demo\.interval: /);
  });

  it('reports a damaged store clearly, without a stack trace, and leaves it alone', () => {
    const dir = tmpDir();
    writeFileSync(join(dir, 'sluice.db'), 'this is not a database'.repeat(500));
    for (const args of [['status'], ['export'], ['import', '-']]) {
      const r = sluice([...args, '--data-dir', dir], { input: 'm v=1 1\n' });
      expect(r.status).toBe(74);
      expect(r.stderr).toContain(join(dir, 'sluice.db'));
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(readFileSync(join(dir, 'sluice.db'), 'utf8')).toBe('this is not a database'.repeat(500));
  });

  it('runs the embedded default config, collects from the simulator, and stops cleanly on SIGTERM', async () => {
    const dir = tmpDir();
    const child = sluiceSpawn(['run', '--data-dir', dir]);
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    await waitFor(() => existsSync(join(dir, 'sluice.db')) && statusJson(dir).points >= 3, 20_000, 'simulator points');
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expect(stdout).toContain('sluice started');
    const status = statusJson(dir);
    expect(status.series).toBe(3);
    const q = JSON.parse(sluice(['query', '--data-dir', dir, '--measurement', 'sim', '--field', 'temperature', '--json']).stdout) as { value: number }[];
    expect(q.length).toBeGreaterThanOrEqual(3);
    // Two fixed decimals, as the simulator promises.
    for (const row of q) expect(Math.round(row.value * 100) / 100).toBe(row.value);
  });

  it('loses nothing committed when the agent is killed with SIGKILL, and the store opens cleanly', async () => {
    const dir = tmpDir();
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      `version: 1\nagent:\n  data_dir: ${join(dir, 'data')}\n  commit_interval: 100ms\ninputs:\n  sim:\n    type: simulator\n    series: 200\n    interval: 50ms\n`,
    );
    const data = join(dir, 'data');
    const child = sluiceSpawn(['run', '-c', config]);
    await waitFor(() => existsSync(join(data, 'sluice.db')) && statusJson(data).points >= 4000, 30_000, 'points committed');
    const before = sortedLines(sluice(['export', '--data-dir', data]).stdout);
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const after = new Set(sortedLines(sluice(['export', '--data-dir', data]).stdout));
    expect(before.length).toBeGreaterThanOrEqual(4000);
    for (const line of before) expect(after.has(line)).toBe(true);
    // A writer opens it (integrity check on open) and carries on.
    const r = sluice(['import', '--data-dir', data, '--precision', 'ms', '-'], { input: 'after,crash=1 v=1 1000\n' });
    expect(r.status).toBe(0);
  });

  it('loses nothing committed when an import is killed with SIGKILL midway', async () => {
    const dir = tmpDir();
    const lines: string[] = [];
    for (let i = 0; i < 400_000; i++) lines.push(`k,s=s${i % 40} v=${i}i ${1_600_000_000_000 + Math.floor(i / 40) * 1000}`);
    const child = sluiceSpawn(['import', '--data-dir', dir, '--precision', 'ms', '-']);
    // The child is killed while we may still be writing: a broken pipe is expected, not a failure.
    child.stdin!.on('error', () => undefined);
    // Feed the first half, wait until some of it is committed, then kill mid-stream.
    child.stdin!.write(lines.slice(0, 200_000).join('\n') + '\n');
    await waitFor(() => existsSync(join(dir, 'sluice.db')) && statusJson(dir).points > 0, 30_000, 'first commit');
    const before = sortedLines(sluice(['export', '--data-dir', dir, '--precision', 'ms']).stdout);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const after = sortedLines(sluice(['export', '--data-dir', dir, '--precision', 'ms']).stdout);
    const source = new Set(lines);
    const afterSet = new Set(after);
    for (const line of before) expect(afterSet.has(line)).toBe(true);
    for (const line of after) expect(source.has(line)).toBe(true);
    expect(sluice(['import', '--data-dir', dir, '--precision', 'ms', '-'], { input: lines.slice(200_000).join('\n') }).status).toBe(0);
  });
});
