// The agent's HTTP endpoint: /metrics, /healthz, /api/*, against a real agent and store; and
// `sluice health` against a running `sluice run`.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent/agent.js';
import { loadConfig, type Config } from '../src/config/index.js';
import type { Input, InputStats, Logger } from '../src/core/component.js';
import { evaluateHealth, DEFAULT_HEALTH } from '../src/http/health.js';
import { startHttp, type HttpEndpoint } from '../src/http/server.js';
import type { StatusSnapshot } from '../src/http/view.js';
import type { StoreStatus } from '../src/store/ring.js';
import { CLI, sluice, sluiceSpawn } from './helpers/cli.js';
import { eventually, freePort, getJson, getText } from './helpers/http.js';
import { tmpDir } from './helpers/tmp.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

function config(text: string): Config {
  const r = loadConfig({ text, env: { INFLUX_TOKEN: 'tok-123' } });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

/** What the endpoint is told about inputs and outputs: the agent runs the simulator; the view adds a Modbus input and an output. */
const VIEW_CONFIG = `
version: 1
agent: { id: gw-test, commit_interval: 100ms }
inputs:
  sim: { type: simulator, series: 4, interval: 100ms }
  boiler:
    type: modbus
    url: tcp://127.0.0.1:1
    interval: 1s
    devices: [{ unit_id: 1, registers: [{ name: supply_temp, table: holding, address: 100, type: float32 }] }]
aggregate: { windows: [1m] }
outputs:
  region: { type: influxdb, url: "http://127.0.0.1:1", api: v2, org: acme, bucket: edge, token: "\${INFLUX_TOKEN}" }
http: { listen: "off" }
`;

/** A Modbus input as the endpoint sees one: stats with exception and timeout counters. */
function fakeModbus(): Input {
  return {
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    stats: (): InputStats => ({ points: 7, errors: 8, refused: 0, lastPointMs: Date.now(), counters: { requests: 20, exception_2: 3, timeouts: 5, crc_errors: 1, polls: 10 } }),
  };
}

describe('HTTP endpoint of a running agent', () => {
  let agent: Agent | undefined;
  let endpoint: HttpEndpoint | undefined;
  afterEach(async () => {
    await endpoint?.close();
    await agent?.stop();
    endpoint = undefined;
    agent = undefined;
  });

  async function startAgent(dataDir: string, health = { minSilentMs: 500 }) {
    const viewConfig = config(VIEW_CONFIG);
    const agentConfig = config(VIEW_CONFIG.replace(/ {2}boiler:[\s\S]*?(?=aggregate:)/, '').replace(/\n {2}region:.*\n/, '\n  {}\n'));
    agent = new Agent({ config: agentConfig, ring: { dataDir, maxBytes: 256 * 1048576, whenFull: 'rollup', commitIntervalMs: 100 }, log: quiet });
    // An output's cursor, as the sync engine makes one: everything stored is its backlog.
    agent.ring.registerOutput('region');
    await agent.start();
    const inputs = new Map<string, Input>([...agent.inputs, ['boiler', fakeModbus()]]);
    endpoint = await startHttp({ config: viewConfig, ring: agent.ring, inputs }, quiet, { listen: '127.0.0.1:0', health });
    expect(endpoint).toBeDefined();
    return endpoint!.url;
  }

  it('serves Prometheus metrics with the agreed names', async () => {
    const url = await startAgent(tmpDir());
    await eventually(async () => (await getJson<{ points: number }>(`${url}/api/status`)).body.points > 0, 10_000, 'points stored');
    const { status, text, type } = await getText(`${url}/metrics`);
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain/);
    const sample = (name: string, labels = ''): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
      if (!line) throw new Error(`no sample ${name}{${labels}} in:\n${text}`);
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    expect(sample('sluice_input_points_total', 'input="sim",type="simulator"')).toBeGreaterThan(0);
    expect(sample('sluice_input_errors_total', 'input="boiler",type="modbus"')).toBe(8);
    expect(sample('sluice_modbus_errors_total', 'input="boiler",code="2"')).toBe(3);
    expect(sample('sluice_modbus_errors_total', 'input="boiler",code="timeout"')).toBe(5);
    expect(sample('sluice_modbus_errors_total', 'input="boiler",code="crc"')).toBe(1);
    expect(sample('sluice_input_driver_events_total', 'input="boiler",type="modbus",event="requests"')).toBe(20);
    expect(sample('sluice_store_size_bytes')).toBeGreaterThan(0);
    expect(sample('sluice_store_capacity_bytes')).toBe(256 * 1048576);
    expect(sample('sluice_store_points')).toBeGreaterThan(0);
    expect(sample('sluice_output_backlog_points', 'output="region",type="influxdb"')).toBeGreaterThan(0);
    expect(sample('sluice_output_oldest_unsent_age_seconds', 'output="region",type="influxdb"')).toBeGreaterThanOrEqual(0);
    expect(sample('sluice_output_sent_points_total', 'output="region",type="influxdb"')).toBe(0);
    expect(sample('sluice_output_rejected_points_total', 'output="region",type="influxdb"')).toBe(0);
    expect(sample('sluice_store_commit_duration_seconds_count')).toBeGreaterThan(0);
    expect(sample('sluice_store_commit_duration_seconds_bucket', 'le="+Inf"')).toBeGreaterThan(0);
    expect(sample('sluice_store_committed_points_total')).toBeGreaterThan(0);
    expect(sample('sluice_process_resident_memory_bytes')).toBeGreaterThan(10 * 1048576);
    expect(sample('sluice_health_check_ok', 'check="input:sim"')).toBe(1);
    expect(text).toContain('# TYPE sluice_store_dropped_points_total counter');
    // Every series follows sluice_<area>_<name>_<unit>[_total]: the prefix and snake case at least.
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) expect(line).toMatch(/^sluice_[a-z0-9_]+[{ ]/);
    // Secrets from the config never reach the endpoint.
    expect(text).not.toContain('tok-123');
  });

  it('reports health 200, then 503 with the reason when an input goes silent', async () => {
    const url = await startAgent(tmpDir());
    const ok = await eventually(async () => {
      const r = await getJson<{ status: string }>(`${url}/healthz`);
      return r.status === 200 && r;
    }, 10_000, 'healthy');
    expect(ok.body.status).toBe('ok');
    await agent!.inputs.get('sim')!.stop();
    const bad = await eventually(async () => {
      const r = await getJson<{ status: string; reasons: string[] }>(`${url}/healthz`);
      return r.status === 503 && r;
    }, 10_000, 'unhealthy');
    expect(bad.body.status).toBe('unhealthy');
    expect(bad.body.reasons).toHaveLength(1);
    expect(bad.body.reasons[0]).toMatch(/^input sim: no point for \d+m?s \(expected one every 100ms; 0 errors\)$/);
    const metrics = (await getText(`${url}/metrics`)).text;
    expect(metrics).toContain('sluice_health_check_ok{check="input:sim"} 0');
  });

  it('answers /api/status with status --json plus version, inputs and health', async () => {
    const url = await startAgent(tmpDir());
    await eventually(async () => (await getJson<{ points: number }>(`${url}/api/status`)).body.points > 0, 10_000, 'points stored');
    const { status, body } = await getJson<Record<string, unknown> & { outputs: Record<string, Record<string, unknown>>; inputs: Record<string, Record<string, unknown>> }>(`${url}/api/status`);
    expect(status).toBe(200);
    for (const key of ['points', 'values', 'series', 'store_bytes', 'capacity_bytes', 'oldest_ms', 'newest_ms', 'dropped', 'outputs', 'version', 'agent_id', 'started_ms', 'inputs', 'health']) {
      expect(body, key).toHaveProperty(key);
    }
    expect(body.agent_id).toBe('gw-test');
    expect(body.fleet).toBeNull();
    expect(typeof body.version).toBe('string');
    expect(Object.keys(body.outputs.region)).toEqual(
      expect.arrayContaining(['backlog_points', 'backlog_values', 'last_success_ms', 'oldest_unsent_ms', 'rejected_points', 'sent_points', 'type']),
    );
    expect(body.outputs.region.type).toBe('influxdb');
    expect(body.inputs.sim).toMatchObject({ type: 'simulator', measurement: 'sim', interval_ms: 100, errors: 0 });
    expect(body.inputs.sim.points as number).toBeGreaterThan(0);
    expect(body.inputs.boiler).toMatchObject({ type: 'modbus', measurement: 'boiler', counters: { exception_2: 3 } });
    expect(JSON.stringify(body)).not.toContain('tok-123');
  });

  it('serves recent series and latest values for the page', async () => {
    const url = await startAgent(tmpDir());
    await eventually(async () => (await getJson<{ points: number }>(`${url}/api/status`)).body.points >= 40, 10_000, 'points stored');
    const series = await getJson<{ field: string; fields: string[]; series: { tags: Record<string, string>; points: [number, number][] }[]; truncated: boolean }>(
      `${url}/api/series?measurement=sim&since=-1m&limit=3&points=50`,
    );
    expect(series.status).toBe(200);
    expect(series.body.fields).toEqual(['alarm', 'counter', 'humidity', 'temperature']);
    expect(series.body.field).toBe('temperature');
    expect(series.body.series).toHaveLength(3);
    expect(series.body.truncated).toBe(true);
    const temp = await getJson<{ field: string; series: { tags: Record<string, string>; points: [number, number][] }[] }>(`${url}/api/series?measurement=sim&field=temperature&since=-1m`);
    expect(temp.body.field).toBe('temperature');
    expect(temp.body.series[0].tags).toEqual({ sensor: 's000' });
    for (const [t, v] of temp.body.series[0].points) {
      expect(t).toBeGreaterThan(Date.now() - 120_000);
      expect(v).toBeGreaterThan(0);
    }
    const latest = await getJson<{ rows: { tags: Record<string, string>; fields: Record<string, unknown> }[] }>(`${url}/api/latest?measurement=sim&limit=2`);
    expect(latest.body.rows).toHaveLength(2);
    expect(Object.keys(latest.body.rows[0].fields).sort()).toEqual(['alarm', 'counter', 'humidity', 'temperature']);
    expect((await getJson<{ measurements: string[] }>(`${url}/api/measurements`)).body.measurements).toEqual(['sim']);
    expect((await getText(`${url}/api/series`)).status).toBe(400);
  });

  it('refuses what it does not serve', async () => {
    const url = await startAgent(tmpDir());
    expect((await getText(`${url}/nope`)).status).toBe(404);
    expect((await getText(`${url}/metrics`, { method: 'POST' })).status).toBe(405);
    // DNS rebinding: a loopback endpoint answers loopback host names only.
    const rebound = await new Promise<number | undefined>((resolve, reject) => {
      get(`${url}/api/status`, { headers: { Host: 'evil.example:9273' } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    expect(rebound).toBe(421);
    const page = await getText(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.type).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('<title>sluice</title>');
    // Served from the binary: no external scripts, styles or fonts.
    expect(page.text).not.toMatch(/(src|href)="(https?:)?\/\//);
  });
});

describe('health rules', () => {
  const store = (outputs: StoreStatus['outputs'] = {}): StoreStatus => ({
    points: 0, values: 0, series: 0, chunks: 0, store_bytes: 1, capacity_bytes: 2, used_bytes: 1, oldest_ms: null, newest_ms: null,
    when_full: 'rollup', dropped: {}, dropped_values: {}, outputs, tiers: {}, runway_s: null, quarantine: {},
  });
  const base = { startedMs: 0, lastCommitError: null, freeDiskBytes: 1e12, outputStats: {} };

  it('flags an output that has delivered nothing for too long while data waits', () => {
    const now = 10 * 60_000;
    const snapshot: StatusSnapshot = {
      nowMs: now,
      inputs: {},
      store: store({
        region: { backlog_points: 500, backlog_values: 2000, oldest_unsent_ms: 0, last_success_ms: 60_000, sent_points: 10, rejected_points: 0, lost_unsent_points: 0 },
        idle: { backlog_points: 0, backlog_values: 0, oldest_unsent_ms: null, last_success_ms: null, sent_points: 0, rejected_points: 0, lost_unsent_points: 0 },
      }),
    };
    const r = evaluateHealth({ ...base, snapshot, outputStats: { region: { lastError: 'HTTP 503 from upstream', paused: null, lastSuccessMs: null } } });
    expect(r.status).toBe('unhealthy');
    expect(r.reasons).toEqual(['output region: nothing delivered for 9m, 500 points waiting: HTTP 503 from upstream']);
  });

  it('flags a paused output at once', () => {
    const snapshot: StatusSnapshot = {
      nowMs: 1000,
      inputs: {},
      store: store({ region: { backlog_points: 5, backlog_values: 5, oldest_unsent_ms: 0, last_success_ms: null, sent_points: 0, rejected_points: 0, lost_unsent_points: 0 } }),
    };
    const r = evaluateHealth({ ...base, snapshot, outputStats: { region: { lastError: 'HTTP 401: unauthorized', paused: 'auth', lastSuccessMs: null } } });
    expect(r.reasons).toEqual(['output region: paused (auth), 5 points waiting: HTTP 401: unauthorized']);
  });

  it('never calls an event-driven input silent, and reports a failed commit and a full disk', () => {
    const snapshot: StatusSnapshot = {
      nowMs: 3_600_000,
      inputs: { plant: { type: 'mqtt', measurement: null, interval_ms: null, points: 0, errors: 0, refused: 0, lastPointMs: null } },
      store: store(),
    };
    expect(evaluateHealth({ ...base, snapshot }).status).toBe('ok');
    expect(evaluateHealth({ ...base, snapshot, lastCommitError: new Error('disk I/O error') }).reasons).toEqual(['store: the last group commit failed: disk I/O error']);
    expect(evaluateHealth({ ...base, snapshot, freeDiskBytes: 1024 }, DEFAULT_HEALTH).reasons[0]).toMatch(/^store: only 0\.0 MiB free/);
  });
});

describe('sluice health', () => {
  it('waits for a starting agent, reports it healthy, and exits 69 when none answers', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(cfg, `version: 1\nagent: { data_dir: ${join(dir, 'data')} }\ninputs: { sim: { type: simulator, interval: 200ms } }\naggregate: { windows: [1m] }\nhttp: { listen: "127.0.0.1:${port}" }\n`);
    const child = sluiceSpawn(['run', '-c', cfg]);
    try {
      // Asynchronously: the agent must be able to start while `health --wait` polls.
      const health = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const c = sluiceSpawn(['health', '-c', cfg, '--wait', '20s']);
        let stdout = '';
        c.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
        c.on('exit', (status) => resolve({ status, stdout }));
      });
      expect(health.status).toBe(0);
      expect(JSON.parse(health.stdout)).toMatchObject({ status: 'ok' });
      const status = await getJson<{ version: string }>(`http://127.0.0.1:${port}/api/status`);
      expect(`sluice ${status.body.version}\n`).toBe(sluice(['--version']).stdout);
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      expect(code).toBe(0);
      const gone = spawnSync(process.execPath, [CLI, 'health', '--url', `http://127.0.0.1:${port}`], { encoding: 'utf8' });
      expect(gone.status).toBe(69);
      expect(gone.stderr).toContain(`no agent answers at http://127.0.0.1:${port}/healthz`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('passes at once when the endpoint is off', () => {
    const dir = tmpDir();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(cfg, 'version: 1\ninputs: {}\naggregate: { windows: [1m] }\nhttp: { listen: "off" }\n');
    const r = sluice(['health', '-c', cfg]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('http endpoint is off');
  });
});
