// The mqtt input against a real mosquitto on loopback, writing into the real ring. The broker's own
// log (log_type all) is the witness for acknowledgements: "Received PUBACK from <client>" is the moment
// the broker lets go of a message.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatConfigErrors, loadConfig } from '../../src/config/index.js';
import type { MqttInputConfig } from '../../drivers/mqtt/schema.js';
import type { Logger, Sink } from '../../src/core/component.js';
import { parseSeriesKey } from '../../src/core/line-protocol.js';
import { SqliteRing, type RingOptions } from '../../src/store/ring.js';
import { sluiceSpawn, waitFor } from '../../test/helpers/cli.js';
import { freePort, startMosquitto, type Mosquitto } from '../../test/helpers/mosquitto.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { MqttInput, type MqttTuning } from './mqtt.js';

interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

class TestLog implements Logger {
  readonly entries: LogEntry[] = [];
  debug(obj: object, msg = ''): void {
    this.entries.push({ level: 'debug', obj: obj as Record<string, unknown>, msg });
  }
  info(obj: object, msg = ''): void {
    this.entries.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg = ''): void {
    this.entries.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  error(obj: object, msg = ''): void {
    this.entries.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
  }
  child(): Logger {
    return this;
  }
  matching(level: LogEntry['level'], pattern: RegExp): LogEntry[] {
    return this.entries.filter((e) => e.level === level && pattern.test(e.msg));
  }
}

interface Row {
  measurement: string;
  tags: Record<string, string>;
  timeUs: number;
  fields: Record<string, unknown>;
}

/** Committed rows of the ring, series by series in time order. */
function readRows(ring: SqliteRing, measurement?: string): Row[] {
  const out: Row[] = [];
  for (const g of ring.scan(measurement === undefined ? {} : { measurement })) {
    const { tags } = parseSeriesKey(g.key);
    const rows: Row[] = Array.from(g.group.timesUs, (t) => ({ measurement: g.measurement, tags, timeUs: t, fields: {} }));
    for (const col of g.group.columns) {
      let k = 0;
      for (let i = 0; i < rows.length; i++) {
        if (col.present && !col.present[i]) continue;
        const v = col.values[k++];
        rows[i].fields[col.name] = col.type === 'boolean' ? v === 1 : v;
      }
    }
    out.push(...rows);
  }
  return out;
}

function readStore(dataDir: string, measurement?: string): Row[] {
  const ring = SqliteRing.open({ dataDir, readonly: true, maxBytes: 64 << 20, whenFull: 'drop_oldest', commitIntervalMs: 1000 });
  try {
    return readRows(ring, measurement);
  } finally {
    ring.close();
  }
}

function inputConfig(id: string, url: string, lines: string[]): MqttInputConfig {
  const text = ['version: 1', 'inputs:', `  ${id}:`, '    type: mqtt', `    url: ${url}`, ...lines.map((l) => `    ${l}`)].join('\n') + '\n';
  const result = loadConfig({ text, hostname: 'gw', env: {} });
  if (!result.ok) throw new Error(formatConfigErrors(result.errors));
  return result.config.inputs[id] as MqttInputConfig;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let broker: Mosquitto;
beforeAll(async () => {
  broker = await startMosquitto({ verbose: true });
});
afterAll(async () => {
  await broker?.stop();
});

async function publisher(b: Mosquitto, name: string): Promise<MqttClient> {
  const client = await connectAsync(b.url, { clientId: `pub-${name}-${process.pid}`, reconnectPeriod: 0 });
  cleanups.push(() => client.endAsync());
  return client;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sent = (clientId: string) => new RegExp(`Sending PUBLISH to ${escape(clientId)} `);
const acked = (clientId: string) => new RegExp(`Received PUBACK from ${escape(clientId)} `);
const subscribed = (clientId: string) => new RegExp(`Sending SUBACK to ${escape(clientId)}$`);

interface Harness {
  input: MqttInput;
  log: TestLog;
  ring: () => SqliteRing;
  /** Points the input handed to the sink, committed or not. */
  clientId: string;
  dataDir: string;
  /** Replaces the ring behind the sink (the user made room); the input is not told. */
  swapRing(options: Partial<RingOptions>): void;
}

async function startInput(
  id: string,
  yaml: string[],
  options: { ring?: Partial<RingOptions>; tuning?: Partial<MqttTuning>; dataDir?: string; b?: Mosquitto } = {},
): Promise<Harness> {
  const b = options.b ?? broker;
  const dataDir = options.dataDir ?? tmpDir();
  const ringOptions: RingOptions = { dataDir, maxBytes: 64 << 20, whenFull: 'drop_oldest', commitIntervalMs: 50, ...options.ring };
  let ring = SqliteRing.open(ringOptions);
  const log = new TestLog();
  const sink: Sink = { write: (points, marks) => ring.write(points, marks), commitNow: () => ring.commit(), readMarks: (scope) => ring.readMarks(scope) };
  const input = new MqttInput(inputConfig(id, b.url, yaml), { id, log, sink, agentId: 'gw', dataDir }, options.tuning);
  const clientId = `sluice-gw-${id}`;
  const before = b.countLog(subscribed(clientId));
  await input.start();
  cleanups.push(async () => {
    await input.stop();
    ring.close();
  });
  await b.waitForLog(subscribed(clientId), before + 1);
  return {
    input,
    log,
    ring: () => ring,
    clientId,
    dataDir,
    swapRing(o) {
      ring.close();
      ring = SqliteRing.open({ ...ringOptions, ...o });
    },
  };
}

describe('formats and topic tags', () => {
  it('json: fields, flattening and time_key; topic levels become tags', async () => {
    const h = await startInput('fmt-json', [
      'topics: ["plant/+/+/state"]',
      'topic_tags: "plant/{area}/{device}/state"',
      'format: json',
      'json: { time_key: ts }',
      'tags: { site: p1 }',
    ]);
    const pub = await publisher(broker, 'fmt-json');
    await pub.publishAsync('plant/north/pump-1/state', JSON.stringify({ ts: 1_700_000_000_000, temp: 21.5, on: true, mode: 'auto', env: { rh: 40 } }), { qos: 1 });
    await pub.publishAsync('plant/south/pump-2/state', JSON.stringify({ ts: 1_700_000_001_000, temp: 19 }), { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_acked === 2, 10_000, 'two acknowledgements');
    expect(readRows(h.ring())).toEqual([
      { measurement: 'fmt-json', tags: { area: 'north', device: 'pump-1', site: 'p1' }, timeUs: 1_700_000_000_000_000, fields: { temp: 21.5, on: true, mode: 'auto', env_rh: 40 } },
      { measurement: 'fmt-json', tags: { area: 'south', device: 'pump-2', site: 'p1' }, timeUs: 1_700_000_001_000_000, fields: { temp: 19 } },
    ]);
    expect(h.input.stats()).toMatchObject({ points: 2, errors: 0, refused: 0 });
  });

  it('value: a bare number is float field "value", true/false a boolean; stamped with the time of receipt', async () => {
    const h = await startInput('fmt-value', ['topics: ["sensors/#"]', 'topic_tags: "sensors/{sensor}/#"', 'format: value', 'measurement: reading']);
    const pub = await publisher(broker, 'fmt-value');
    const beforeMs = Date.now();
    await pub.publishAsync('sensors/t1/temp', '21.5', { qos: 1 });
    await pub.publishAsync('sensors/d1/open', 'true', { qos: 1 });
    await pub.publishAsync('sensors/t1/temp', '22', { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_acked === 3, 10_000, 'three acknowledgements');
    const rows = readRows(h.ring(), 'reading');
    expect(rows.map((r) => [r.tags.sensor, r.fields.value])).toEqual([
      ['t1', 21.5],
      ['t1', 22],
      ['d1', true],
    ]);
    for (const r of rows) expect(r.timeUs).toBeGreaterThanOrEqual(beforeMs * 1000);
    expect(rows[0].timeUs).toBeLessThan(rows[1].timeUs);
  });

  it('influx: several lines per message with their own measurement and types; input and topic tags added', async () => {
    const h = await startInput('fmt-influx', ['topics: ["lp/+"]', 'topic_tags: "lp/{gateway}"', 'format: influx', 'influx: { precision: ms }', 'tags: { site: p1 }']);
    const pub = await publisher(broker, 'fmt-influx');
    await pub.publishAsync('lp/gw7', 'cpu,core=0 usage=1.5,n=3i 1700000000000\ncpu,core=1 usage=2.5,n=4i 1700000000000\nmem,gateway=own free=7u 1700000000001', { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_acked === 1, 10_000, 'one acknowledgement');
    const rows = readRows(h.ring());
    expect(rows.map((r) => ({ m: r.measurement, tags: r.tags, fields: r.fields }))).toEqual([
      { m: 'cpu', tags: { core: '0', gateway: 'gw7', site: 'p1' }, fields: { usage: 1.5, n: 3n } },
      { m: 'cpu', tags: { core: '1', gateway: 'gw7', site: 'p1' }, fields: { usage: 2.5, n: 4n } },
      { m: 'mem', tags: { gateway: 'own', site: 'p1' }, fields: { free: 7n } },
    ]);
    expect(h.input.stats().points).toBe(3);
  });

  it('malformed payloads are counted, logged once a minute, acknowledged; the good messages around them are stored', async () => {
    const h = await startInput('malformed', ['topics: ["m/#"]', 'format: json', 'json: { time_key: ts }']);
    const pub = await publisher(broker, 'malformed');
    const messages = [
      '{"ts": 1000, "v": 1}',
      '{"ts": 2000, "v": ', // cut short
      '{"ts": 3000, "v": 3}',
      'hello', // not JSON
      '{"v": 5}', // no time
      '', // empty: clears a retained message, not an error
      '{"ts": 6000, "v": 6}',
    ];
    for (const m of messages) await pub.publishAsync('m/x', m, { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_acked === messages.length, 10_000, 'every message acknowledged');
    await broker.waitForLog(acked(h.clientId), messages.length);
    expect(readRows(h.ring()).map((r) => r.fields.v)).toEqual([1, 3, 6]);
    const stats = h.input.stats();
    expect(stats).toMatchObject({ points: 3, errors: 3 });
    expect(stats.counters).toMatchObject({ messages_received: 7, messages_malformed: 3, messages_empty: 1, messages_acked: 7 });
    // Rate-limited: the first one is logged with its reason, the other two wait for the minute's summary.
    const warnings = h.log.matching('warn', /malformed/);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].obj).toMatchObject({ topic: 'm/x', reason: expect.stringMatching(/^not JSON/) as unknown });
    await h.input.stop();
    expect(h.log.matching('warn', /malformed/).at(-1)?.obj).toMatchObject({ count: 2, reason: expect.stringMatching(/no time/) as unknown });
  });

  it('a topic that does not fit topic_tags is stored without topic tags, counted and logged', async () => {
    const h = await startInput('unmatched', ['topics: ["u/#"]', 'topic_tags: "u/{area}/{device}"', 'format: value']);
    const pub = await publisher(broker, 'unmatched');
    await pub.publishAsync('u/a/b', '1', { qos: 1 });
    await pub.publishAsync('u/a', '2', { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_acked === 2, 10_000, 'acknowledgements');
    expect(readRows(h.ring()).map((r) => [r.tags, r.fields.value])).toEqual([
      [{ area: 'a', device: 'b' }, 1],
      [{}, 2],
    ]);
    expect(h.input.stats().counters!.topic_unmatched).toBe(1);
    expect(h.log.matching('warn', /topic_tags/)).toHaveLength(1);
  });
});

describe('acknowledgement after commit', () => {
  it('QoS 1: the PUBACK leaves only after the group commit that holds the points', async () => {
    const h = await startInput('ack-after-commit', ['topics: ["ac/#"]', 'format: value'], { ring: { commitIntervalMs: 1500 } });
    const pub = await publisher(broker, 'ack-after-commit');
    for (let i = 0; i < 3; i++) await pub.publishAsync('ac/x', String(i), { qos: 1 });
    await broker.waitForLog(sent(h.clientId), 3);
    await new Promise((r) => setTimeout(r, 300));
    expect(broker.countLog(acked(h.clientId))).toBe(0);
    expect(readRows(h.ring())).toHaveLength(0);
    await broker.waitForLog(acked(h.clientId), 3, 5000);
    expect(readRows(h.ring()).map((r) => r.fields.value)).toEqual([0, 1, 2]);
  });

  it('QoS 2: the PUBREC waits for the commit too, and the exchange completes', async () => {
    const h = await startInput('qos2', ['topics: ["q2/#"]', 'format: value', 'qos: 2'], { ring: { commitIntervalMs: 1000 } });
    const pub = await publisher(broker, 'qos2');
    await pub.publishAsync('q2/x', '42', { qos: 2 });
    await broker.waitForLog(sent(h.clientId), 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(broker.countLog(new RegExp(`Received PUBREC from ${h.clientId} `))).toBe(0);
    await broker.waitForLog(new RegExp(`Received PUBCOMP from ${h.clientId} `), 1, 5000);
    expect(readRows(h.ring()).map((r) => r.fields.value)).toEqual([42]);
  });

  it("when the broker's in-flight window is full, the input commits at once instead of waiting for the interval", async () => {
    const b = await startMosquitto({ verbose: true, global: ['max_inflight_messages 10', 'max_queued_messages 0'] });
    cleanups.push(() => b.stop());
    // A commit interval far longer than the test: only early commits can get 200 messages through.
    const h = await startInput('window', ['topics: ["w/#"]', 'format: value', 'max_inflight: 10'], { ring: { commitIntervalMs: 60_000 }, b });
    const pub = await publisher(b, 'window');
    await Promise.all(Array.from({ length: 200 }, (_, i) => pub.publishAsync('w/x', String(i), { qos: 1 })));
    await waitFor(() => h.input.stats().counters!.messages_acked === 200, 10_000, '200 acknowledgements');
    expect(readRows(h.ring())).toHaveLength(200);
    // How many the broker sends per window varies (mosquitto refills it in bursts); at least one commit was early.
    expect(h.input.stats().counters!.early_commits).toBeGreaterThanOrEqual(1);
  });

  it('MQTT 5: a persistent session (clean start off, session expiry) keeps messages while the input is stopped', async () => {
    const dataDir = tmpDir();
    const yaml = ['topics: ["v5/#"]', 'format: value', 'protocol_version: 5', 'session_expiry: 1h'];
    const first = await startInput('v5-session', yaml, { dataDir });
    const pub = await publisher(broker, 'v5-session');
    await pub.publishAsync('v5/x', '1', { qos: 1 });
    await waitFor(() => first.input.stats().counters!.messages_acked === 1, 10_000, 'first message');
    await first.input.stop();
    first.ring().close();
    for (let i = 2; i <= 4; i++) await pub.publishAsync('v5/x', String(i), { qos: 1 });
    const second = await startInput('v5-session', yaml, { dataDir });
    await waitFor(() => second.input.stats().counters!.messages_acked === 3, 10_000, 'messages kept by the broker');
    expect(readRows(second.ring()).map((r) => r.fields.value)).toEqual([1, 2, 3, 4]);
  });
});

describe('store refusing points (when_full: drop_newest)', () => {
  it('messages are not acknowledged and stay with the broker; once there is room they arrive, without a restart', async () => {
    const dataDir = tmpDir();
    // Fill a tiny store until it refuses.
    const filler = SqliteRing.open({ dataDir, maxBytes: 1 << 20, whenFull: 'drop_newest', commitIntervalMs: 1000 });
    let seed = 1;
    let t = 0;
    const noise = () => ((seed = (seed * 48271) % 2147483647) / 2147483647) * 1000;
    // Smaller and smaller writes, until not even one point fits.
    for (const size of [2000, 200, 20, 1]) {
      for (let full = false; !full; ) {
        const points = Array.from({ length: size }, () => ({ measurement: 'fill', tags: {}, fields: { a: noise(), b: noise() }, timeUs: ++t * 1000 }));
        const written = filler.write(points).then(
          () => false,
          () => true,
        );
        filler.commit();
        full = await written;
      }
    }
    filler.close();

    const h = await startInput('full', ['topics: ["f/#"]', 'format: value'], {
      dataDir,
      ring: { maxBytes: 1 << 20, whenFull: 'drop_newest', commitIntervalMs: 50 },
      tuning: { refusalMinMs: 300, refusalMaxMs: 600 },
    });
    const pub = await publisher(broker, 'full');
    for (let i = 0; i < 5; i++) await pub.publishAsync('f/x', String(i), { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_refused >= 5, 10_000, 'refusals');
    // Nothing acknowledged: the broker still owns every message, and re-sends it on reconnection.
    expect(broker.countLog(acked(h.clientId))).toBe(0);
    await broker.waitForLog(new RegExp(`Sending PUBLISH to ${h.clientId} \\(d1`), 5);
    expect(h.input.stats().refused).toBeGreaterThanOrEqual(5);
    expect(h.input.stats().counters!.messages_acked).toBe(0);
    expect(h.log.matching('warn', /store refused/)).toHaveLength(1);
    expect(h.ring().status().dropped.dropped_newest).toBeGreaterThanOrEqual(5);

    // The operator raises buffer.max_size: the next redelivery is stored and acknowledged.
    h.swapRing({ maxBytes: 64 << 20 });
    await waitFor(() => h.input.stats().counters!.messages_acked === 5, 10_000, 'acknowledgements after room was made');
    expect(readRows(h.ring(), 'full').map((r) => r.fields.value)).toEqual([0, 1, 2, 3, 4]);
    expect(h.log.matching('info', /accepts points again/)).toHaveLength(1);
  });
});

describe('connection', () => {
  it('reconnects with backoff after the broker goes away and comes back, logging each state change once', async () => {
    const b = await startMosquitto({ persistence: true, verbose: true });
    cleanups.push(() => b.stop());
    const h = await startInput('reconnect', ['topics: ["r/#"]', 'format: value'], { b, tuning: { reconnectMinMs: 100, reconnectMaxMs: 400 } });
    await b.stop({ keepDir: true });
    await new Promise((r) => setTimeout(r, 1500)); // several failed attempts
    await b.restart();
    await waitFor(() => h.input.stats().counters!.connects === 2, 10_000, 'reconnection');
    const pub = await publisher(b, 'reconnect');
    await pub.publishAsync('r/x', '7', { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_acked === 1, 10_000, 'a message after reconnection');
    expect(h.log.matching('warn', /lost/)).toHaveLength(1);
    expect(h.log.matching('info', /^connected/)).toHaveLength(2);
    expect(h.log.matching('warn', /cannot connect/)).toHaveLength(0);
  });

  it('a broker that is down at start is not a start failure; the input connects when it comes', async () => {
    const b = await startMosquitto();
    const url = b.url;
    await b.stop({ keepDir: true });
    const log = new TestLog();
    const dataDir = tmpDir();
    const ring = SqliteRing.open({ dataDir, maxBytes: 64 << 20, whenFull: 'drop_oldest', commitIntervalMs: 50 });
    const input = new MqttInput(inputConfig('late', url, ['topics: ["l/#"]', 'format: value']), { id: 'late', log, sink: ring, agentId: 'gw', dataDir }, { reconnectMinMs: 100, reconnectMaxMs: 200 });
    await input.start();
    cleanups.push(async () => {
      await input.stop();
      ring.close();
      await b.stop();
    });
    await waitFor(() => log.matching('warn', /cannot connect/).length === 1, 5000, 'a warning');
    await new Promise((r) => setTimeout(r, 500));
    expect(log.matching('warn', /cannot connect/)).toHaveLength(1);
    await b.restart();
    await waitFor(() => input.stats().counters!.connects === 1, 10_000, 'connection');
  });

  it('stop() is prompt while the broker is unreachable', async () => {
    const url = `mqtt://127.0.0.1:${await freePort()}`;
    const dataDir = tmpDir();
    const ring = SqliteRing.open({ dataDir, maxBytes: 64 << 20, whenFull: 'drop_oldest', commitIntervalMs: 50 });
    cleanups.push(() => ring.close());
    const input = new MqttInput(inputConfig('gone', url, ['topics: ["g/#"]', 'format: value']), { id: 'gone', log: new TestLog(), sink: ring, agentId: 'gw', dataDir });
    await input.start();
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await input.stop();
    expect(Date.now() - t0).toBeLessThan(500);
  });
});

describe('credentials and TLS', () => {
  it('username with password_file; a wrong password is logged and retried, not fatal', async () => {
    const dir = tmpDir();
    const passwords = join(dir, 'passwd');
    writeFileSync(passwords, '');
    const made = spawnSync('mosquitto_passwd', ['-b', passwords, 'sluice', 's3cret'], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const b = await startMosquitto({ verbose: true, global: ['allow_anonymous false', `password_file ${passwords}`] });
    cleanups.push(() => b.stop());
    writeFileSync(join(dir, 'pw'), 's3cret\n');
    const h = await startInput('auth', ['topics: ["a/#"]', 'format: value', 'username: sluice', `password_file: ${join(dir, 'pw')}`], { b });
    expect(h.input.stats().counters!.connects).toBe(1);

    const log = new TestLog();
    const ring = SqliteRing.open({ dataDir: tmpDir(), maxBytes: 64 << 20, whenFull: 'drop_oldest', commitIntervalMs: 50 });
    const wrong = new MqttInput(inputConfig('auth-wrong', b.url, ['topics: ["a/#"]', 'format: value', 'username: sluice', 'password: nope']), { id: 'auth-wrong', log, sink: ring, agentId: 'gw', dataDir: tmpDir() }, { reconnectMinMs: 100, reconnectMaxMs: 200 });
    await wrong.start();
    cleanups.push(async () => {
      await wrong.stop();
      ring.close();
    });
    await waitFor(() => log.matching('warn', /cannot connect/).length > 0, 5000, 'an authentication warning');
    expect((log.matching('warn', /cannot connect/)[0].obj.err as Error).message).toMatch(/[Nn]ot authorized|Bad User Name or Password/);
    await new Promise((r) => setTimeout(r, 600));
    expect(log.matching('warn', /cannot connect/)).toHaveLength(1);
  });

  it('mqtts with a private CA and a client certificate', async () => {
    const dir = tmpDir();
    const ssl = (...args: string[]) => {
      const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    };
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=sluice test CA');
    for (const [name, cn] of [['server', '127.0.0.1'], ['client', 'sluice']]) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
      writeFileSync(join(dir, `${name}.ext`), name === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-out', `${name}.pem`, '-extfile', `${name}.ext`);
    }
    const b = await startMosquitto({
      verbose: true,
      listener: [`cafile ${join(dir, 'ca.pem')}`, `certfile ${join(dir, 'server.pem')}`, `keyfile ${join(dir, 'server.key')}`, 'require_certificate true'],
    });
    cleanups.push(() => b.stop());
    expect(b.url).toMatch(/^mqtts:/);
    const h = await startInput('tls', ['topics: ["s/#"]', 'format: value', `tls: { ca: ${join(dir, 'ca.pem')}, cert: ${join(dir, 'client.pem')}, key: ${join(dir, 'client.key')} }`], { b });
    const pem = (name: string) => readFileSync(join(dir, name));
    const pub = await connectAsync(b.url, { clientId: 'pub-tls', ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key'), reconnectPeriod: 0 });
    cleanups.push(() => pub.endAsync());
    await pub.publishAsync('s/x', '3.5', { qos: 1 });
    await waitFor(() => h.input.stats().counters!.messages_acked === 1, 10_000, 'a message over TLS');
    expect(readRows(h.ring()).map((r) => r.fields.value)).toEqual([3.5]);
  });
});

describe('docs', () => {
  it('the README embeds sample.yaml verbatim', () => {
    const sample = readFileSync(new URL('sample.yaml', import.meta.url), 'utf8');
    expect(readFileSync(new URL('README.md', import.meta.url), 'utf8')).toContain('```yaml\n' + sample + '```');
  });
});

describe('the agent (built CLI), stopped and killed', () => {
  function agentConfig(dir: string, url: string, commitInterval: string): string {
    const file = join(dir, `sluice-${commitInterval}.yaml`);
    writeFileSync(
      file,
      [
        'version: 1',
        'agent: { id: gw-cli, commit_interval: ' + commitInterval + ' }',
        'buffer: { max_size: 64MiB, when_full: drop_oldest }',
        'inputs:',
        '  plant:',
        '    type: mqtt',
        `    url: ${url}`,
        '    topics: ["cli/+/value"]',
        '    topic_tags: "cli/{device}/value"',
        '    format: influx',
        '    influx: { precision: ms }',
        '',
      ].join('\n'),
    );
    return file;
  }

  async function runAgent(config: string, dataDir: string) {
    const before = broker.countLog(subscribed('sluice-gw-cli-plant'));
    const child = sluiceSpawn(['run', '-c', config, '--data-dir', dataDir], { env: { SLUICE_LOG_LEVEL: 'info' } });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await broker.waitForLog(subscribed('sluice-gw-cli-plant'), before + 1, 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\nagent output:\n${output}`);
    });
    return { child, exited, output: () => output };
  }

  it('SIGTERM commits and acknowledges what arrived; messages published while stopped arrive after restart (persistent session), each once', async () => {
    const dir = tmpDir();
    const dataDir = join(dir, 'data');
    const clientId = 'sluice-gw-cli-plant';
    // The shared broker's log also holds other tests' lines: counts are relative to now.
    const sentBefore = broker.countLog(sent(clientId));
    const ackedBefore = broker.countLog(acked(clientId));
    const dupBefore = broker.countLog(new RegExp(`Sending PUBLISH to ${clientId} \\(d1`));
    const pub = await publisher(broker, 'cli-term');

    // A commit interval longer than the test: only the stop can commit these.
    const first = await runAgent(agentConfig(dir, broker.url, '30s'), dataDir);
    for (let i = 0; i < 10; i++) await pub.publishAsync(`cli/d${i % 2}/value`, `v x=${i} ${1_700_000_000_000 + i}`, { qos: 1 });
    await broker.waitForLog(sent(clientId), sentBefore + 10);
    await new Promise((r) => setTimeout(r, 500)); // on the wire → in the agent (what arrives during the stop stays with the broker)
    expect(broker.countLog(acked(clientId))).toBe(ackedBefore);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    await broker.waitForLog(acked(clientId), ackedBefore + 10, 2000); // the broker's log line may trail the agent's exit

    for (let i = 10; i < 20; i++) await pub.publishAsync(`cli/d${i % 2}/value`, `v x=${i} ${1_700_000_000_000 + i}`, { qos: 1 });
    const second = await runAgent(agentConfig(dir, broker.url, '100ms'), dataDir);
    await broker.waitForLog(acked(clientId), ackedBefore + 20);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(broker.countLog(new RegExp(`Sending PUBLISH to ${clientId} \\(d1`))).toBe(dupBefore);

    const rows = readStore(dataDir, 'v');
    expect(rows.map((r) => r.fields.x).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(rows.find((r) => r.fields.x === 3)).toMatchObject({ tags: { device: 'd1' }, timeUs: 1_700_000_000_003_000 });
  });

  it('SIGKILL between receiving and committing: the broker redelivers after restart, nothing is lost', async () => {
    const dir = tmpDir();
    const dataDir = join(dir, 'data');
    const clientId = 'sluice-gw-cli-plant';
    const pub = await publisher(broker, 'cli-kill');
    const sentBefore = broker.countLog(sent(clientId));
    const ackedBefore = broker.countLog(acked(clientId));

    // 5 s commit interval and fewer messages than the in-flight window: received, not yet committed.
    const first = await runAgent(agentConfig(dir, broker.url, '5s'), dataDir);
    for (let i = 0; i < 10; i++) await pub.publishAsync('cli/k/value', `k x=${i} ${1_700_000_000_000 + i}`, { qos: 1 });
    await broker.waitForLog(sent(clientId), sentBefore + 10);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(broker.countLog(acked(clientId))).toBe(ackedBefore);
    expect(readStore(dataDir, 'k')).toHaveLength(0);

    const second = await runAgent(agentConfig(dir, broker.url, '100ms'), dataDir);
    await broker.waitForLog(acked(clientId), ackedBefore + 10);
    expect(broker.countLog(new RegExp(`Sending PUBLISH to ${clientId} \\(d1`))).toBeGreaterThanOrEqual(10);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(readStore(dataDir, 'k').map((r) => r.fields.x)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });
});
