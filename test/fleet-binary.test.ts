// Self-update with the real single binary (npm run build:bin, built here twice with two versions)
// under a restart loop: the test plays systemd's Restart=always. The installed binary is the launcher:
// it stages a new binary from a signed manifest, restarts into it, and the new one commits itself after
// commit_after healthy. A binary that cannot start is abandoned after three starts and the previous one
// runs again, with the rollback in status. The installed binary is never modified.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../src/fleet/manifest.js';
import { FleetFiles } from '../src/fleet/state.js';
import { fleetKeys, signed, startFleetServer, type FleetServer } from './helpers/fleet.js';
import { eventually, freePort, getJson } from './helpers/http.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OLD = '7.0.0-fleet-old';
const NEW = '7.0.1-fleet-new';

let work = '';
const built: Record<string, string> = {};

function build(version: string): string {
  const out = join(work, `build-${version}`);
  execFileSync(process.execPath, [join(ROOT, 'build/bin.mjs'), 'x64'], {
    cwd: ROOT,
    env: { ...process.env, SLUICE_VERSION: version, SLUICE_BIN_OUT: out },
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 10 * 60_000,
  });
  return join(out, 'sluice-linux-x64');
}

beforeAll(() => {
  if (process.arch !== 'x64') throw new Error('the single-binary update test runs on x64 (the build machine of build:bin)');
  work = mkdtempSync(join(tmpdir(), 'sluice-fleet-bin-'));
  built[OLD] = build(OLD);
  built[NEW] = build(NEW);
}, 20 * 60_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Restart=always: starts `cmd` again whenever it exits, until stopped. */
class Supervisor {
  readonly runs: Run[] = [];
  output = '';
  private child: ChildProcess | undefined;
  private stopping = false;

  constructor(
    private readonly cmd: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly restartMs = 200,
  ) {}

  start(): void {
    const child = spawn(this.cmd, this.args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.on('data', (c: Buffer) => (this.output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (this.output += c.toString()));
    child.once('exit', (code, signal) => {
      this.runs.push({ code, signal });
      if (!this.stopping) setTimeout(() => this.start(), this.restartMs);
    });
  }

  logs(): Record<string, unknown>[] {
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
  }
}

describe('self-update with the single binary', () => {
  let server: FleetServer | undefined;
  let supervisor: Supervisor | undefined;

  afterAll(async () => {
    await supervisor?.stop();
    await server?.close();
  });

  it('stages, runs and commits a new binary; rolls back one that cannot start after three starts', async () => {
    const dir = join(work, 'gateway');
    mkdirSync(join(dir, 'native'), { recursive: true });
    const installed = join(dir, 'usr-local-bin-sluice');
    copyFileSync(built[OLD], installed);
    execFileSync('chmod', ['755', installed]);
    const installedSha = sha256Hex(readFileSync(installed));
    const dataDir = join(dir, 'data');

    server = await startFleetServer();
    const keys = fleetKeys();
    server.file('/bin/sluice-new', built[NEW]);
    // Cannot start: the first 4 MB of a real binary (the kernel refuses it; exec falls back to sh, which fails).
    const broken = join(work, 'sluice-broken');
    writeFileSync(broken, readFileSync(built[NEW]).subarray(0, 4_000_000));
    server.file('/bin/sluice-broken', broken);

    const port = await freePort();
    const file = join(dir, 'sluice.yaml');
    writeFileSync(
      file,
      [
        'version: 1',
        `agent: { id: gw-bin, data_dir: ${dataDir} }`,
        'inputs:',
        '  demo: { type: simulator, interval: 100ms, series: 1 }',
        `http: { listen: "127.0.0.1:${port}" }`,
        'fleet:',
        `  url: ${server.url}/gw.json`,
        `  public_key: ${keys.publicBase64}`,
        '  interval: 1s',
        '  commit_after: 3s',
        '',
      ].join('\n'),
    );
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, SLUICE_NATIVE_DIR: join(dir, 'native') };
    supervisor = new Supervisor(installed, ['run', '-c', file], env);
    const status = async () => (await getJson<{ version: string; fleet: Record<string, unknown> & { binary: Record<string, unknown> } }>(`http://127.0.0.1:${port}/api/status`)).body;

    supervisor.start();
    await eventually(async () => (await status()).version === OLD, 20_000, 'the installed binary to run');

    // Serial 1: the new build. Relative url: resolved against the manifest's.
    const newSha = sha256Hex(readFileSync(built[NEW]));
    server.set('/gw.json', signed({ serial: 1, binaries: { x64: { url: 'bin/sluice-new', sha256: newSha } } }, keys.privateKey));
    const updated = await eventually(async () => {
      const s = await status();
      return s.version === NEW && s.fleet.binary.current_serial === 1 ? s : undefined;
    }, 60_000, 'the new binary to run and commit');
    expect(updated.fleet.binary).toMatchObject({ running: 1, current_serial: 1, candidate: null, version: NEW });
    expect(updated.fleet.last_change).toBe(`binary of serial 1 committed (version ${NEW})`);
    expect(supervisor.runs.map((r) => r.code)).toEqual([75]);
    const logs = supervisor.logs();
    expect(logs).toContainEqual(expect.objectContaining({ msg: expect.stringMatching(/^binary of serial 1 staged; restarting into it/) as unknown }));
    expect(logs).toContainEqual(expect.objectContaining({ component: 'launcher', msg: 'running staged binary of serial 1 (start 1 of 3 before it must commit)' }));
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'binary of serial 1 committed: healthy for 3s', version: NEW }));
    expect(readdirSync(join(dataDir, 'fleet', 'bin'))).toEqual(['sluice-1']);

    // Serial 2: a binary that cannot start. Three starts, then the previous one (serial 1) again.
    const brokenSha = sha256Hex(readFileSync(broken));
    server.set('/gw.json', signed({ serial: 2, binaries: { x64: { url: `${server.url}/bin/sluice-broken`, sha256: brokenSha } } }, keys.privateKey));
    const rolledBack = await eventually(async () => {
      const s = await status();
      return typeof s.fleet.last_error === 'string' && s.fleet.last_error.includes('serial 2 rolled back') ? s : undefined;
    }, 60_000, 'the rollback');
    expect(rolledBack.version).toBe(NEW);
    expect(rolledBack.fleet.binary).toMatchObject({ running: 1, current_serial: 1, candidate: null });
    expect(rolledBack.fleet.last_error).toMatch(/^binary of serial 2 rolled back: it did not run healthy for fleet\.commit_after in 3 starts \(last run: exit code \d+\)$/);
    // 75 (serial 1 staged), 75 (serial 2 staged), then the three failed starts of serial 2.
    expect(supervisor.runs.map((r) => r.code)).toEqual([75, 75, 2, 2, 2]);
    expect(supervisor.logs().filter((l) => l.component === 'launcher' && /running staged binary of serial 2/.test(String(l.msg))).length).toBe(3);
    expect(supervisor.logs()).toContainEqual(expect.objectContaining({ level: 50, serial: 2, msg: expect.stringMatching(/^binary of serial 2 rolled back: .*; running staged serial 1$/) as unknown }));

    const state = new FleetFiles(dataDir).readBinary()!;
    expect(state.abandoned).toEqual([brokenSha]);
    expect(state.rollback).toMatchObject({ serial: 2, sha256: brokenSha });
    expect(existsSync(join(dataDir, 'fleet', 'bin', 'sluice-2'))).toBe(false);
    // `sluice status` (the installed binary, while the agent runs) reports it too.
    const cli = spawnSync(installed, ['status', '--json', '--data-dir', dataDir], { env, encoding: 'utf8' });
    expect(JSON.parse(cli.stdout)).toMatchObject({ fleet: { serial: 2, last_error: expect.stringMatching(/serial 2 rolled back/) as unknown } });
    expect(sha256Hex(readFileSync(installed))).toBe(installedSha);

    // SIGTERM to the launcher reaches the agent: a clean stop, exit 0.
    await supervisor.stop();
    expect(supervisor.runs.at(-1)).toEqual({ code: 0, signal: null });
    expect(supervisor.logs().at(-1)).toMatchObject({ msg: 'sluice stopped' });
  });
});
