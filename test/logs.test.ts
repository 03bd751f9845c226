// Logs: structured JSON lines on stdout (journald), secrets never printed even at debug level and with
// peers failing, and quiet in steady state.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sluice, sluiceSpawn } from './helpers/cli.js';
import { eventually, freePort, getText } from './helpers/http.js';
import { tmpDir } from './helpers/tmp.js';

const SECRETS = {
  MQTT_PASSWORD: 'mqtt-Secr3t-9f1c',
  INFLUX_TOKEN: 'influx-T0ken-77ab',
  PG_PASSWORD: 'pg-Passw0rd-c0de',
  INFLUX_V1_PASSWORD: 'v1-Passw0rd-aa11',
};

async function runFor(args: string[], env: NodeJS.ProcessEnv, untilMs: number, during?: () => Promise<void>) {
  const child = sluiceSpawn(args, { env });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve((exitCode = code))));
  await eventually(
    () => {
      if (exitCode !== undefined) throw new Error(`the agent exited (${exitCode}): ${stderr}${stdout}`);
      return Promise.resolve(stdout.includes('"sluice started"'));
    },
    20_000,
    'agent start',
  );
  await during?.();
  await new Promise((r) => setTimeout(r, untilMs));
  child.kill('SIGTERM');
  const code = await exited;
  return { code, stdout, stderr };
}

describe('logs', () => {
  it('never print a secret, even at debug level with every peer down', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      `version: 1
agent: { data_dir: ${join(dir, 'data')} }
inputs:
  sim: { type: simulator, interval: 200ms }
  plant:
    type: mqtt
    url: mqtt://127.0.0.1:1
    topics: ["plant/#"]
    format: json
    username: sluice
    password: \${MQTT_PASSWORD}
aggregate: { windows: [1m] }
outputs:
  region: { type: influxdb, url: "http://127.0.0.1:1", api: v2, org: acme, bucket: edge, token: "\${INFLUX_TOKEN}" }
  legacy: { type: influxdb, url: "http://127.0.0.1:1", api: v1, database: telemetry, username: sluice, password: "\${INFLUX_V1_PASSWORD}" }
  archive: { type: timescaledb, url: "postgres://sluice:\${PG_PASSWORD}@127.0.0.1:1/telemetry", table: sensor_data }
http: { listen: "127.0.0.1:${port}" }
`,
    );
    let served = '';
    const r = await runFor(['run', '-c', cfg], { ...SECRETS, SLUICE_LOG_LEVEL: 'debug' }, 3000, async () => {
      for (const path of ['/api/status', '/metrics', '/healthz', '/']) served += (await getText(`http://127.0.0.1:${port}${path}`)).text;
    });
    expect(r.code).toBe(0);
    const everything = r.stdout + r.stderr + served;
    for (const secret of Object.values(SECRETS)) expect(everything).not.toContain(secret);
    // And the check command, which prints config errors with their values' locations.
    const check = sluice(['check', '-c', cfg], { env: SECRETS });
    for (const secret of Object.values(SECRETS)) expect(check.stdout + check.stderr).not.toContain(secret);
  });

  it('are JSON lines on stdout, and quiet while nothing changes', async () => {
    const dir = tmpDir();
    const port = await freePort();
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(cfg, `version: 1\nagent: { data_dir: ${join(dir, 'data')} }\ninputs: { sim: { type: simulator, series: 50, interval: 100ms } }\naggregate: { windows: [1m] }\nhttp: { listen: "127.0.0.1:${port}" }\n`);
    const r = await runFor(['run', '-c', cfg], {}, 12_000);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number; time: string });
    for (const l of lines) expect(l).toMatchObject({ level: expect.any(Number), time: expect.any(String), msg: expect.any(String) });
    // Start-up and shutdown say what happened; the 12 s between (commits, a compaction) say nothing.
    const started = lines.findIndex((l) => l.msg === 'sluice started');
    const stopping = lines.findIndex((l) => l.msg === 'stopping');
    expect(lines.slice(started + 1, stopping)).toEqual([]);
  });
});
