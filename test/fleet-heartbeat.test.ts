// The heartbeat reaches a real mosquitto (retained, so a fleet dashboard that subscribes later still
// sees every gateway) and an HTTP endpoint, every fleet.interval, with version, config serial, health
// and backlog; a clean stop leaves a retained offline report behind.
import { join } from 'node:path';
import { connect } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { VERSION } from '../src/version.js';
import { runAgent, startFleetServer, until } from './helpers/fleet.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { tmpDir } from './helpers/tmp.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** The retained message on `topic`, as a late subscriber gets it. */
function retained(url: string, topic: string): Promise<Record<string, unknown>> {
  return message(url, topic, true);
}

/** The first message on `topic` (only a retained one if `onlyRetained`). */
async function message(url: string, topic: string, onlyRetained: boolean): Promise<Record<string, unknown>> {
  const client = connect(url, { clientId: `hb-test-${process.pid}-${Date.now()}` });
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${onlyRetained ? 'retained ' : ''}message on ${topic}`)), 10_000);
      client.on('message', (_t, payload, packet) => {
        if (onlyRetained && !packet.retain) return;
        clearTimeout(timer);
        resolve(JSON.parse(payload.toString('utf8')) as Record<string, unknown>);
      });
      client.on('connect', () => client.subscribe(topic, { qos: 1 }));
      client.on('error', reject);
    });
  } finally {
    await client.endAsync();
  }
}

describe('heartbeat', () => {
  it('publishes a retained status to sluice/<agent id>/status and POSTs it, every fleet.interval', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const server = await startFleetServer();
    cleanup.push(() => server.close());
    const dir = tmpDir('sluice-hb-');
    const a = await runAgent(
      join(dir, 'sluice.yaml'),
      [
        'version: 1',
        `agent: { id: gw-hb-7, data_dir: ${join(dir, 'data')} }`,
        'inputs:',
        '  demo: { type: simulator, interval: 100ms, series: 2 }',
        'http: { listen: off }',
        'fleet:',
        '  interval: 300ms',
        '  heartbeat:',
        `    mqtt: { url: "${broker.url}" }`,
        `    url: ${server.url}/heartbeat`,
      ].join('\n'),
    );
    cleanup.push(() => a.stop());

    // The agent connects in the background: once a report has gone out, a late subscriber must be
    // handed the retained one.
    await message(broker.url, 'sluice/gw-hb-7/status', false);
    const report = await retained(broker.url, 'sluice/gw-hb-7/status');
    expect(report).toMatchObject({
      agent_id: 'gw-hb-7',
      online: true,
      version: VERSION,
      binary_serial: null,
      config: { source: 'file', serial: null },
      health: { status: 'ok', reasons: [] },
      backlog_points: 0,
      outputs: {},
    });
    expect(typeof report.store_bytes).toBe('number');
    await until(() => server.posts('/heartbeat').length >= 3, 'three POSTs');
    const posts = server.posts('/heartbeat') as { time_ms: number; agent_id: string }[];
    expect(posts[0]).toMatchObject({ agent_id: 'gw-hb-7', version: VERSION, health: { status: 'ok' } });
    expect(posts[2].time_ms - posts[1].time_ms).toBeGreaterThanOrEqual(200);
    expect(a.fleet.fleetStatus()).toMatchObject({ url: null, heartbeat: { error: null } });

    await a.stop();
    expect(await retained(broker.url, 'sluice/gw-hb-7/status')).toMatchObject({ agent_id: 'gw-hb-7', online: false });
  });
});
