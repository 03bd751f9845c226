// The single binaries (npm run build:bin), built fresh into a temporary directory with a stamped
// version and run as a user would: x64 natively, arm64 under qemu-user-static. Each passes the smoke
// tests: version, check, an import/export round trip and a short run; and the opcua input and
// `sluice opcua browse` against the real node-opcua server, from the binary's opcua module, which an
// agent without an opcua input never evaluates.
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpcuaServer, type OpcuaServer } from '../drivers/opcua/testing/peer.js';
import { sluice } from './helpers/cli.js';
import { eventually, freePort, getJson } from './helpers/http.js';
import { childrenOf } from './helpers/proc.js';
import { tmpDir } from './helpers/tmp.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const QEMU = '/usr/bin/qemu-aarch64-static';
const VERSION = '9.8.7-test';
const MAX_BINARY_BYTES = 100 * 1048576;

interface Binary {
  arch: 'x64' | 'arm64';
  file: string;
  bytes: number;
}

let outDir = '';
let binaries: Binary[] = [];

beforeAll(() => {
  // Tools the arm64 build and run need; missing ones fail the suite rather than skip it.
  if (!existsSync(QEMU)) throw new Error(`${QEMU} is missing: apt-get install qemu-user-static`);
  for (const tool of ['aarch64-linux-gnu-g++', 'aarch64-linux-gnu-strip']) {
    if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is missing: apt-get install g++-aarch64-linux-gnu`);
  }
  outDir = mkdtempSync(join(tmpdir(), 'sluice-bin-out-'));
  execFileSync(process.execPath, [join(ROOT, 'build/bin.mjs')], {
    cwd: ROOT,
    env: { ...process.env, SLUICE_VERSION: VERSION, SLUICE_BIN_OUT: outDir },
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 20 * 60_000,
  });
  binaries = (JSON.parse(readFileSync(join(outDir, 'binaries.json'), 'utf8')) as { binaries: Binary[] }).binaries;
}, 20 * 60_000);

afterAll(() => {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

// One OPC UA server for every binary (it takes seconds to start), with its PKI beside it.
let opcuaRoot = '';
let opcua: OpcuaServer | undefined;
beforeAll(async () => {
  opcuaRoot = mkdtempSync(join(tmpdir(), 'sluice-bin-opcua-'));
  opcua = await startOpcuaServer({ pki: join(opcuaRoot, 'pki') });
}, 90_000);
afterAll(async () => {
  await opcua?.stop();
  if (opcuaRoot) rmSync(opcuaRoot, { recursive: true, force: true });
});
const server = (): OpcuaServer => {
  if (!opcua) throw new Error('the OPC UA test server did not start');
  return opcua;
};

/** The binary's opcua module in a /metrics text: its size once evaluated, undefined if it never was. */
const opcuaModuleBytes = (metrics: string): number | undefined => {
  const m = /^sluice_binary_module_loaded_bytes\{module="opcua"\} (\d+)$/m.exec(metrics);
  return m ? Number(m[1]) : undefined;
};

/** Runs a binary (arm64 through qemu) with a private native-addon cache unless `env` says otherwise. */
function runner(b: () => Binary, cacheDir: () => string) {
  const command = (args: string[]): [string, string[]] => (b().arch === 'arm64' ? [QEMU, [b().file, ...args]] : [b().file, args]);
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    QEMU_LD_PREFIX: '/usr/aarch64-linux-gnu',
    SLUICE_NATIVE_DIR: cacheDir(),
    // `sluice run` starts itself again with its memory limits (src/cli/limits.ts) by executing its own
    // file, which qemu-user cannot follow without binfmt_misc (a CI container has none; the agent would
    // say so and run on with Node's defaults): the arm64 agent runs with them from the start here. On a
    // Pi the binary runs natively and the re-start is the x64 one's.
    ...(b().arch === 'arm64' ? { SLUICE_OWN_LIMITS: '0' } : {}),
    ...extra,
  });
  return {
    run(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): SpawnSyncReturns<string> {
      const [cmd, argv] = command(args);
      return spawnSync(cmd, argv, { input: options.input, encoding: 'utf8', env: env(options.env), cwd: options.cwd, timeout: 120_000 });
    },
    spawn(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
      const [cmd, argv] = command(args);
      return spawn(cmd, argv, { env: env(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
    },
    /** `run -c cfg` with its output collected; stop() sends SIGTERM and resolves with the exit code. */
    agent(cfg: string) {
      const child = this.spawn(['run', '-c', cfg]);
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return {
        output: () => output,
        /** Whole log lines (the last piece may be half a line still being written). */
        lines: () => output.split('\n').slice(0, -1).map((l) => JSON.parse(l) as { msg: string; level: number } & Record<string, unknown>),
        stop: () => {
          child.kill('SIGTERM');
          return exited;
        },
      };
    },
  };
}

const LP = [
  'boiler,site=plant\\ a,unit=1 supply_temp=71.25,flow_lpm=12i,pump_on=true,state="running, ok" 1714560000000',
  'boiler,site=plant\\ a,unit=1 supply_temp=71.5,flow_lpm=13i,pump_on=false,state="idle" 1714560001000',
  'meter,id=7 energy_wh=18446744073709551615u,serial="A\\"1" 1714560002000',
  'meter,id=7 energy_wh=3u 1714560003000',
].join('\n');

describe.each(['x64', 'arm64'] as const)('sluice-linux-%s', (arch) => {
  const binary = () => {
    const b = binaries.find((x) => x.arch === arch);
    if (!b) throw new Error(`no ${arch} binary was built`);
    return b;
  };
  let cache = '';
  const bin = runner(binary, () => cache);
  // Not tmpDir(): that is emptied after every test, and the cache must survive between them.
  beforeAll(() => {
    cache = mkdtempSync(join(tmpdir(), `sluice-bin-${arch}-`));
  });
  afterAll(() => rmSync(cache, { recursive: true, force: true }));

  it('is a standalone executable for its architecture, within the size budget', () => {
    const b = binary();
    expect(b.file).toBe(join(outDir, `sluice-linux-${arch}`));
    const elf = readFileSync(b.file).subarray(0, 20);
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf.readUInt16LE(18)).toBe(arch === 'x64' ? 62 : 183); // e_machine: x86-64, AArch64
    expect(statSync(b.file).size).toBe(b.bytes);
    expect(b.bytes).toBeLessThan(MAX_BINARY_BYTES);
    process.stderr.write(`sluice-linux-${arch}: ${(b.bytes / 1048576).toFixed(1)} MiB\n`);
  });

  it('prints the stamped version', () => {
    const r = bin.run(['--version']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`sluice ${VERSION}\n`);
    expect(r.status).toBe(0);
  });

  it('checks configs: the embedded example passes, a bad one lists its errors and exits 78', () => {
    const dir = tmpDir();
    const good = join(dir, 'good.yaml');
    writeFileSync(good, readFileSync(join(ROOT, 'systemd/sluice.yaml')));
    const ok = bin.run(['check', '-c', good]);
    expect(ok.stdout + ok.stderr).toContain('ok');
    expect(ok.status).toBe(0);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\nbuffer:\n  max_size: 12 parsecs\ninputs:\n  x: { type: simulator, intervall: 1s }\n');
    const r = bin.run(['check', '-c', bad]);
    expect(r.status).toBe(78);
    expect(r.stderr + r.stdout).toMatch(new RegExp(`${bad.replace(/[.]/g, '\\.')}:3:\\d+: buffer\\.max_size: `));
    expect(r.stderr + r.stdout).toMatch(/:5:\d+: inputs\.x\.intervall: /);
  });

  it('round-trips line protocol through import and export, as the Node build does', () => {
    const dir = tmpDir();
    const lp = join(dir, 'in.lp');
    writeFileSync(lp, LP + '\n');
    const imported = bin.run(['import', '--data-dir', join(dir, 'bin'), '--precision', 'ms', lp]);
    expect(imported.stderr).toBe('');
    expect(JSON.parse(imported.stdout)).toMatchObject({ points: 4, rejected: 0 });
    const exported = bin.run(['export', '--data-dir', join(dir, 'bin'), '--precision', 'ms']);
    expect(exported.status).toBe(0);
    expect(exported.stdout.trim().split('\n').sort()).toEqual(LP.split('\n').sort());
    // The same store read by the Node build: one format, whichever binary wrote it.
    expect(sluice(['export', '--data-dir', join(dir, 'bin'), '--precision', 'ms']).stdout).toBe(exported.stdout);
    const fromStdin = bin.run(['import', '--data-dir', join(dir, 'stdin'), '--precision', 'ms', '-'], { input: LP });
    expect(JSON.parse(fromStdin.stdout)).toMatchObject({ points: 4 });
  });

  it('runs the agent: stores points, serves its status, hands back its start-up pages, stops cleanly on SIGTERM', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      `version: 1\nagent: { id: gw-${arch}, data_dir: ${join(dir, 'data')}, commit_interval: 200ms }\ninputs: { sim: { type: simulator, series: 3, interval: 100ms } }\naggregate: { windows: [1m] }\nhttp: { listen: "127.0.0.1:${port}" }\n`,
    );
    // Debug level: the releases of the start-up pages are logged there.
    const child = bin.spawn(['run', '-c', cfg], { SLUICE_LOG_LEVEL: 'debug' });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const status = await eventually(
        async () => {
          const r = await getJson<{ version: string; agent_id: string; points: number; health: { status: string } }>(`http://127.0.0.1:${port}/api/status`);
          return r.body.points >= 6 && r.body;
        },
        60_000,
        `points stored by the ${arch} binary (output so far: ${output})`,
      );
      expect(status).toMatchObject({ version: VERSION, agent_id: `gw-${arch}`, health: { status: 'ok' } });
      if (arch === 'x64') {
        // The binary started itself again with its heap limits in place (src/cli/limits.ts): the pid we
        // started is the agent, with the limits of the default memory_limit (96MiB: old generation 96 MB,
        // 1 MB semi-spaces), and there is no second process (no parent left waiting, no child).
        const heap = (await getJson<{ memory: { heap_limit_bytes: number } }>(`http://127.0.0.1:${port}/api/status`)).body.memory.heap_limit_bytes;
        expect(heap).toBeGreaterThanOrEqual(96 * 1048576);
        expect(heap).toBeLessThan(110 * 1048576);
        expect(childrenOf(child.pid!)).toEqual([]);
        const environ = readFileSync(`/proc/${child.pid}/environ`, 'utf8').split('\0');
        expect(environ).toContain('NODE_OPTIONS=--max-old-space-size=96 --max-semi-space-size=1');
      }
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
      expect(metrics).toContain(`sluice_build_info{version="${VERSION}",node="`);
      // No opcua input: node-opcua stays unevaluated in the binary (the opcua test below sees the metric).
      expect(metrics).toContain('# TYPE sluice_binary_module_loaded_bytes gauge');
      expect(opcuaModuleBytes(metrics)).toBeUndefined();

      // Before and after the inputs start, and ten seconds in, the read-only segments of the executable
      // are unmapped (src/sea/pages.ts): most of the file, and the process's file-backed memory falls.
      // The agent runs on, storing points, on the code it maps back as it goes.
      const released = await eventually(
        // Whole lines only (the last piece may be half a line still being written).
        () => {
          const lines = output.split('\n').slice(0, -1).filter((l) => l.includes('start-up pages of the executable released'));
          return Promise.resolve(lines.length >= 3 && lines);
        },
        60_000,
        `the start-up pages released three times (output so far: ${output})`,
      );
      const pages = JSON.parse(released[0]) as { segments: number; segments_mb: number; file_mb_before: number; file_mb_after: number };
      expect(pages.segments).toBeGreaterThanOrEqual(1);
      expect(pages.segments_mb).toBeGreaterThan(50);
      expect(pages.file_mb_after).toBeLessThan(pages.file_mb_before);
      const pointsAtRelease = (await getJson<{ points: number }>(`http://127.0.0.1:${port}/api/status`)).body.points;
      await eventually(
        async () => (await getJson<{ points: number }>(`http://127.0.0.1:${port}/api/status`)).body.points >= pointsAtRelease + 30,
        60_000,
        `points stored after the pages were released (output so far: ${output})`,
      );
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const lines = output.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number });
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['starting', 'sluice started', 'start-up pages of the executable released', 'stopping', 'sluice stopped']));
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    const st = bin.run(['status', '--data-dir', join(dir, 'data'), '--json']);
    expect(JSON.parse(st.stdout).points).toBeGreaterThanOrEqual(6);
  }, 120_000);

  it('runs an opcua input from its opcua module: exact 64-bit values, bad statuses counted, a full store\'s refusals counted quietly', async () => {
    const opcua = server();
    const sourceMs = 1714564800123;
    await opcua.set('Double', 21.5, { sourceMs });
    // Beyond 2^53, and the UInt64 under a validation rule: the rule takes it for a number only if it is
    // the main bundle's Unsigned (instanceof); a copy of the class in the opcua module would be no
    // number to it, and never valid, so the value would be dropped.
    await opcua.set('Int64', '-9007199254740993', { sourceMs });
    await opcua.set('UInt64', '18446744073709551615', { sourceMs });
    await opcua.set('Float', 1.5, { status: 'BadSensorFailure', sourceMs });
    const dir = tmpDir();
    const config = (name: string, port: number, extra: string) => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(
        file,
        [
          'version: 1',
          `agent: { id: gw-${arch}, data_dir: ${join(dir, name)}, commit_interval: 200ms }`,
          `http: { listen: "127.0.0.1:${port}" }`,
          extra,
          'inputs:',
          '  line3:',
          '    type: opcua',
          `    url: ${opcua.url}`,
          '    publishing_interval: 100ms',
          '    nodes:',
          '      - { name: d, node_id: "ns=1;s=Test.Double" }',
          '      - { name: i, node_id: "ns=1;s=Test.Int64" }',
          '      - { name: u, node_id: "ns=1;s=Test.UInt64" }',
          '      - { name: f, node_id: "ns=1;s=Test.Float" }',
          '',
        ].join('\n'),
      );
      return file;
    };
    interface InputStatus {
      points: number;
      errors: number;
      refused: number;
      counters: Record<string, number>;
    }
    const status = async (port: number) => (await getJson<{ points: number; inputs: Record<string, InputStatus> }>(`http://127.0.0.1:${port}/api/status`)).body;

    type Agent = ReturnType<typeof bin.agent>;
    const withOutput = (agent: Agent) => (err: Error) => {
      throw new Error(`${err.message}; the agent's output:\n${agent.output()}`);
    };

    const port = await freePort();
    const agent = bin.agent(config('data', port, 'rules: { validate: [{ measurement: line3, field: u, min: 0 }] }'));
    let metrics = '';
    let exitCode: number | null;
    try {
      // Stored (the store's count), not only produced, before the agent stops.
      const input = await eventually(
        async () => {
          const s = await status(port);
          return s.points >= 1 && s.inputs.line3.counters.status_BadSensorFailure >= 1 && s.inputs.line3;
        },
        90_000,
        `the opcua input's first values in the ${arch} binary`,
      ).catch(withOutput(agent));
      expect(input).toMatchObject({ points: 1, errors: 1, refused: 0, counters: { items_created: 4, items_failed: 0, status_BadSensorFailure: 1 } });
      metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
    } finally {
      exitCode = await agent.stop();
    }
    expect(exitCode).toBe(0);
    expect(opcuaModuleBytes(metrics)).toBeGreaterThan(1048576);
    // The bad Float is not stored; the others are, exactly, at their source time.
    const exported = bin.run(['export', '--data-dir', join(dir, 'data'), '--measurement', 'line3', '--precision', 'ms']);
    expect(exported.stderr).toBe('');
    expect(exported.stdout).toBe(`line3 d=21.5,i=-9007199254740993i,u=18446744073709551615u ${sourceMs}\n`);
    const lines = agent.lines();
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['sluice started', 'connected to the OPC UA server', 'sluice stopped']));
    expect(lines.filter((l) => l.level >= 40).map((l) => [l.msg, l.status])).toEqual([['values of this node are not stored while its status is not Good', 'BadSensorFailure']]);

    // A store too small for any point refuses every write as full (a SinkRefusal of the main bundle):
    // the input counts the points refused and logs nothing, as it would if it could not tell a refusal.
    const fullPort = await freePort();
    const full = bin.agent(config('full', fullPort, 'buffer: { max_size: 64KiB, when_full: drop_newest }'));
    try {
      await eventually(async () => (await status(fullPort)).inputs.line3.refused >= 1, 90_000, 'points refused by a full store').catch(withOutput(full));
    } finally {
      exitCode = await full.stop();
    }
    expect(exitCode).toBe(0);
    expect(full.lines().filter((l) => l.level >= 50)).toEqual([]);
  }, 240_000);

  it('sluice opcua browse lists the server\'s nodes with their data types', () => {
    const r = bin.run(['opcua', 'browse', server().url, '--node', 'ns=1;s=Test', '--depth', '1']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^name +node_id +class +data_type$/);
    expect(r.stdout).toMatch(/^UInt64 +ns=1;s=Test\.UInt64 +Variable +UInt64$/m);
    expect(r.stdout).toMatch(/^Structure +ns=1;s=Test\.Structure +Variable +BuildInfo$/m);
    const refused = bin.run(['opcua', 'browse', `opc.tcp://127.0.0.1:1/sluice`]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^sluice: opcua browse opc\.tcp:\/\/127\.0\.0\.1:1\/sluice: /);
  }, 120_000);

  it('writes its native addons once, to a private cache', () => {
    const dir = tmpDir();
    const lp = join(dir, 'in.lp');
    writeFileSync(lp, LP);
    expect(bin.run(['import', '--data-dir', join(dir, 'd'), '--precision', 'ms', lp]).status).toBe(0);
    const [build] = readdirSync(cache);
    expect(build).toMatch(new RegExp(`^${VERSION.replace(/\./g, '\\.')}-${arch}-[0-9a-f]{12}$`));
    const files = readdirSync(join(cache, build)).sort();
    expect(files).toEqual(expect.arrayContaining(['better_sqlite3.node']));
    expect(files.every((f) => f.endsWith('.node'))).toBe(true);
    const mtime = statSync(join(cache, build, 'better_sqlite3.node')).mtimeMs;
    expect(bin.run(['status', '--data-dir', join(dir, 'd')]).status).toBe(0);
    expect(statSync(join(cache, build, 'better_sqlite3.node')).mtimeMs).toBe(mtime);
  });
});

describe('native addon cache without a usable home', () => {
  it('falls back to a private directory under TMPDIR', () => {
    const tmp = tmpDir('sluice-tmp-');
    const dir = tmpDir();
    const x64 = () => {
      const b = binaries.find((x) => x.arch === 'x64');
      if (!b) throw new Error('no x64 binary was built');
      return b;
    };
    const lp = join(dir, 'in.lp');
    writeFileSync(lp, LP);
    // An unwritable explicit directory and no home: the next candidate, TMPDIR/sluice-<uid>, is used.
    const r = spawnSync(x64().file, ['import', '--data-dir', join(dir, 'd'), '--precision', 'ms', lp], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH, TMPDIR: tmp, SLUICE_NATIVE_DIR: '/proc/sluice-cannot-write-here', HOME: '/proc/nonexistent' },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const uid = process.getuid!();
    const root = join(tmp, `sluice-${uid}`);
    expect(statSync(root).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(root, 'native'))).toHaveLength(1);
  });
});
