// Local config changes on a running `sluice run`: SIGHUP and an edit of the file reload it; a valid
// change restarts only what changed (an unchanged input keeps running, its points continue without a
// gap), an invalid edit is refused with every error logged and in status while the old config keeps
// running, and a key that needs a restart makes the agent stop cleanly and exit 75 for its supervisor.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sluice, sluiceSpawn } from './helpers/cli.js';
import { eventually, freePort, getJson } from './helpers/http.js';
import { tmpDir } from './helpers/tmp.js';
import type { ChildProcess } from 'node:child_process';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Status {
  config: { source: string; last_error: string | null; errors: string[]; last_reload_ms: number | null };
  inputs: Record<string, { points: number; last_point_ms: number | null }>;
}

function configText(dataDir: string, port: number, changeSeries: string, commitInterval = '100ms'): string {
  return [
    'version: 1',
    `agent: { id: gw-reload, data_dir: ${dataDir}, commit_interval: ${commitInterval} }`,
    'inputs:',
    '  keep: { type: simulator, interval: 100ms, series: 1 }',
    `  change: { type: simulator, interval: 100ms, series: ${changeSeries} }`,
    `http: { listen: "127.0.0.1:${port}" }`,
    '',
  ].join('\n');
}

describe('local reload', () => {
  it('SIGHUP and file edits: changed inputs restart, unchanged keep running, invalid edits are refused, restart keys exit 75', async () => {
    const dir = tmpDir('sluice-reload-');
    const dataDir = join(dir, 'data');
    const file = join(dir, 'sluice.yaml');
    const port = await freePort();
    writeFileSync(file, configText(dataDir, port, '1'));
    const child = sluiceSpawn(['run', '-c', file], { cwd: dir });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const status = async () => (await getJson<Status>(`http://127.0.0.1:${port}/api/status`)).body;
    const logLines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

    await eventually(async () => (await status()).inputs.keep?.points >= 5, 10_000, 'the agent to run');
    const before = await status();

    // SIGHUP right after the write: the reload is the signal's (the file watch then sees nothing new).
    writeFileSync(file, configText(dataDir, port, '2'));
    child.kill('SIGHUP');
    await eventually(async () => (await status()).config.last_reload_ms !== null, 10_000, 'the SIGHUP reload');
    const applied = logLines().filter((l) => l.msg === 'config applied');
    expect(applied).toEqual([expect.objectContaining({ why: 'reload (SIGHUP)', inputs_changed: ['change'], inputs_kept: ['keep'] })]);
    const after = await status();
    // The unchanged input is the same running input: its counter went on (a restarted one starts at 0).
    expect(after.inputs.keep.points).toBeGreaterThanOrEqual(before.inputs.keep.points);

    // An invalid edit, noticed by the file watch: refused, every error logged, the old config runs on.
    writeFileSync(file, configText(dataDir, port, '"two"').replace('interval: 100ms, series: 1', 'interval: 100, series: 1'));
    const refused = await eventually(async () => {
      const s = await status();
      return s.config.last_error ? s : undefined;
    }, 10_000, 'the refusal');
    expect(refused.config.last_error).toMatch(/sluice\.yaml: 2 errors; still running the previous config/);
    expect(refused.config.errors).toEqual([
      expect.stringMatching(/sluice\.yaml:4:\d+: inputs\.keep\.interval: bare number 100 has no unit/),
      expect.stringMatching(/sluice\.yaml:5:\d+: inputs\.change\.series: must be an integer/),
    ]);
    expect(logLines().filter((l) => l.msg === 'config reload refused').map((l) => l.error)).toEqual(refused.config.errors);
    const p1 = (await status()).inputs.change.points;
    await eventually(async () => (await status()).inputs.change.points > p1 + 3, 10_000, 'the old config to keep running');
    const fromCli = sluice(['status', '--json', '--data-dir', dataDir]);
    expect(JSON.parse(fromCli.stdout)).toMatchObject({ config: { last_error: refused.config.last_error } });

    // Fixed, the way editors and config managers write: a new file renamed over the old one.
    writeFileSync(`${file}.tmp`, configText(dataDir, port, '3'));
    renameSync(`${file}.tmp`, file);
    await eventually(async () => (await status()).config.last_error === null, 10_000, 'the fixed file to load');
    expect(logLines().filter((l) => l.msg === 'config applied').at(-1)).toMatchObject({ why: 'reload (file changed)', inputs_changed: ['change'], inputs_kept: ['keep'] });

    // A key the store is opened with: a clean stop and exit 75 for the supervisor.
    writeFileSync(file, configText(dataDir, port, '3', '200ms'));
    expect(await exited).toBe(75);
    expect(logLines()).toContainEqual(expect.objectContaining({ msg: 'config changes keys that need a restart: agent.commit_interval', keys: ['agent.commit_interval'] }));
    expect(logLines().at(-1)).toMatchObject({ msg: 'sluice stopped' });

    // The unchanged input's points: one every 100 ms from start to stop, its counter never reset.
    const rows = JSON.parse(sluice(['query', '--data-dir', dataDir, '--measurement', 'keep', '--field', 'counter', '--json']).stdout) as { time_ms: number; value: number | string }[];
    expect(rows.length).toBeGreaterThan(20);
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i].time_ms - rows[i - 1].time_ms, `gap before ${rows[i].time_ms}`).toBeLessThanOrEqual(100);
      expect(Number(rows[i].value)).toBeGreaterThan(Number(rows[i - 1].value));
    }
    // The changed input restarted with its new series (its counter did start over).
    const sensors = JSON.parse(sluice(['query', '--data-dir', dataDir, '--measurement', 'change', '--field', 'counter', '--json']).stdout) as { tags: { sensor: string } }[];
    expect(new Set(sensors.map((r) => r.tags.sensor))).toEqual(new Set(['s000', 's001', 's002']));
  });
});
