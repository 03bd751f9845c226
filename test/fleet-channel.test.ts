// The fleet channel against a real HTTP server on loopback: a gateway polls a manifest, believes it
// only when signed with its key, applies a config as a transaction (written atomically, the previous
// kept, committed after commit_after healthy, reverted when an input stops producing), and says in its
// status why it refused or reverted something. Agents run in this process, as `sluice run` runs them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { bootConfig } from '../src/fleet/boot.js';
import { hostArch, sha256Hex } from '../src/fleet/manifest.js';
import { FleetFiles, MAX_STARTS, emptyBinaryState } from '../src/fleet/state.js';
import { CHILD_ENV, runStagedBinary } from '../src/fleet/launcher.js';
import { fleetFile, fleetKeys, memoryLogger, runAgent, signed, startFleetServer, until, type FleetKeys, type FleetServer, type LogLine, type RunningAgent } from './helpers/fleet.js';
import { freePort } from './helpers/http.js';
import { tmpDir } from './helpers/tmp.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

interface Setup {
  dir: string;
  dataDir: string;
  file: string;
  keys: FleetKeys;
  server: FleetServer;
  httpPort: number;
  local: string;
}

async function setup(fleetExtra = ''): Promise<Setup> {
  const dir = tmpDir('sluice-fleet-');
  const server = await startFleetServer();
  cleanup.push(() => server.close());
  const keys = fleetKeys();
  const httpPort = await freePort();
  const dataDir = join(dir, 'data');
  const local = [
    'version: 1',
    `agent: { id: gw-1, data_dir: ${dataDir} }`,
    'inputs:',
    '  steady: { type: simulator, interval: 100ms, series: 1 }',
    `http: { listen: "127.0.0.1:${httpPort}" }`,
    'fleet:',
    `  url: ${server.url}/gw.json`,
    `  public_key: ${keys.publicBase64}`,
    '  interval: 1h', // the tests poll with pollNow()
    '  commit_after: 2s',
    fleetExtra,
  ].join('\n');
  return { dir, dataDir, file: join(dir, 'sluice.yaml'), keys, server, httpPort, local };
}

async function start(s: Setup): Promise<RunningAgent> {
  const a = await runAgent(s.file, s.local);
  cleanup.push(() => a.stop());
  await a.fleet.idle();
  return a;
}

/** A fleet config: the local inputs plus `extra` lines under inputs (the fleet section is the local one's). */
function fleetConfig(extraInputs: string[], more: string[] = []): string {
  return ['version: 1', 'agent: { id: gw-1 }', 'inputs:', '  steady: { type: simulator, interval: 100ms, series: 1 }', ...extraInputs, ...more].join('\n') + '\n';
}

async function apiStatus(s: Setup): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${s.httpPort}/api/status`);
  return (await res.json()) as Record<string, unknown>;
}

function fleetStatus(a: RunningAgent): Record<string, unknown> {
  return a.fleet.fleetStatus()!;
}

describe('fleet binaries', () => {
  it('stages nothing when the download does not match its sha256, or the manifest has no build for this architecture', async () => {
    const s = await setup();
    const a = await start(s);
    const file = join(s.dir, 'not-the-build');
    writeFileSync(file, 'a different build\n');
    s.server.file('/bin/sluice', file);
    const claimed = sha256Hex('the build that was signed\n');
    const arch = hostArch()!;
    s.server.set('/gw.json', signed({ serial: 1, binaries: { [arch]: { url: 'bin/sluice', sha256: claimed } } }, s.keys.privateKey));
    await a.fleet.pollNow();
    const mismatch = `sha256 mismatch: the manifest says ${claimed}, the download from ${s.server.url}/bin/sluice is ${sha256Hex(readFileSync(file))}`;
    expect(fleetStatus(a).last_error).toBe(`binary of serial 1 not installed (attempt 1 of 3; tried again at the next poll): ${mismatch}`);
    // Tried again at the next polls (a 304 each), then given up.
    await a.fleet.pollNow();
    await a.fleet.pollNow();
    expect(fleetStatus(a).last_error).toBe(`binary of serial 1 not installed (gave up after 3 attempts; publish it with a higher serial): ${mismatch}`);
    await a.fleet.pollNow();
    expect(s.server.requests.filter((r) => r.path === '/bin/sluice')).toHaveLength(3);
    expect(a.restarts).toEqual([]);
    expect(existsSync(join(s.dataDir, 'fleet', 'bin', 'sluice-1'))).toBe(false);
    expect(existsSync(join(s.dataDir, 'fleet', 'bin', 'sluice-1.part'))).toBe(false);
    expect(new FleetFiles(s.dataDir).readBinary()).toBeUndefined();

    const other = arch === 'x64' ? 'arm64' : 'x64';
    s.server.set('/gw.json', signed({ serial: 2, binaries: { [other]: { url: 'bin/sluice', sha256: claimed } } }, s.keys.privateKey));
    await a.fleet.pollNow();
    expect(fleetStatus(a).serial).toBe(2);
    expect(a.restarts).toEqual([]);
    expect(a.logs).toContainEqual(expect.objectContaining({ msg: 'manifest serial 2: nothing to change here' }));
  });

  it('a staged binary that runs but is unhealthy gives up on itself, and the launcher abandons it at once', async () => {
    const deadPort = await freePort();
    const s = await setup();
    s.local = s.local.replace(
      '  steady: { type: simulator, interval: 100ms, series: 1 }',
      `  steady: { type: simulator, interval: 100ms, series: 1 }\n  boiler: { type: modbus, url: "tcp://127.0.0.1:${deadPort}", interval: 200ms, timeout: 100ms, devices: [{ unit_id: 1, registers: [{ name: t, table: holding, address: 0, type: uint16 }] }] }`,
    );
    // This process plays the staged binary of serial 4; the old one had both inputs healthy.
    const files = new FleetFiles(s.dataDir);
    const path = join(s.dataDir, 'fleet', 'bin', 'sluice-4');
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, 'staged');
    files.writeBinary({
      ...emptyBinaryState(),
      candidate: { serial: 4, path, sha256: 'c'.repeat(64), staged_ms: Date.now(), starts: 1, healthy_inputs: ['steady', 'boiler'] },
    });
    process.env[CHILD_ENV] = '4';
    let a: RunningAgent;
    try {
      a = await start(s);
    } finally {
      delete process.env[CHILD_ENV];
    }
    await until(() => a.restarts.length > 0, 'the candidate to give up');
    expect(a.restarts).toEqual(['binary of serial 4 unhealthy']);
    expect(files.readBinary()!.candidate!.abandon).toMatch(/^unhealthy: input boiler: no point in \d+(ms|s) since it started/);
    await a.stop();

    // The launcher, at the next start, rolls back without spending the remaining starts.
    const local = loadConfig({ file: s.file });
    if (!local.ok) throw new Error('local config invalid');
    const logs: LogLine[] = [];
    expect(await runStagedBinary(local.config, s.dataDir, ['run', '-c', s.file], memoryLogger(logs))).toBeNull();
    const after = files.readBinary()!;
    expect(after).toMatchObject({ candidate: null, current: null, abandoned: ['c'.repeat(64)], rollback: { serial: 4, reason: expect.stringMatching(/^unhealthy: input boiler/) as unknown } });
    expect(existsSync(path)).toBe(false);
    expect(logs).toContainEqual(expect.objectContaining({ level: 'error', msg: expect.stringMatching(/^binary of serial 4 rolled back: unhealthy: input boiler: .*; running the installed binary /) as unknown }));
    // The agent that runs next says so in status.
    const b = await start(s);
    expect(fleetStatus(b).last_error).toMatch(/^binary of serial 4 rolled back: unhealthy: input boiler/);
  });
});

describe('fleet config', () => {
  it('is applied as a transaction: written atomically beside the previous, unchanged inputs untouched, committed after commit_after, kept across restarts', async () => {
    const s = await setup();
    const a = await start(s);
    const steady = a.agent.inputs.get('steady');
    const c1 = fleetConfig(['  extra: { type: simulator, interval: 200ms, series: 2 }']);
    s.server.set('/gw.json', signed({ serial: 1, config: c1 }, s.keys.privateKey));
    await a.fleet.pollNow();
    expect([...a.agent.inputs.keys()].sort()).toEqual(['extra', 'steady']);
    expect(a.agent.inputs.get('steady')).toBe(steady);
    expect(readFileSync(fleetFile(s.dataDir, 'config.yaml'), 'utf8')).toBe(c1);
    expect(existsSync(fleetFile(s.dataDir, 'config.yaml.prev'))).toBe(false);
    expect(fleetStatus(a)).toMatchObject({ serial: 1, config_serial: 1, config_state: 'pending', last_error: null });
    expect(a.fleet.configStatus()).toMatchObject({ source: 'fleet', serial: 1 });
    await until(() => fleetStatus(a).config_state === 'committed', 'the commit');
    expect(a.logs.some((l) => /fleet config serial 1 committed: healthy for 2s/.test(l.msg))).toBe(true);

    // The next manifest: the applied one becomes config.yaml.prev.
    const c2 = fleetConfig(['  extra: { type: simulator, interval: 200ms, series: 3 }']);
    s.server.set('/gw.json', signed({ serial: 2, config: c2 }, s.keys.privateKey));
    await a.fleet.pollNow();
    expect(readFileSync(fleetFile(s.dataDir, 'config.yaml'), 'utf8')).toBe(c2);
    expect(readFileSync(fleetFile(s.dataDir, 'config.yaml.prev'), 'utf8')).toBe(c1);
    expect(a.agent.inputs.get('steady')).toBe(steady);
    await until(() => fleetStatus(a).config_state === 'committed', 'the second commit');

    // ETag: the unchanged manifest is not downloaded again.
    await a.fleet.pollNow();
    const last = s.server.requests.filter((r) => r.path === '/gw.json').at(-1)!;
    expect(last.status).toBe(304);
    expect(last.ifNoneMatch).toMatch(/^"[0-9a-f]{16}"$/);

    // A restart runs the fleet's config, with the local file's data_dir and fleet section.
    await a.stop();
    const local = loadConfig({ file: s.file });
    if (!local.ok) throw new Error('local config invalid');
    const boot = bootConfig(local.config, s.file, undefined);
    expect(boot.source).toBe('fleet');
    expect(boot.config.inputs.extra).toMatchObject({ type: 'simulator', series: 3 });
    expect(boot.config.agent.data_dir).toBe(s.dataDir);
    expect(boot.config.fleet.url).toBe(`${s.server.url}/gw.json`);
    const b = await start(s);
    expect([...b.agent.inputs.keys()].sort()).toEqual(['extra', 'steady']);
    expect(b.fleet.configStatus()).toMatchObject({ source: 'fleet', serial: 2 });
    // And it polls with the stored ETag at start: nothing new.
    expect(s.server.requests.at(-1)).toMatchObject({ path: '/gw.json', status: 304 });
  });

  it('refuses a tampered config, a wrong key, an invalid config and a lower serial; the running config keeps running and status says why', async () => {
    const s = await setup();
    const a = await start(s);
    const inputs = [...a.agent.inputs.values()];
    const refusedWith = async (manifest: string, reason: RegExp) => {
      s.server.set('/gw.json', manifest);
      await a.fleet.pollNow();
      expect(fleetStatus(a).last_error).toMatch(reason);
      expect((await apiStatus(s)).fleet).toMatchObject({ last_error: expect.stringMatching(reason) as unknown });
      expect([...a.agent.inputs.values()]).toEqual(inputs);
      expect(existsSync(fleetFile(s.dataDir, 'config.yaml'))).toBe(false);
      expect(a.logs.some((l) => l.level === 'error' && reason.test(l.msg))).toBe(true);
    };

    const tampered = JSON.parse(signed({ serial: 5, config: fleetConfig([]) }, s.keys.privateKey)) as { config: string };
    tampered.config = fleetConfig(['  evil: { type: simulator }']);
    await refusedWith(JSON.stringify(tampered), /manifest from http:\S+ refused: its signature does not verify with fleet\.public_key/);

    await refusedWith(signed({ serial: 5, config: fleetConfig([]) }, fleetKeys().privateKey), /refused: its signature does not verify/);

    const invalid = fleetConfig(['  bad: { type: simulator, interval: 5 }']);
    await refusedWith(signed({ serial: 7, config: invalid }, s.keys.privateKey), /manifest serial 7 refused: its config is invalid \(1 error\): manifest serial 7:5:\d+: inputs\.bad\.interval: bare number 5 has no unit/);
    expect(a.logs.some((l) => l.msg === 'fleet config refused' && /inputs\.bad\.interval/.test(String(l.error)))).toBe(true);

    await refusedWith(signed({ serial: 6, config: fleetConfig([]) }, s.keys.privateKey), /manifest serial 6 refused: serial 7 is already applied; a manifest must carry a higher serial/);

    // The state survives a restart: `sluice status` reads it from the data directory.
    expect(new FleetFiles(s.dataDir).readState()).toMatchObject({ serial: 7, config: null, last_error: expect.stringMatching(/serial 6 refused/) as unknown });
  });

  it('reverts a config that makes an input fail its health window, to the previous fleet config or the local file', async () => {
    const s = await setup();
    const a = await start(s);
    const deadPort = await freePort();
    const dead = [
      '  boiler:',
      '    type: modbus',
      `    url: tcp://127.0.0.1:${deadPort}`,
      '    interval: 200ms',
      '    timeout: 100ms',
      '    devices: [{ unit_id: 1, registers: [{ name: t, table: holding, address: 0, type: uint16 }] }]',
    ];
    s.server.set('/gw.json', signed({ serial: 1, config: fleetConfig(dead) }, s.keys.privateKey));
    await a.fleet.pollNow();
    expect(a.agent.inputs.has('boiler')).toBe(true);
    await until(() => fleetStatus(a).config_state !== 'pending', 'the health window to end');
    expect(fleetStatus(a)).toMatchObject({
      serial: 1,
      config_serial: null,
      last_error: expect.stringMatching(/^config of serial 1 reverted to the local config file: input boiler: no point in \d+(ms|s) since it started \(expected one every 200ms; \d+ errors\)$/) as unknown,
    });
    expect(a.agent.inputs.has('boiler')).toBe(false);
    expect(existsSync(fleetFile(s.dataDir, 'config.yaml'))).toBe(false);
    expect(a.fleet.configStatus()).toMatchObject({ source: 'file', serial: null });
    expect((await apiStatus(s)).fleet).toMatchObject({ last_error: expect.stringMatching(/serial 1 reverted/) as unknown });
    // Not retried: serial 1 was acted on.
    await a.fleet.pollNow();
    expect(a.agent.inputs.has('boiler')).toBe(false);

    // A good config, committed; then a bad one goes back to it.
    const good = fleetConfig(['  extra: { type: simulator, interval: 100ms }']);
    s.server.set('/gw.json', signed({ serial: 2, config: good }, s.keys.privateKey));
    await a.fleet.pollNow();
    await until(() => fleetStatus(a).config_state === 'committed', 'serial 2 committed');
    s.server.set('/gw.json', signed({ serial: 3, config: fleetConfig(['  extra: { type: simulator, interval: 100ms }', ...dead]) }, s.keys.privateKey));
    await a.fleet.pollNow();
    const extra = a.agent.inputs.get('extra');
    await until(() => fleetStatus(a).config_state === 'committed' && fleetStatus(a).config_serial === 2, 'the revert to serial 2');
    expect(fleetStatus(a).last_error).toMatch(/^config of serial 3 reverted to serial 2: input boiler/);
    expect(readFileSync(fleetFile(s.dataDir, 'config.yaml'), 'utf8')).toBe(good);
    expect(a.agent.inputs.get('extra')).toBe(extra);
    expect([...a.agent.inputs.keys()].sort()).toEqual(['extra', 'steady']);
    expect(a.logs.some((l) => l.level === 'error' && /^config of serial 3 reverted to serial 2/.test(l.msg))).toBe(true);
  });

  it('a config that needs a restart is applied by one, watched after it, and reverted after three starts without a commit', async () => {
    const s = await setup();
    const a = await start(s);
    s.server.set('/gw.json', signed({ serial: 1, config: fleetConfig([], ['buffer: { max_size: 64MiB }']) }, s.keys.privateKey));
    await a.fleet.pollNow();
    expect(a.restarts).toEqual(['fleet config serial 1']);
    expect(a.logs.some((l) => /changes keys that need a restart \(buffer\.max_size\)/.test(l.msg))).toBe(true);
    await a.stop();

    // The supervisor starts it again: the fleet config runs and its window starts over.
    const b = await start(s);
    expect(b.boot).toMatchObject({ source: 'fleet', pending: true });
    expect(b.agent.config.buffer.max_size).toBe(64 * 1048576);
    await until(() => fleetStatus(b).config_state === 'committed', 'the commit after the restart');
    await b.stop();

    // A config the agent dies of before its window ends: each start is counted, then it is reverted.
    s.server.set('/gw.json', signed({ serial: 2, config: fleetConfig([], ['buffer: { max_size: 32MiB }']) }, s.keys.privateKey));
    const c = await start(s);
    expect(c.restarts).toEqual(['fleet config serial 2']);
    await c.stop();
    const local = loadConfig({ file: s.file });
    if (!local.ok) throw new Error('local config invalid');
    for (let start = 1; start <= MAX_STARTS; start++) {
      const boot = bootConfig(local.config, s.file, undefined);
      expect(boot).toMatchObject({ source: 'fleet', pending: true });
      expect(boot.config.buffer.max_size).toBe(32 * 1048576);
      expect(new FleetFiles(s.dataDir).readState().config).toMatchObject({ serial: 2, starts: start });
    }
    const boot = bootConfig(local.config, s.file, undefined);
    expect(boot.config.buffer.max_size).toBe(64 * 1048576);
    expect(boot.notices).toContainEqual({ level: 'error', msg: `config of serial 2 reverted to serial 1: it did not stay healthy for fleet.commit_after in ${MAX_STARTS} starts` });
    expect(new FleetFiles(s.dataDir).readState()).toMatchObject({ serial: 2, config: { serial: 1, state: 'committed' } });
  });
});
