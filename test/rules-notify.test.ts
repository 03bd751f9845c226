// Alerts against real peers: a mosquitto broker on loopback (subscribed to with mqtt.js), a node:http
// webhook receiver, and the real SQLite ring the alert points are stored in. Without mosquitto the
// tests fail (startMosquitto throws): an MQTT test that passes without a broker proves nothing.
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { groupRows } from '../src/query/rows.js';
import type { FieldValue } from '../src/core/point.js';
import { RulesEngine } from '../src/rules/engine.js';
import type { AlertPayload } from '../src/rules/notify.js';
import { SqliteRing } from '../src/store/ring.js';
import { waitFor } from './helpers/cli.js';
import { freePort, startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { point, quiet, recordingLogger, rulesConfig, startWebhook, type Webhook } from './helpers/rules.js';
import { tmpDir } from './helpers/tmp.js';

let hook: Webhook;
const cleanup: (() => Promise<void> | void)[] = [];

// Started by the first test that needs it, not in beforeAll: without mosquitto each such test fails
// on its own rather than being reported as skipped.
let brokerStart: Promise<Mosquitto> | undefined;
const sharedBroker = (): Promise<Mosquitto> => (brokerStart ??= startMosquitto());
afterAll(async () => {
  const b = await brokerStart?.catch(() => undefined);
  await b?.stop();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await hook?.close();
});

function openRing(): SqliteRing {
  const ring = SqliteRing.open({ dataDir: tmpDir(), maxBytes: 64 * 1048576, whenFull: 'drop_oldest', commitIntervalMs: 20 });
  cleanup.push(() => ring.close());
  return ring;
}

/** Every stored sluice_alert row: its series key, time and fields. */
function storedAlerts(ring: SqliteRing): { key: string; timeUs: number; fields: Record<string, FieldValue> }[] {
  return [...ring.scan({ measurement: 'sluice_alert' })].flatMap((s) =>
    [...groupRows(s.group)].map((r) => ({ key: s.key, timeUs: r.timeUs, fields: Object.fromEntries(r.fields) })),
  );
}

async function subscribe(topic: string): Promise<{ client: MqttClient; messages: { topic: string; payload: AlertPayload; retain: boolean }[] }> {
  const broker = await sharedBroker();
  const client = await connectAsync(broker.url, { clientId: `rules-sub-${process.pid}-${Math.random().toString(36).slice(2)}`, reconnectPeriod: 0 });
  cleanup.push(() => client.endAsync());
  const messages: { topic: string; payload: AlertPayload; retain: boolean }[] = [];
  client.on('message', (t, payload, packet) => messages.push({ topic: t, payload: JSON.parse(payload.toString('utf8')) as AlertPayload, retain: packet.retain }));
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, messages };
}

describe('alerts reach mosquitto, a webhook and the ring', () => {
  it('a firing alert is published as JSON, POSTed as JSON and stored as a sluice_alert point', async () => {
    const broker = await sharedBroker();
    hook = await startWebhook();
    const sub = await subscribe('sluice/#');
    const ring = openRing();
    const config = rulesConfig(
      'validate:',
      '  - { measurement: climate, field: temperature, min: -50, max: 100 }',
      'alerts:',
      '  - { name: hot, measurement: climate, field: temperature, when: "> 35", severity: critical, cooldown: 1h, tags: { room: a } }',
      'notify:',
      `  mqtt: { url: "${broker.url}", topic: "sluice/{agent}/alerts/{rule}", qos: 1 }`,
      `  webhook: { url: "${hook.url}", headers: { Authorization: "Bearer t0k" } }`,
    );
    const engine = new RulesEngine(config, { agentId: 'gw-7', agentTags: { site: 'p1' }, log: quiet, store: (p) => ring.write(p) });
    await engine.start();
    cleanup.push(() => engine.stop());

    const t0 = Date.now();
    const kept = engine.process([
      point('climate', { room: 'a', site: 'p1' }, { temperature: 21 }, t0 - 2000),
      point('climate', { room: 'a', site: 'p1' }, { temperature: 250 }, t0 - 1000), // invalid: dropped, never alerts
      point('climate', { room: 'a', site: 'p1' }, { temperature: 36.5, humidity: 40 }, t0),
    ]);
    await ring.write(kept);
    await waitFor(() => sub.messages.length >= 1 && hook.requests.length >= 1, 10_000, 'the alert on mosquitto and the webhook');

    const expected = {
      agent: 'gw-7',
      rule: 'hot',
      severity: 'critical',
      state: 'firing',
      measurement: 'climate',
      field: 'temperature',
      tags: { room: 'a', site: 'p1' },
      value: 36.5,
      condition: '> 35',
      message: 'hot: temperature is 36.5 (> 35) on climate room=a,site=p1',
      data_time_ms: t0,
    };
    expect(sub.messages).toHaveLength(1);
    expect(sub.messages[0].topic).toBe('sluice/gw-7/alerts/hot');
    expect(sub.messages[0].retain).toBe(false);
    const payload = sub.messages[0].payload;
    expect(payload).toMatchObject(expected);
    expect(payload.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload.time).toBe(new Date(payload.time_ms).toISOString());
    expect(payload.since_ms).toBe(payload.time_ms);

    expect(hook.requests).toHaveLength(1);
    const req = hook.requests[0];
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/hook');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe('Bearer t0k');
    expect(req.headers['user-agent']).toMatch(/^sluice\//);
    // The same event, the same id, on both.
    expect(JSON.parse(req.body)).toEqual(payload);

    await waitFor(() => engine.stats().alert_points.stored === 1, 5000, 'the alert point to be committed');
    expect(storedAlerts(ring)).toEqual([
      {
        key: 'sluice_alert,room=a,rule=hot,severity=critical,site=p1',
        timeUs: payload.time_ms * 1000,
        fields: { state: 'firing', message: expected.message, value: 36.5 },
      },
    ]);
    // The invalid reading never reached the ring; the good ones did.
    const climate = [...ring.scan({ measurement: 'climate' })].flatMap((s) => [...groupRows(s.group)].map((r) => Object.fromEntries(r.fields)));
    expect(climate).toEqual([{ temperature: 21 }, { temperature: 36.5, humidity: 40 }]);

    // Resolution goes the same ways.
    engine.process([point('climate', { room: 'a', site: 'p1' }, { temperature: 20 })]);
    await waitFor(() => sub.messages.length >= 2 && hook.requests.length >= 2, 10_000, 'the resolved alert');
    expect(sub.messages[1].payload).toMatchObject({ rule: 'hot', state: 'resolved', value: 20, since_ms: payload.time_ms });
    expect(JSON.parse(hook.requests[1].body)).toMatchObject({ state: 'resolved' });
    // The receivers may see an alert before the sender has its acknowledgement.
    await waitFor(() => engine.stats().notify.mqtt!.sent === 2 && engine.stats().notify.webhook!.sent === 2, 5000, 'both deliveries counted');
    expect(engine.stats().notify).toMatchObject({ mqtt: { sent: 2, failed: 0, retries: 0 }, webhook: { sent: 2, failed: 0, retries: 0 } });
  });

  it('a silence alert reaches mosquitto with the retain flag when asked for', async () => {
    const broker = await sharedBroker();
    const sub = await subscribe('plant/alerts/#');
    const ring = openRing();
    const config = rulesConfig(
      'alerts:',
      '  - { name: ghost, measurement: nothing, silence: 1s, severity: critical, per: measurement }',
      'notify:',
      `  mqtt: { url: "${broker.url}", topic: "plant/alerts/{severity}", qos: 2, retain: true }`,
    );
    const engine = new RulesEngine(config, { agentId: 'gw-7', agentTags: {}, log: quiet, store: (p) => ring.write(p) });
    await engine.start();
    cleanup.push(() => engine.stop());
    // The timer is real here (1 s silence, checked every second): the broker path is what is tested.
    await waitFor(() => sub.messages.length >= 1, 10_000, 'the silence alert');
    expect(sub.messages[0].topic).toBe('plant/alerts/critical');
    expect(sub.messages[0].payload).toMatchObject({ rule: 'ghost', state: 'firing', measurement: 'nothing', field: null, tags: {}, condition: 'silence 1s' });
    // A new subscriber gets the retained alert.
    const late = await subscribe('plant/alerts/critical');
    await waitFor(() => late.messages.length >= 1, 5000, 'the retained alert');
    expect(late.messages[0]).toMatchObject({ retain: true, payload: { id: sub.messages[0].payload.id } });
  });
});

describe('notification failures', () => {
  it('a webhook answering 503 then 200 gets the alert after retries; a 400 is not retried', async () => {
    hook = await startWebhook();
    hook.answers.push({ status: 503, headers: { 'retry-after': '0' } }, { status: 500 }, { status: 200 }, { status: 400 });
    const config = rulesConfig(
      'alerts:',
      '  - { name: hot, measurement: m, when: "v > 1", cooldown: 1h }',
      'notify:',
      `  webhook: { url: "${hook.url}" }`,
      '  retries: 3',
      '  retry_backoff: 20ms',
    );
    const engine = new RulesEngine(config, { agentId: 'gw', agentTags: {}, log: quiet, store: () => Promise.resolve() });
    await engine.start();
    cleanup.push(() => engine.stop());
    engine.process([point('m', { s: '1' }, { v: 2 })]);
    await waitFor(() => engine.stats().notify.webhook!.sent === 1, 10_000, 'delivery after retries');
    expect(hook.requests).toHaveLength(3);
    // Each attempt carries the same event.
    expect(new Set(hook.requests.map((r) => (JSON.parse(r.body) as AlertPayload).id)).size).toBe(1);
    engine.process([point('m', { s: '2' }, { v: 2 })]);
    await waitFor(() => engine.stats().notify.webhook!.failed === 1, 10_000, 'the 400 to be given up on');
    expect(hook.requests).toHaveLength(4);
    expect(engine.stats().notify.webhook).toMatchObject({ sent: 1, failed: 1, retries: 2, dropped: 0, queued: 0, last_error: 'webhook: HTTP 400 Bad Request' });
  });

  it('an unreachable broker and webhook are counted and logged once, and never hold up ingestion', async () => {
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const log = recordingLogger();
    const ring = openRing();
    const config = rulesConfig(
      'alerts:',
      '  - { name: hot, measurement: m, when: "v > 1", cooldown: 1h }',
      'notify:',
      `  mqtt: { url: "mqtt://127.0.0.1:${mqttPort}", timeout: 200ms }`,
      `  webhook: { url: "http://127.0.0.1:${httpPort}/hook", timeout: 200ms }`,
      '  retries: 2',
      '  retry_backoff: 10ms',
    );
    const engine = new RulesEngine(config, { agentId: 'gw', agentTags: {}, log, store: (p) => ring.write(p) });
    await engine.start();
    cleanup.push(() => engine.stop());
    const started = performance.now();
    for (let s = 0; s < 5; s++) await ring.write(engine.process([point('m', { s: String(s) }, { v: 2 })]));
    // Five alerts, five group commits at the ring's pace; waiting on the notifiers would take over 3 s.
    expect(performance.now() - started).toBeLessThan(2000);
    await waitFor(() => engine.stats().notify.mqtt!.failed === 5 && engine.stats().notify.webhook!.failed === 5, 20_000, 'every alert to be given up on');
    const stats = engine.stats();
    expect(stats.notify.mqtt).toMatchObject({ sent: 0, failed: 5, retries: 10, queued: 0 });
    expect(stats.notify.mqtt!.last_error).toMatch(/^mqtt: not connected to mqtt:\/\/127\.0\.0\.1:\d+/);
    expect(stats.notify.webhook).toMatchObject({ sent: 0, failed: 5, retries: 10, queued: 0 });
    expect(stats.notify.webhook!.last_error).toMatch(/^webhook: fetch failed: .*ECONNREFUSED/);
    // The alerts themselves are in the store all the same.
    await waitFor(() => engine.stats().alert_points.stored === 5, 5000, 'the alert points');
    expect(storedAlerts(ring)).toHaveLength(5);
    const warnings = log.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
    expect(warnings.filter((m) => m.startsWith('alerts: webhook failed'))).toHaveLength(1);
    expect(warnings.filter((m) => m.startsWith('alerts: mqtt failed'))).toHaveLength(1);
  });

  it('an alert raised while the broker is down goes out once it is back', async () => {
    const down = await startMosquitto();
    cleanup.push(() => down.stop());
    const url = down.url;
    const config = rulesConfig(
      'alerts:',
      '  - { name: hot, measurement: m, when: "v > 1", cooldown: 1h }',
      'notify:',
      `  mqtt: { url: "${url}", timeout: 1s }`,
      '  retries: 20',
      '  retry_backoff: 100ms',
    );
    // Subscribed before the outage; it reconnects (and resubscribes) far sooner than the engine's client.
    const client = await connectAsync(url, { clientId: `late-${process.pid}`, reconnectPeriod: 100 });
    cleanup.push(() => client.endAsync(true));
    const got: AlertPayload[] = [];
    client.on('message', (_t, p) => got.push(JSON.parse(p.toString('utf8')) as AlertPayload));
    client.on('error', () => {});
    await client.subscribeAsync('sluice/gw/alerts', { qos: 1 });
    const engine = new RulesEngine(config, { agentId: 'gw', agentTags: {}, log: quiet, store: () => Promise.resolve() });
    await engine.start();
    cleanup.push(() => engine.stop());
    await down.stop({ keepDir: true });
    engine.process([point('m', {}, { v: 2 })]);
    await waitFor(() => engine.stats().notify.mqtt!.retries >= 1, 10_000, 'a failed attempt');
    await down.restart();
    // mqtt.js reconnects every 5 s; the channel keeps retrying until then.
    await waitFor(() => got.length >= 1, 20_000, 'the alert after the broker came back');
    expect(got[0]).toMatchObject({ rule: 'hot', state: 'firing' });
    await waitFor(() => engine.stats().notify.mqtt!.sent === 1, 5000, 'the delivery counted');
    expect(engine.stats().notify.mqtt).toMatchObject({ sent: 1, failed: 0 });
  });
});
