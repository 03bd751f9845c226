// config/grafana-dashboard.json: valid JSON a Grafana can import, and every metric it queries is one
// the agent exports (a renamed metric would leave a panel silently empty).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent/agent.js';
import { loadConfig } from '../src/config/index.js';
import type { Input, Logger } from '../src/core/component.js';
import { startHttp, type HttpEndpoint } from '../src/http/server.js';
import { eventually, getText } from './helpers/http.js';
import { tmpDir } from './helpers/tmp.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string }[];
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'config/grafana-dashboard.json'), 'utf8')) as { uid: string; title: string; panels: Panel[]; templating: { list: { name: string }[] } };

/** Metric names in a PromQL expression. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\bsluice_[a-z0-9_]+/g)].map((m) => m[0]);
}

describe('config/grafana-dashboard.json', () => {
  let agent: Agent;
  let endpoint: HttpEndpoint;
  let metrics = '';

  beforeAll(async () => {
    const text = `version: 1
agent: { commit_interval: 100ms }
inputs: { sim: { type: simulator, series: 2, interval: 100ms } }
aggregate: { windows: [1m] }
outputs: { region: { type: influxdb, url: "http://127.0.0.1:1", api: v1, database: telemetry } }
http: { listen: "off" }
`;
    const loaded = loadConfig({ text });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const config = loaded.config;
    agent = new Agent({ config, ring: { dataDir: tmpDir(), maxBytes: 64 * 1048576, whenFull: 'rollup', commitIntervalMs: 100 }, log: quiet });
    await agent.start();
    // A Modbus input with errors, as the endpoint sees one, so the Modbus panels have series too.
    const modbus: Input = {
      start: () => Promise.resolve(),
      stop: () => Promise.resolve(),
      stats: () => ({ points: 1, errors: 2, refused: 0, lastPointMs: Date.now(), counters: { exception_2: 2, timeouts: 1 } }),
    };
    const modbusConfig = loadConfig({
      text: text.replace('inputs: {', 'inputs: { boiler: { type: modbus, url: "tcp://127.0.0.1:1", devices: [{ unit_id: 1, registers: [{ name: t, table: holding, address: 0 }] }] },'),
    });
    if (!modbusConfig.ok) throw new Error(JSON.stringify(modbusConfig.errors));
    endpoint = (await startHttp(
      { config: modbusConfig.config, ring: agent.ring, inputs: new Map([...agent.inputs, ['boiler', modbus]]), outputs: agent.outputs },
      quiet,
      { listen: '127.0.0.1:0' },
    ))!;
    metrics = await eventually(async () => {
      const t = (await getText(`${endpoint.url}/metrics`)).text;
      return /^sluice_output_requests_total\{[^}]*\} [1-9]/m.test(t) && t;
    }, 20_000, 'the output to have tried a request');
  });
  afterAll(async () => {
    await endpoint?.close();
    await agent?.stop();
  });

  it('is an importable dashboard with unique panel ids, on a 24-column grid', () => {
    expect(dashboard.uid).toBe('sluice-agent');
    expect(dashboard.templating.list.map((v) => v.name)).toContain('instance');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type !== 'row') expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.expr, p.title).toContain('instance=~"$instance"');
    }
  });

  it('queries only metrics the agent exports', () => {
    const queried = new Set(dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricsIn(t.expr))));
    expect(queried.size).toBeGreaterThan(30);
    const exported = new Set([...metrics.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    // A histogram's _bucket, _sum and _count series belong to the family its TYPE line names.
    const missing = [...queried].filter((m) => !exported.has(m) && !exported.has(m.replace(/_(bucket|sum|count)$/, '')));
    expect(missing).toEqual([]);
    // ...and the panels about the flow show data right away, not just a declared family.
    for (const name of ['sluice_input_points_total', 'sluice_output_backlog_points', 'sluice_output_requests_total', 'sluice_modbus_errors_total', 'sluice_store_size_bytes', 'sluice_store_commit_duration_seconds_bucket']) {
      expect(metrics, name).toMatch(new RegExp(`^${name}(\\{| )`, 'm'));
    }
  });
});
