// Edge rules end to end: the real CLI agent (`sluice run`, the bundle `npm run build` makes) with the
// simulator input, validation and alert rules, and a real mosquitto the alerts are published to.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlertPayload } from '../src/rules/notify.js';
import { sluice, sluiceSpawn, waitFor } from './helpers/cli.js';
import { freePort, getJson, getText } from './helpers/http.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { tmpDir } from './helpers/tmp.js';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe('sluice run with rules', () => {
  it('drops invalid values before the store, and alerts reach mosquitto and the store', async () => {
    const broker: Mosquitto = await startMosquitto();
    cleanup.push(() => broker.stop());
    const sub = await connectAsync(broker.url, { clientId: `e2e-sub-${process.pid}`, reconnectPeriod: 0 });
    cleanup.push(() => sub.endAsync());
    const messages: { topic: string; payload: AlertPayload }[] = [];
    sub.on('message', (topic, payload) => messages.push({ topic, payload: JSON.parse(payload.toString('utf8')) as AlertPayload }));
    await sub.subscribeAsync('sluice/#', { qos: 1 });

    const dir = tmpDir();
    const data = join(dir, 'data');
    const httpPort = await freePort();
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      [
        'version: 1',
        'agent: { id: gw-e2e, tags: { site: e2e }, commit_interval: 100ms }',
        `http: { listen: "127.0.0.1:${httpPort}" }`,
        'inputs:',
        '  sim: { type: simulator, series: 2, interval: 200ms }',
        'rules:',
        '  validate:',
        '    - { measurement: sim, field: humidity, max: 1 }   # the simulator never sends humidity <= 1: all dropped',
        '  alerts:',
        '    - { name: warm, measurement: sim, when: "temperature > 0", cooldown: 1h }',
        '    - { name: ghost, measurement: nothing, silence: 1s, severity: critical, per: measurement }',
        '  notify:',
        `    mqtt: { url: "${broker.url}", topic: "sluice/{agent}/alerts/{rule}" }`,
        '',
      ].join('\n'),
    );
    expect(sluice(['check', '-c', config]).status).toBe(0);

    const child = sluiceSpawn(['run', '-c', config, '--data-dir', data]);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    cleanup.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });

    const rulesOf = () => messages.map((m) => `${m.payload.rule}:${m.payload.tags.sensor ?? '-'}`).sort();
    await waitFor(() => rulesOf().length >= 3, 20_000, `three alerts on mosquitto (got ${JSON.stringify(rulesOf())}; agent output:\n${stdout}${stderr})`);
    expect(rulesOf()).toEqual(['ghost:-', 'warm:s000', 'warm:s001']);
    const warm = messages.find((m) => m.payload.rule === 'warm')!;
    expect(warm.topic).toBe('sluice/gw-e2e/alerts/warm');
    expect(warm.payload).toMatchObject({ agent: 'gw-e2e', severity: 'warning', state: 'firing', measurement: 'sim', field: 'temperature', condition: '> 0', tags: { site: 'e2e' } });
    expect(typeof warm.payload.value).toBe('number');
    const ghost = messages.find((m) => m.payload.rule === 'ghost')!;
    expect(ghost.payload).toMatchObject({ severity: 'critical', state: 'firing', measurement: 'nothing', tags: { site: 'e2e' }, message: 'ghost: no data from nothing for 1s' });

    // The rules' counters are in the agent's status and metrics.
    const status = await getJson<{ rules: { validate: Record<string, { dropped_values?: number }>; alerts: Record<string, unknown> } }>(`http://127.0.0.1:${httpPort}/api/status`);
    expect(Object.keys(status.body.rules.alerts).sort()).toEqual(['ghost', 'warm']);
    expect(Object.keys(status.body.rules.validate)).toHaveLength(1);
    const metrics = await getText(`http://127.0.0.1:${httpPort}/metrics`);
    expect(metrics.text).toMatch(/^sluice_rules_values_dropped_total\{[^}]*\} [1-9]/m);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // One firing per series within the cooldown, however many readings came after.
    expect(messages).toHaveLength(3);

    // The alerts are stored as points, with the agent's tags, like any data the outputs ship.
    const alerts = sluice(['export', '--data-dir', data, '--measurement', 'sluice_alert', '--precision', 'ms']);
    expect(alerts.status, alerts.stderr).toBe(0);
    const lines = alerts.stdout.trim().split('\n').sort();
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(`sluice_alert,rule=ghost,severity=critical,site=e2e state="firing",message="ghost: no data from nothing for 1s",value=${String(ghost.payload.value)} ${ghost.payload.time_ms}`);
    expect(lines[1]).toMatch(/^sluice_alert,rule=warm,sensor=s000,severity=warning,site=e2e state="firing",message="warm: temperature is [0-9.]+ \(> 0\) on sim sensor=s000,site=e2e",value=[0-9.]+ \d+$/);
    expect(lines[2]).toMatch(/^sluice_alert,rule=warm,sensor=s001,severity=warning,/);

    // Every humidity reading was dropped before the ring; the other fields are all there.
    const sim = sluice(['export', '--data-dir', data, '--measurement', 'sim']).stdout.trim().split('\n');
    expect(sim.length).toBeGreaterThan(4);
    for (const line of sim) {
      expect(line).not.toContain('humidity=');
      expect(line).toMatch(/[ ,]temperature=[-0-9.]+[ ,]/);
      expect(line).toMatch(/[ ,]counter=\d+i[ ,]/);
    }
  });
});
