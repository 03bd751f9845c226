// The modbus input over RTU over TCP (`rtu+tcp://`): pymodbus's RTU framer on a TCP server stands for
// a serial-to-Ethernet converter with its devices. Values and a dead unit among live ones, noise on the
// socket, two inputs sharing one converter (checked on the wire), the peer killed and restarted, and a
// peer that goes silent without closing. The devices' answers are always pymodbus's; the noise and the
// silence are the relay's (testing/peers.ts startRelay), faults pymodbus cannot produce on its own.
// The config rules of the url are at the end.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { waitFor } from '../../test/helpers/cli.js';
import { ModbusInput, type ModbusTuning } from './modbus.js';
import { crc16, rtuFrame } from './protocol.js';
import { freePort, modbusConfig, sleep, startPymodbus, startRelay, stopPeers, testContext, words, type PymodbusServer, type ServerSpec } from './testing/peers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  // Also the pymodbus of a test that failed before it registered its cleanup.
  await stopPeers();
});
afterAll(stopPeers);

async function converter(spec: Omit<ServerSpec, 'tcp' | 'framer'>, port = 0): Promise<PymodbusServer> {
  const server = await startPymodbus({ ...spec, tcp: { port }, framer: 'rtu' });
  cleanup.push(() => server.stop());
  return server;
}

function input(id: string, yaml: string[], tuning: Partial<ModbusTuning> = {}) {
  const ctx = testContext(id);
  const m = new ModbusInput(modbusConfig(id, yaml), ctx, tuning);
  cleanup.push(() => m.stop());
  return { m, ctx };
}

/** The relay's record → transfers in order, consecutive ones in the same direction joined. */
function wireRuns(wire: { dir: '>' | '<'; bytes: Buffer }[]): { dir: '>' | '<'; bytes: Buffer }[] {
  const runs: { dir: '>' | '<'; bytes: Buffer }[] = [];
  for (const t of wire) {
    const last = runs.at(-1);
    if (last?.dir === t.dir) last.bytes = Buffer.concat([last.bytes, t.bytes]);
    else runs.push({ dir: t.dir, bytes: t.bytes });
  }
  return runs;
}

describe('modbus RTU over TCP against pymodbus (RTU framer on a TCP server)', () => {
  it('reads values; a dead unit among live ones costs only its timeout, is backed off, and keeps the socket', async () => {
    const server = await converter({
      units: {
        '1': { hr: { '0': [...words((b) => b.writeFloatBE(-12.5), 4), ...words((b) => b.writeInt32BE(-70000), 4)], '10': [...words((b) => b.writeUInt32BE(70000), 4)].reverse() } },
        '2': { ir: { '3': [1234] }, co: { '0': [false, true] }, di: { '7': [true] } },
      },
    });
    const { m, ctx } = input(
      'converter',
      [
        `url: rtu+tcp://127.0.0.1:${server.port}`,
        'baud_rate: 19200',
        'parity: even',
        'interval: 500ms',
        'timeout: 200ms', // generous: pymodbus answers slowly on a loaded machine
        'devices:',
        '  - { unit_id: 7, name: dead, registers: [{ name: x, table: holding, address: 0 }] }',
        '  - unit_id: 1',
        '    registers:',
        '      - { name: f, table: holding, address: 0, type: float32 }',
        '      - { name: i, table: holding, address: 2, type: int32 }',
        '      - { name: u_cdab, table: holding, address: 10, type: uint32, word_order: little }',
        '  - unit_id: 2',
        '    registers:',
        '      - { name: flow, table: input, address: 3, scale: 0.1 }',
        '      - { name: pump, table: coil, address: 1 }',
        '      - { name: door, table: discrete, address: 7 }',
      ],
      { breakerBaseOpenMs: 1000, breakerMaxOpenMs: 2000 },
    );
    await m.start();
    await waitFor(() => ctx.points.filter((p) => p.tags.device === '2').length >= 7, 10_000, '7 polls');
    await m.stop();
    const one = ctx.points.filter((p) => p.tags.device === '1');
    const two = ctx.points.filter((p) => p.tags.device === '2');
    expect(one[0].fields).toEqual({ f: -12.5, i: -70000n, u_cdab: 70000n });
    expect(two[0].fields).toEqual({ flow: 123.4, pump: true, door: true });
    expect(ctx.points.some((p) => p.tags.device === 'dead')).toBe(false);
    // Every tick has both live units, in cadence.
    const times = two.map((p) => p.timeUs / 1000);
    expect(times.slice(1).map((t, i) => t - times[i])).toEqual(times.slice(1).map(() => 500));
    expect(one.map((p) => p.timeUs)).toEqual(two.map((p) => p.timeUs));
    for (const p of ctx.points) expect(p.writtenMs - p.timeUs / 1000).toBeLessThan(2 * 200); // at most one timeout
    const c = m.stats().counters!;
    expect(c.timeouts).toBeGreaterThanOrEqual(3);
    expect(c.timeouts).toBeLessThan(c.polls);
    expect(c.breaker_opens).toBeGreaterThanOrEqual(1);
    // The live units' answers show the socket is fine: the dead unit's silence never reopens it.
    expect(c).toMatchObject({ crc_errors: 0, protocol_errors: 0, reconnects: 0, connect_failures: 0 });
    // Logged once, not once per poll (a live unit slowed past its timeout on a loaded machine may say so too).
    expect(ctx.log.entries.filter((e) => e.msg === 'modbus unit does not answer' && e.obj.unit_id === 7)).toHaveLength(1);
  });

  it('garbage and corrupted frames on the socket are skipped (resync) and counted; the connection stays', async () => {
    const server = await converter({ units: { '1': { hr: { '0': [111, 222] } } }, delay_ms: 15 });
    const relay = await startRelay(server.port);
    cleanup.push(() => relay.close());
    const { m, ctx } = input('noisy', [`url: rtu+tcp://127.0.0.1:${relay.port}`, 'interval: 100ms', 'timeout: 150ms', 'devices:', '  - { unit_id: 1, registers: [{ name: a, table: holding, address: 0 }, { name: b, table: holding, address: 1 }] }']);
    await m.start();
    await waitFor(() => ctx.points.length >= 2, 5000, 'clean points');
    const fake = rtuFrame(1, Buffer.from([3, 4, 0xde, 0xad, 0xbe, 0xef]));
    fake.writeUInt16LE(crc16(fake, 0, 7) ^ 0x5a5a, 7); // looks like the answer, but its CRC is wrong
    const noisyFrom = ctx.points.length;
    // Noise at any moment: between transactions, before an answer, between an answer's segments.
    for (let i = 0; i < 100; i++) {
      relay.inject(i % 3 === 0 ? fake : Buffer.from(Array.from({ length: 1 + (i % 7) }, (_, k) => (i * 37 + k * 101) & 0xff)));
      await sleep(13);
    }
    const during = ctx.points.length - noisyFrom;
    const after = ctx.points.length;
    await waitFor(() => ctx.points.length >= after + 3, 5000, 'points after the noise');
    await m.stop();
    const c = m.stats().counters!;
    expect(c.stray_bytes).toBeGreaterThan(50);
    expect(c.crc_errors).toBeGreaterThan(0);
    expect(c.protocol_errors).toBe(0);
    // Unlike Modbus TCP (no frame marker: a bad stream drops the connection), RTU resynchronises in place.
    expect(c.reconnects).toBe(0);
    expect(relay.connections).toBe(1);
    expect(during).toBeGreaterThan(3); // it kept polling through the noise
    // Nothing wrong was ever stored: every point has the device's values.
    for (const p of ctx.points) expect(p.fields).toEqual({ a: 111n, b: 222n });
  });

  it('two inputs on one converter share one connection and never interleave transactions (checked on the wire)', async () => {
    const server = await converter({
      units: {
        '1': { hr: { '0': [1, 2, 3] }, ir: { '0': [4] }, co: { '0': [true] } },
        '2': { hr: { '0': [5, 6] }, ir: { '100': [7] }, di: { '0': [true] } },
      },
      delay_ms: 3,
    });
    const relay = await startRelay(server.port);
    cleanup.push(() => relay.close());
    const url = `url: rtu+tcp://127.0.0.1:${relay.port}`;
    const a = input('line_a', [url, 'interval: 100ms', 'timeout: 200ms', 'devices:', '  - { unit_id: 1, registers: [{ name: h, table: holding, address: 0 }, { name: i, table: input, address: 0 }, { name: c, table: coil, address: 0 }] }']);
    const b = input('line_b', [url, 'interval: 100ms', 'timeout: 200ms', 'devices:', '  - { unit_id: 2, registers: [{ name: h, table: holding, address: 1 }, { name: i, table: input, address: 100 }, { name: d, table: discrete, address: 0 }] }']);
    await a.m.start();
    await b.m.start();
    await waitFor(() => a.ctx.points.length >= 10 && b.ctx.points.length >= 10, 10_000, '10 polls each');
    await a.m.stop();
    await b.m.stop();
    expect(relay.connections).toBe(1);
    const runs = wireRuns(relay.wire);
    expect(runs.length).toBeGreaterThan(100);
    // Request, answer, request, answer…: a request never goes out while another awaits its answer, and
    // each request is one RTU read frame (unit, function, address, count, CRC: 8 bytes, no MBAP header).
    runs.forEach((run, i) => {
      expect(run.dir, `transfer ${i}`).toBe(i % 2 === 0 ? '>' : '<');
      if (run.dir === '>') {
        expect(run.bytes.length, `request ${i}`).toBe(8);
        expect(crc16(run.bytes, 0, 6), `request ${i} CRC`).toBe(run.bytes.readUInt16LE(6));
      }
    });
    const units = runs.filter((r) => r.dir === '>').map((r) => r.bytes[0]);
    expect(units.filter((u) => u === 1).length).toBeGreaterThanOrEqual(30);
    expect(units.filter((u) => u === 2).length).toBeGreaterThanOrEqual(30);
    for (const x of [a, b]) expect(x.m.stats().counters).toMatchObject({ timeouts: 0, crc_errors: 0, stray_bytes: 0, protocol_errors: 0 });
    // Each input's values, whole in every poll that finished; the poll cut short by stop() stores what
    // it had read (a subset), never anything else.
    for (const [x, values] of [
      [a, { h: 1n, i: 4n, c: true }],
      [b, { h: 6n, i: 7n, d: true }],
    ] as const) {
      for (const p of x.ctx.points) expect(values).toMatchObject(p.fields);
      expect(x.ctx.points.filter((p) => Object.keys(p.fields).length === 3).length).toBeGreaterThanOrEqual(10);
    }
  });

  it('a converter killed and restarted mid-run is reconnected without restarting the input', async () => {
    const port = await freePort();
    let server = await converter({ units: { '1': { hr: { '0': [5] } } } }, port);
    const { m, ctx } = input('restart', [`url: rtu+tcp://127.0.0.1:${port}`, 'interval: 200ms', 'timeout: 200ms', 'devices:', '  - { unit_id: 1, registers: [{ name: v, table: holding, address: 0 }] }'], {
      reconnectInitialMs: 100,
      reconnectMaxMs: 400,
    });
    await m.start();
    await waitFor(() => ctx.points.length >= 2, 5000, 'points before the kill');
    await server.stop('SIGKILL');
    await sleep(1200);
    const beforeRestart = ctx.points.length;
    const restartedMs = Date.now();
    server = await converter({ units: { '1': { hr: { '0': [6] } } } }, port);
    await waitFor(() => ctx.points.some((p) => p.fields.v === 6n), 5000, 'points after the restart');
    expect(ctx.points.length).toBeGreaterThan(beforeRestart);
    expect(ctx.points.filter((p) => p.timeUs / 1000 > restartedMs).every((p) => p.fields.v === 6n)).toBe(true);
    const c = m.stats().counters!;
    expect(c.reconnects).toBeGreaterThanOrEqual(1);
    expect(c.connect_failures).toBeGreaterThan(0);
    expect(c.bus_down_polls).toBeGreaterThan(0);
    const warns = ctx.log.entries.filter((e) => e.level === 'warn').map((e) => e.msg);
    expect(warns.filter((w) => w === 'modbus bus connection lost; reconnecting')).toHaveLength(1);
    // The failed attempts while it is down belong to the same outage: no warning of their own.
    expect(warns.filter((w) => w === 'modbus bus unreachable; retrying with backoff')).toHaveLength(0);
    expect(ctx.log.entries.filter((e) => e.msg === 'modbus bus connected')).toHaveLength(1);
  });

  it('a converter that goes silent without closing (half-open socket) is dropped after 3 silent timeouts and reopened', async () => {
    const server = await converter({ units: { '1': { hr: { '0': [8] } } } });
    const relay = await startRelay(server.port);
    cleanup.push(() => relay.close());
    const { m, ctx } = input('halfopen', [`url: rtu+tcp://127.0.0.1:${relay.port}`, 'interval: 100ms', 'timeout: 100ms', 'devices:', '  - { unit_id: 1, registers: [{ name: v, table: holding, address: 0 }] }'], {
      reconnectInitialMs: 100,
      reconnectMaxMs: 200,
      // The breaker would stop the requests that find the socket dead: keep it out of this test's way.
      breakerThreshold: 1000,
    });
    await m.start();
    await waitFor(() => ctx.points.length >= 2, 5000, 'points before the silence');
    relay.silence(true);
    await waitFor(() => relay.connections >= 2, 5000, 'a new connection');
    relay.silence(false);
    const reopened = ctx.points.length;
    await waitFor(() => ctx.points.length >= reopened + 2, 5000, 'points after the new connection');
    const lost = ctx.log.entries.filter((e) => e.msg === 'modbus bus connection lost; reconnecting');
    expect(lost.map((e) => e.obj.err)).toEqual(['3 timeouts in a row with nothing received']);
    expect(m.stats().counters).toMatchObject({ reconnects: 1 });
    expect(m.stats().counters!.timeouts).toBeGreaterThanOrEqual(3);
  });
});

describe('rtu+tcp config', () => {
  const errors = (lines: string[]) => {
    const text = ['version: 1', 'inputs:', ...lines].join('\n') + '\n';
    const r = loadConfig({ text, file: 't.yaml', env: {}, hostname: 'h' });
    return r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`);
  };
  const device = ['    devices:', '      - { unit_id: 1, registers: [{ name: x, table: holding, address: 0 }] }'];

  it('takes the serial settings of the line behind the converter, with the RTU defaults', () => {
    const cfg = modbusConfig('conv', ['url: rtu+tcp://10.0.0.9:4001', 'baud_rate: 19200', 'parity: even', ...device.map((l) => l.slice(4))]);
    expect(cfg).toMatchObject({ url: 'rtu+tcp://10.0.0.9:4001', baud_rate: 19200, parity: 'even', data_bits: 8, stop_bits: 1 });
  });

  it('needs a port, refuses max_in_flight and unit id 0, at the line that says it', () => {
    expect(
      errors([
        '  a:',
        '    type: modbus',
        '    url: rtu+tcp://10.0.0.9',
        ...device,
        '  b:',
        '    type: modbus',
        '    url: rtu+tcp://10.0.0.9:70000',
        '    max_in_flight: 4',
        '    devices:',
        '      - { unit_id: 0, registers: [{ name: x, table: holding, address: 0 }] }',
        '  c:',
        '    type: modbus',
        '    url: rtu+tcp:///dev/ttyUSB0',
        ...device,
      ]),
    ).toEqual([
      `5:10 inputs.a.url: "rtu+tcp://10.0.0.9" is not rtu+tcp://host:port with a port 1-65535 (the converter's port: there is no default)`,
      `10:10 inputs.b.url: "rtu+tcp://10.0.0.9:70000" is not rtu+tcp://host:port with a port 1-65535 (the converter's port: there is no default)`,
      '11:5 inputs.b.max_in_flight: max_in_flight applies only to tcp:// urls: a serial line carries one transaction at a time',
      '13:20 inputs.b.devices[0].unit_id: unit_id 0 is the RTU broadcast address and never answers; use 1-247',
      '16:10 inputs.c.url: "rtu+tcp:///dev/ttyUSB0" is not valid; expected a url tcp://host[:port] (port 502 by default), rtu://<serial device>, e.g. rtu:///dev/ttyUSB0, or rtu+tcp://host:port',
    ]);
  });

  it('one host:port is either a Modbus TCP server or an RTU converter, not both', async () => {
    const port = await freePort();
    const dev = ['devices:', '  - { unit_id: 1, registers: [{ name: x, table: holding, address: 0 }] }'];
    const tcp = input('tcp', [`url: tcp://127.0.0.1:${port}`, ...dev]);
    const rtu = input('rtu', [`url: rtu+tcp://127.0.0.1:${port}`, ...dev]);
    await tcp.m.start();
    await expect(rtu.m.start()).rejects.toThrow(`127.0.0.1:${port} is already in use as tcp://127.0.0.1:${port}`);
  });
});
