// The opcua input against a real OPC UA server (node-opcua's own, in a child process, testing/server.mjs):
// every type exact, both modes, deadband, statuses, credentials, signed and encrypted channels with
// certificates, and the session's life: a quiet connection, the session expired by the server (subscribed
// and polled), a network that drops without a word (a relay that falls silent),
// secure channel token renewals, and the server killed and started again under a running input. One
// server serves the whole file (it takes seconds to start); the restart test runs last.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Unsigned } from '../../src/core/point.js';
import { sluice, sluiceSpawn, waitFor } from '../../test/helpers/cli.js';
import { browseServer } from './browse.js';
import { OpcuaInput, PKI_FOLDER, type OpcuaTuning } from './opcua.js';
import { opcuaConfig, recording, until, type Recording } from './testing/harness.js';
import { startOpcuaServer, type OpcuaServer } from './testing/peer.js';

const FAST: Partial<OpcuaTuning> = { reconnectMinMs: 100, reconnectMaxMs: 400, stopTimeoutMs: 1000 };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let root = '';
let server: OpcuaServer;
const running: OpcuaInput[] = [];

beforeAll(async () => {
  // Not test/helpers/tmp.ts: its directories go after each test, and the server's PKI must last the file.
  root = mkdtempSync(join(tmpdir(), 'sluice-opcua-'));
  server = await startOpcuaServer({ pki: join(root, 'server-pki'), users: { operator: 's3cret' } });
}, 90_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((i) => i.stop()));
});

afterAll(async () => {
  await server?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A running input on `lines` (url first), with its own data dir unless given one. */
async function run(lines: string[], options: { dataDir?: string; tuning?: Partial<OpcuaTuning> } = {}): Promise<{ input: OpcuaInput; rec: Recording }> {
  const dataDir = options.dataDir ?? mkdirIn(`data-${running.length}-${Date.now()}`);
  const rec = recording(dataDir);
  const input = new OpcuaInput(opcuaConfig([`url: ${server.url}`, ...lines]), rec.ctx, { ...FAST, ...options.tuning });
  running.push(input);
  await input.start();
  return { input, rec };
}

function mkdirIn(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * A TCP relay to 127.0.0.1:`targetPort` that can fall silent: down() stops forwarding on every
 * connection, old and new, without closing any; up() forwards again on connections made after it
 * (the ones from before stay dead, as connections through a rebooted router do).
 */
async function silentRelay(targetPort: number): Promise<{ port: number; down(): void; up(): void; close(): void }> {
  let generation = 0;
  let silent = false;
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const born = generation;
    const live = () => !silent && born === generation;
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => {
      if (live()) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (live()) client.write(d);
    });
    // A clean close passes through only while the network is up: a dead one says nothing.
    client.on('end', () => live() && upstream.end());
    upstream.on('end', () => live() && client.end());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as AddressInfo).port,
    down: () => {
      silent = true;
    },
    up: () => {
      generation++;
      silent = false;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      relay.close();
    },
  };
}

const node = (name: string, id: string, extra = '') => `  - { name: ${name}, node_id: "ns=1;s=Test.${id}"${extra} }`;
const warnings = (rec: Recording, msg: string) => rec.logs.filter((l) => l.level === 'warn' && l.msg.startsWith(msg));

describe('opcua input', () => {
  it('poll: every OPC UA type is stored exactly (Int64 and UInt64 beyond 2^53 too); arrays flatten, structures are refused', async () => {
    await server.set('Int64', '-9007199254740993');
    await server.set('UInt64', '18446744073709551615');
    const types = ['Boolean', 'SByte', 'Byte', 'Int16', 'UInt16', 'Int32', 'UInt32', 'Int64', 'UInt64', 'Float', 'Double', 'String', 'DateTime', 'DoubleArray', 'Structure'];
    const before = Date.now();
    const { input, rec } = await run(['mode: poll', 'interval: 200ms', 'timestamp: agent', 'nodes:', ...types.map((t) => node(t.toLowerCase(), t))]);
    await until(() => rec.points.length >= 2, 'two polls');
    await input.stop();
    const first = rec.points[0];
    expect(first.fields).toEqual({
      boolean: true,
      sbyte: -128n,
      byte: 255n,
      int16: -32768n,
      uint16: 65535n,
      int32: -2147483648n,
      uint32: 4294967295n,
      int64: -9007199254740993n,
      uint64: new Unsigned(18446744073709551615n),
      float: 21.3,
      double: 0.1 + 0.2,
      string: 'grüße, "quoted"',
      datetime: BigInt(Date.parse('2024-05-01T12:00:00.123Z')) * 1000n,
      doublearray_0: 1.5,
      doublearray_1: -2.5,
      doublearray_2: 3,
    });
    // timestamp: agent, one point per read at the time the read started.
    expect(first.timeUs).toBeGreaterThanOrEqual(before * 1000);
    expect(first.timeUs).toBeLessThan(rec.points[1].timeUs);
    expect(first.measurement).toBe('line3');
    const stats = input.stats();
    expect(stats.points).toBe(rec.points.length);
    expect(stats.counters.values_unsupported).toBe(stats.counters.reads);
    expect(warnings(rec, "the node's value is of a type")).toEqual([expect.objectContaining({ obj: expect.objectContaining({ node: 'structure', value_type: 'a structure (ExtensionObject)' }) })]);
  });

  it('subscribe: each change is stored at its source time, and the deadband drops moves within it', async () => {
    await server.set('Double', 1);
    // The same variable twice: `raw` without a deadband shows what the server sampled.
    const { input, rec } = await run([
      'mode: subscribe',
      'publishing_interval: 100ms',
      'nodes:',
      node('d', 'Double', ', sampling_interval: 50ms, deadband: 0.5'),
      node('raw', 'Double', ', sampling_interval: 50ms'),
      node('n', 'Int64'),
    ]);
    await until(() => rec.values('d').length === 1 && rec.values('n').length === 1, 'the initial values');
    expect(input.stats().counters.items_created).toBe(3);
    const t0 = Date.parse('2024-05-01T12:00:00.000Z');
    await server.set('Double', 10, { sourceMs: t0 });
    await until(() => rec.values('d').includes(10), '10');
    await server.set('Double', 10.4, { sourceMs: t0 + 1000 });
    await until(() => rec.values('raw').includes(10.4), '10.4 sampled');
    await server.set('Double', 11, { sourceMs: t0 + 2000 });
    await server.set('Int64', '9223372036854775807', { sourceMs: t0 + 2000 });
    await until(() => rec.values('d').includes(11) && rec.values('n').includes(9223372036854775807n), '11 and the Int64');
    expect(rec.values('d')).toEqual([1, 10, 11]);
    expect(rec.values('raw')).toEqual([1, 10, 10.4, 11]);
    const times = rec.points.filter((p) => p.fields.d === 10 || p.fields.d === 11).map((p) => p.timeUs);
    expect(times).toEqual([t0 * 1000, (t0 + 2000) * 1000]);
    expect(rec.points.find((p) => p.fields.n === 9223372036854775807n)?.timeUs).toBe((t0 + 2000) * 1000);
  });

  it('bad and uncertain values are not stored: counted by status name, logged once per change of status', async () => {
    await server.set('Double', 4);
    const { input, rec } = await run(['publishing_interval: 100ms', 'nodes:', node('d', 'Double', ', sampling_interval: 50ms')]);
    await until(() => rec.values('d').includes(4), 'the initial value');
    // Each change waits until the input saw the one before, so none is sampled away on a slow machine.
    const counted = (name: string, n: number) => until(() => input.stats().counters[name] === n, `${n} × ${name}`);
    await server.set('Double', 666, { status: 'BadSensorFailure' });
    await counted('status_BadSensorFailure', 1);
    await server.set('Double', 667, { status: 'BadSensorFailure' });
    await counted('status_BadSensorFailure', 2);
    await server.set('Double', 668, { status: 'UncertainLastUsableValue' });
    await counted('status_UncertainLastUsableValue', 1);
    await server.set('Double', 5);
    await until(() => rec.values('d').includes(5), 'the good value after them');
    expect(rec.values('d')).toEqual([4, 5]);
    const { counters, errors } = input.stats();
    expect(counters.status_BadSensorFailure).toBe(2);
    expect(counters.status_UncertainLastUsableValue).toBe(1);
    expect(errors).toBe(3);
    expect(warnings(rec, 'values of this node are not stored').map((l) => l.obj.status)).toEqual(['BadSensorFailure', 'UncertainLastUsableValue']);
    expect(rec.logs.filter((l) => l.msg === "the node's status is Good again")).toHaveLength(1);
  });

  it('a node the server does not have is counted and logged; the other nodes are read', async () => {
    const { input, rec } = await run(['publishing_interval: 100ms', 'nodes:', node('d', 'Double'), '  - { name: ghost, node_id: "ns=1;s=No.Such.Node" }']);
    await until(() => rec.values('d').length > 0, 'the existing node');
    expect(input.stats().counters).toMatchObject({ items_created: 1, items_failed: 1 });
    expect(warnings(rec, 'the server refused to monitor a node')).toEqual([expect.objectContaining({ obj: expect.objectContaining({ node: 'ghost', status: 'BadNodeIdUnknown' }) })]);
  });

  it('wrong credentials: a clear error, logged once, retried; the right password (from a file) then works', async () => {
    const { input, rec } = await run(['auth: { username: operator, password: wrong }', 'nodes:', node('d', 'Double')]);
    await until(() => input.stats().counters.connect_failures >= 3, 'three refused attempts');
    const refused = warnings(rec, 'cannot connect to the OPC UA server');
    expect(refused).toHaveLength(1);
    expect(String(refused[0].obj.err)).toMatch(/^the server refused the user credentials/);
    expect(rec.points).toEqual([]);
    const file = join(root, 'password');
    writeFileSync(file, 's3cret\n');
    const ok = await run(['mode: poll', 'interval: 200ms', `auth: { username: operator, password_file: ${file} }`, 'nodes:', node('d', 'Double')]);
    await until(() => ok.rec.points.length > 0, 'points with the right password');
  });

  it('Sign and SignAndEncrypt: the server certificate must be trusted (trusted_certs) or explicitly accepted; X.509 user identity', async () => {
    const dataDir = mkdirIn('secure');
    // Not trusted: refused with a message that says where to put the certificate, and retried.
    const untrusted = await run(['security_policy: Aes128_Sha256_RsaOaep', 'security_mode: SignAndEncrypt', 'nodes:', node('d', 'Double')], { dataDir });
    await until(() => untrusted.input.stats().counters.connect_failures >= 2, 'refused attempts');
    expect(String(warnings(untrusted.rec, 'cannot connect')[0].obj.err)).toMatch(/^the server certificate is not trusted: put it in trusted_certs/);
    expect(untrusted.rec.points).toEqual([]);
    await untrusted.input.stop();
    // The client made its own certificate in the data dir on its first start.
    expect(existsSync(join(dataDir, PKI_FOLDER, 'own/certs/client_certificate.pem'))).toBe(true);

    const trusted = mkdirIn('trusted');
    copyFileSync(server.certificate, join(trusted, 'server.pem'));
    const signed = await run(['security_policy: Basic256Sha256', 'security_mode: Sign', `trusted_certs: ${trusted}`, 'mode: poll', 'interval: 200ms', 'nodes:', node('d', 'Double')], { dataDir });
    await until(() => signed.rec.points.length > 0, 'points over Basic256Sha256 Sign');

    const user = mkdirIn('user');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(user, 'key.pem'), '-out', join(user, 'cert.pem'), '-days', '2', '-subj', '/CN=sluice-user', '-addext', 'keyUsage=digitalSignature,keyEncipherment,dataEncipherment,nonRepudiation'], {
      stdio: 'pipe',
      // node-opcua-pki sets OPENSSL_CONF in this process (to "undefined" when it has none); openssl would read it.
      env: { PATH: process.env.PATH },
    });
    const encrypted = await run(
      ['security_policy: Aes256_Sha256_RsaPss', 'security_mode: SignAndEncrypt', `trusted_certs: ${trusted}`, `auth: { certificate: ${join(user, 'cert.pem')}, private_key: ${join(user, 'key.pem')} }`, 'mode: poll', 'interval: 200ms', 'nodes:', node('d', 'Double')],
      { dataDir },
    );
    await until(() => encrypted.rec.points.length > 0, 'points over Aes256_Sha256_RsaPss SignAndEncrypt with an X.509 user');

    // trust_server_certificate accepts it without a trusted copy (a fresh data dir trusts nothing).
    const accepting = await run(['security_policy: Basic256Sha256', 'security_mode: SignAndEncrypt', 'trust_server_certificate: true', 'mode: poll', 'interval: 200ms', 'nodes:', node('d', 'Double')]);
    await until(() => accepting.rec.points.length > 0, 'points with trust_server_certificate');
  });

  it('browse lists node ids and data types; the standard nodes stay folded', async () => {
    const lines: string[] = [];
    await browseServer({ url: server.url, depth: 2 }, (l) => lines.push(l));
    const text = lines.join('\n');
    expect(text).toMatch(/^ {2}Int64 +ns=1;s=Test\.Int64 +Variable +Int64$/m);
    expect(text).toMatch(/^ {2}DoubleArray +ns=1;s=Test\.DoubleArray +Variable +Double\[\]$/m);
    expect(text).toMatch(/^ {2}Structure +ns=1;s=Test\.Structure +Variable +BuildInfo$/m);
    expect(text).toMatch(/^Server +i=2253 +Object$/m);
    // Server's children (ServerStatus, …) are not listed from the Objects folder.
    expect(text).not.toContain('i=2256');
  });

  it('sluice run stores the values in the ring (query, export); sluice opcua browse on the command line', async () => {
    await server.set('Double', 21.5, { sourceMs: 1714564800123 });
    await server.set('UInt64', '18446744073709551615', { sourceMs: 1714564800123 });
    const dir = mkdirIn('agent');
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      [
        'version: 1',
        'agent: { id: gw, tags: { site: a } }',
        'http: { listen: "off" }',
        'inputs:',
        '  line3:',
        '    type: opcua',
        `    url: ${server.url}`,
        '    publishing_interval: 100ms',
        '    nodes:',
        `    ${node('supply_temp', 'Double')}`,
        `    ${node('total', 'UInt64')}`,
        '',
      ].join('\n'),
    );
    const agent = sluiceSpawn(['run', '-c', cfg, '--data-dir', dir]);
    let log = '';
    agent.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    try {
      await waitFor(
        () => {
          if (agent.exitCode !== null) throw new Error(`the agent exited with ${agent.exitCode}`);
          const r = sluice(['query', '--data-dir', dir, '--measurement', 'line3', '--json']);
          return r.status === 0 && (JSON.parse(r.stdout) as unknown[]).length >= 2;
        },
        45_000,
        'both values in the store',
      ).catch((err: Error) => {
        throw new Error(`${err.message}; the agent's log:\n${log}`);
      });
    } finally {
      agent.kill('SIGTERM');
    }
    expect(await exited, log).toBe(0);
    expect(sluice(['export', '--data-dir', dir, '--measurement', 'line3', '--precision', 'ms']).stdout).toBe('line3,site=a supply_temp=21.5,total=18446744073709551615u 1714564800123\n');
    expect(log).not.toMatch(/"level":(40|50)/);
    expect(log).toContain('"msg":"connected to the OPC UA server"');

    const browse = sluice(['opcua', 'browse', server.url, '--node', 'ns=1;s=Test', '--depth', '1']);
    expect(browse.status, browse.stderr).toBe(0);
    expect(browse.stdout.split('\n')[0]).toMatch(/^name +node_id +class +data_type$/);
    expect(browse.stdout).toMatch(/^UInt64 +ns=1;s=Test\.UInt64 +Variable +UInt64$/m);
    expect(sluice(['opcua', 'browse', 'http://x']).status).toBe(64);
  });

  it('a quiet connection stays up: nothing changes for three timeouts, subscribed or polled more slowly than the timeout', async () => {
    await server.set('Double', 40);
    // With node-opcua's default keep-alive pings (after 10 s of silence) the socket closed itself after
    // 2 s without traffic here, over and over; a subscription's keep-alives alone come every 10 s.
    const subscribed = await run(['publishing_interval: 100ms', 'timeout: 2s', 'nodes:', node('d', 'Double')]);
    const polled = await run(['mode: poll', 'interval: 5s', 'timeout: 2s', 'nodes:', node('d', 'Double')]);
    await until(() => subscribed.rec.values('d').includes(40) && polled.rec.values('d').includes(40), 'the first values');
    await sleep(6000);
    await server.set('Double', 41);
    await until(() => subscribed.rec.values('d').includes(41) && polled.rec.values('d').includes(41), 'the value after the quiet time');
    for (const { input, rec } of [subscribed, polled]) {
      expect(input.stats().counters).toMatchObject({ connects: 1, connection_losses: 0, connect_failures: 0 });
      expect(rec.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    }
  });

  it('the server expires the session while it runs on: a new session, the items created again, one log line per change', async () => {
    const { input, rec } = await run(['publishing_interval: 100ms', 'nodes:', node('d', 'Double', ', sampling_interval: 50ms')]);
    await server.set('Double', 30);
    await until(() => rec.values('d').includes(30), 'a value before the expiry');
    // The server forgets the session as its watchdog does when a client fell silent; the connection
    // stays. (Earlier tests may have left sessions of broken connections behind, hence at least one.)
    expect(await server.expireSessions()).toBeGreaterThanOrEqual(1);
    await until(() => input.stats().counters.connects === 2, 'the second session', 30_000);
    await server.set('Double', 31);
    await until(() => rec.values('d').includes(31), 'a value on the second session');
    expect(input.stats().counters).toMatchObject({ connects: 2, connection_losses: 1, connect_failures: 0, items_created: 2, items_failed: 0 });
    expect(warnings(rec, 'connection to the OPC UA server lost').map((l) => l.obj.reason)).toEqual(['the server no longer knew the session (it expired or was closed by the server)']);
    expect(rec.logs.filter((l) => l.msg === 'connected to the OPC UA server')).toHaveLength(2);
    expect(rec.logs.filter((l) => l.level === 'error')).toEqual([]);
    // node-opcua's own repair made a session too; this input closed it with the chain it rebuilt.
    expect(await server.sessions()).toBe(1);
  });

  it('poll mode: the server expires the session, the next read finds out, a new session carries on', async () => {
    const { input, rec } = await run(['mode: poll', 'interval: 200ms', 'nodes:', node('d', 'Double')]);
    await server.set('Double', 50);
    await until(() => rec.values('d').includes(50), 'a value before the expiry');
    expect(await server.expireSessions()).toBeGreaterThanOrEqual(1);
    await until(() => input.stats().counters.connects === 2, 'the second session', 30_000);
    await server.set('Double', 51);
    await until(() => rec.values('d').includes(51), 'a value on the second session');
    expect(input.stats().counters).toMatchObject({ connects: 2, connection_losses: 1, connect_failures: 0 });
    expect(warnings(rec, 'connection to the OPC UA server lost')).toHaveLength(1);
    expect(rec.logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('the network drops without a word (no FIN, no RST) and comes back: the silence is noticed, the session comes back', async () => {
    // Between the input and the server, a TCP relay that can go silent: while it is "down" it forwards
    // nothing either way and closes nothing, as a pulled cable or a dead router does.
    const relay = await silentRelay(server.port);
    try {
      const rec = recording(mkdirIn(`data-drop-${Date.now()}`));
      const input = new OpcuaInput(opcuaConfig([`url: opc.tcp://127.0.0.1:${relay.port}`, 'publishing_interval: 100ms', 'timeout: 2s', 'nodes:', node('d', 'Double', ', sampling_interval: 50ms')]), rec.ctx, FAST);
      running.push(input);
      await input.start();
      await server.set('Double', 60);
      await until(() => rec.values('d').includes(60), 'a value before the drop');
      relay.down();
      await until(() => input.stats().counters.connection_losses === 1, 'the silence noticed', 30_000);
      await sleep(1000); // reconnects into the silence
      relay.up();
      await until(() => input.stats().counters.connects >= 2, 'a session after the network came back', 60_000);
      await server.set('Double', 61);
      await until(() => rec.values('d').includes(61), 'a value after the network came back');
      expect(warnings(rec, 'connection to the OPC UA server lost')).toHaveLength(1);
      expect(rec.logs.filter((l) => l.level === 'error')).toEqual([]);
    } finally {
      relay.close();
    }
  });

  it('secure channel token renewals (2.5 s tokens, SignAndEncrypt) carry the session: every value arrives, nothing is a loss', async () => {
    // 2.5 s is the shortest lifetime node-opcua's server grants; the client renews at 75 % of it.
    const { input, rec } = await run(
      ['security_policy: Basic256Sha256', 'security_mode: SignAndEncrypt', 'trust_server_certificate: true', 'publishing_interval: 100ms', 'nodes:', node('d', 'Double', ', sampling_interval: 50ms')],
      { tuning: { secureTokenLifetimeMs: 2500 } },
    );
    const sent: number[] = [];
    for (let v = 100; input.stats().counters.token_renewals < 4; v++) {
      await server.set('Double', v);
      sent.push(v);
      // Each value waits until the input saw it, so none is sampled away on a slow machine.
      await until(() => rec.values('d').includes(v), `value ${v}`);
    }
    expect(rec.values('d').filter((v) => typeof v === 'number' && v >= 100)).toEqual(sent);
    expect(input.stats().counters).toMatchObject({ connects: 1, connection_losses: 0, connect_failures: 0, items_created: 1 });
    expect(rec.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });

  it('the server killed and started again: the session comes back, the items are created again, one log line per change', async () => {
    const { input, rec } = await run(['publishing_interval: 100ms', 'nodes:', node('d', 'Double', ', sampling_interval: 50ms'), node('c', 'Counter')]);
    await server.set('Double', 20);
    await until(() => rec.values('d').includes(20), 'a value before the kill');
    await server.kill();
    await until(() => input.stats().counters.connection_losses === 1, 'the loss noticed');
    await sleep(1000); // a few refused reconnects while the server is away
    server = await startOpcuaServer({ pki: join(root, 'server-pki'), users: { operator: 's3cret' }, port: server.port });
    await until(() => input.stats().counters.connects === 2, 'the second session', 30_000);
    await server.set('Double', 21);
    await until(() => rec.values('d').includes(21), 'a value after the restart');
    const { counters } = input.stats();
    expect(counters.items_created).toBe(4);
    expect(counters.connect_failures).toBeGreaterThanOrEqual(1);
    expect(warnings(rec, 'connection to the OPC UA server lost')).toHaveLength(1);
    // While it was down: one line for the refused reconnects, however many there were.
    expect(warnings(rec, 'cannot connect to the OPC UA server')).toHaveLength(1);
    expect(rec.logs.filter((l) => l.msg === 'connected to the OPC UA server')).toHaveLength(2);
  });
});

