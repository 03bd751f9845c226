// The modbus input against a real pymodbus TCP server: types and orders, coils, exceptions, a dead
// unit beside a live one, the server killed and restarted, deadband, cron schedule.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/helpers/cli.js';
import { Unsigned } from '../../src/core/point.js';
import { ModbusInput, type ModbusTuning } from './modbus.js';
import { freePort, modbusConfig, sleep, startPymodbus, stopPeers, testContext, words, type PymodbusServer } from './testing/peers.js';

// Whatever a failed test left running.
afterAll(stopPeers);

const running: ModbusInput[] = [];
afterEach(async () => {
  for (const input of running.splice(0)) await input.stop();
});

function input(yaml: string[], tuning: Partial<ModbusTuning> = {}, id = 'plc') {
  const ctx = testContext(id);
  const m = new ModbusInput(modbusConfig(id, yaml), ctx, tuning);
  running.push(m);
  return { m, ctx };
}

const PI = (w: (b: Buffer) => void) => words(w, 8);
const be64 = PI((b) => b.writeDoubleBE(Math.PI));
const int64 = words((b) => b.writeBigInt64BE(-1234567890123456789n), 8);
const uint64 = words((b) => b.writeBigUInt64BE(18_000_000_000_000_000_000n), 8);
const f32 = words((b) => b.writeFloatBE(21.3), 4);
const swapBytes = (ws: number[]) => ws.map((w) => ((w & 0xff) << 8) | (w >> 8));

describe('modbus TCP against pymodbus', () => {
  let server: PymodbusServer;
  beforeAll(async () => {
    server = await startPymodbus({
      tcp: { port: 0 },
      missing: 'gateway', // a unit the server does not have: exception 11, as a gateway says it
      units: {
        '1': {
          hr: {
            '0': [
              0xff85, // 0 int16 -123
              0xff85, // 1 uint16 65413
              0xf8a4, 0x32eb, // 2 int32 big
              0x32eb, 0xf8a4, // 4 int32 little word order
              0xf8a4, 0x32eb, // 6 uint32
              ...f32, // 8 float32 big
              ...[...f32].reverse(), // 10 float32 little word order
              ...swapBytes(f32), // 12 float32 little byte order
              ...int64, // 14 int64
              ...[...uint64].reverse(), // 18 uint64 little word order
              ...be64, // 22 float64
              ...swapBytes([...be64].reverse()), // 26 float64 little/little
              7, // 30 bool (nonzero)
              1234, // 31 uint16 × 0.1
              215, // 32 int16 × 0.1 − 273.15
            ],
          },
          ir: { '0': [3] },
          co: { '0': [true, false, true, true, false, false, true, true, false, true] },
          di: { '0': [false, true] },
        },
        '2': { hr: { '0': [10, 11], '5': [15], '50': [1] } },
        '4': { hr: { '0': [200] } },
      },
      fail: { '2': { hr: [50] } },
    });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('reads every type in every word and byte order, scaled values exactly, coils and discrete inputs', async () => {
    const { m, ctx } = input([
      `url: tcp://127.0.0.1:${server.port}`,
      'interval: 1h',
      'tags: { line: "3" }',
      'devices:',
      '  - unit_id: 1',
      '    name: boiler',
      '    registers:',
      '      - { name: i16, table: holding, address: 0, type: int16 }',
      '      - { name: u16, table: holding, address: 1 }',
      '      - { name: i32, table: holding, address: 2, type: int32 }',
      '      - { name: i32_cdab, table: holding, address: 4, type: int32, word_order: little }',
      '      - { name: u32, table: holding, address: 6, type: uint32 }',
      '      - { name: f32, table: holding, address: 8, type: float32 }',
      '      - { name: f32_cdab, table: holding, address: 10, type: float32, word_order: little }',
      '      - { name: f32_badc, table: holding, address: 12, type: float32, byte_order: little }',
      '      - { name: i64, table: holding, address: 14, type: int64 }',
      '      - { name: u64_le, table: holding, address: 18, type: uint64, word_order: little }',
      '      - { name: f64, table: holding, address: 22, type: float64 }',
      '      - { name: f64_dcba, table: holding, address: 26, type: float64, word_order: little, byte_order: little }',
      '      - { name: flag, table: holding, address: 30, type: bool }',
      '      - { name: flow, table: holding, address: 31, scale: 0.1 }',
      '      - { name: temp_c, table: holding, address: 32, type: int16, scale: 0.1, offset: -273.15 }',
      '      - { name: level, table: input, address: 0, scale: 0.1 }',
      '      - { name: pump, table: coil, address: 0 }',
      '      - { name: valve, table: coil, address: 1 }',
      '      - { name: alarm, table: coil, address: 9 }',
      '      - { name: door, table: discrete, address: 1 }',
    ]);
    await m.start();
    await m.poll(1_700_000_000_000);
    expect(ctx.points).toHaveLength(1);
    const [p] = ctx.points;
    expect(p.measurement).toBe('plc');
    expect(p.tags).toEqual({ line: '3', device: 'boiler' });
    expect(p.timeUs).toBe(1_700_000_000_000_000);
    expect(p.fields).toEqual({
      i16: -123n,
      u16: 65413n,
      i32: -123456789n,
      i32_cdab: -123456789n,
      u32: 4171510507n,
      f32: 21.3,
      f32_cdab: 21.3,
      f32_badc: 21.3,
      i64: -1234567890123456789n,
      u64_le: new Unsigned(18_000_000_000_000_000_000n),
      f64: Math.PI,
      f64_dcba: Math.PI,
      flag: true,
      flow: 123.4,
      temp_c: -251.65,
      level: 0.3,
      pump: true,
      valve: false,
      alarm: true,
      door: true,
    });
    // One request per table: 33 contiguous holding registers, 1 input register, 10 coils, 1 discrete input.
    expect(m.stats().counters).toMatchObject({ requests: 4, timeouts: 0, protocol_errors: 0 });
    expect(m.stats()).toMatchObject({ points: 1, errors: 0, refused: 0, lastPointMs: 1_700_000_000_000 });
  });

  it('an exception fails only the registers of its request, is counted by code and logged once per change', async () => {
    const { m, ctx } = input([
      `url: tcp://127.0.0.1:${server.port}`,
      'interval: 1h',
      'devices:',
      '  - unit_id: 2',
      '    registers:',
      '      - { name: a, table: holding, address: 0 }',
      '      - { name: b, table: holding, address: 1 }',
      '      - { name: c, table: holding, address: 5 }', // 2-4 unmapped: read through, refused, split
      '      - { name: broken, table: holding, address: 50 }', // device failure
      '      - { name: missing, table: holding, address: 100 }', // unmapped
      '  - unit_id: 3', // not on this server: the gateway answers exception 11
      '    name: behind_gateway',
      '    registers:',
      '      - { name: x, table: input, address: 0 }',
    ]);
    await m.start();
    for (let i = 0; i < 3; i++) await m.poll(1_700_000_000_000 + i * 1000);
    expect(ctx.points.map((p) => [p.tags.device, p.fields])).toEqual([
      ['2', { a: 10n, b: 11n, c: 15n }],
      ['2', { a: 10n, b: 11n, c: 15n }],
      ['2', { a: 10n, b: 11n, c: 15n }],
    ]);
    const counters = m.stats().counters!;
    // Poll 1: 0-5 refused (2) then split; 100 refused (2); 50 failed (4); unit 3 (11). Polls 2-3: 100, 50, unit 3.
    expect(counters).toMatchObject({ exception_2: 4, exception_4: 3, exception_11: 3, timeouts: 0 });
    // Devices are read side by side: their lines interleave, each device's in its own order.
    const warns = ctx.log.entries.filter((e) => e.level === 'warn');
    const byUnit = (e: { obj: Record<string, unknown> }) => Number(e.obj.unit_id);
    expect(warns.sort((x, y) => byUnit(x) - byUnit(y)).map((e) => [e.obj.unit_id, e.obj.address, e.obj.code, e.obj.exception])).toEqual([
      [2, 50, 4, 'server device failure'],
      [2, 100, 2, 'illegal data address'],
      [3, 0, 11, 'gateway target device failed to respond'],
    ]);
    // The register appears on the device: one recovery line, and the value.
    await server.set(2, 'hr', 100, [42]);
    await m.poll(1_700_000_010_000);
    expect(ctx.points.at(-1)!.fields).toEqual({ a: 10n, b: 11n, c: 15n, missing: 42n });
    expect(ctx.log.entries.filter((e) => e.msg === 'modbus request succeeds again').map((e) => e.obj.address)).toEqual([100]);
  });

  it('deadband: stores a value that moved by more than the deadband, and at least every heartbeat', async () => {
    const { m, ctx } = input([
      `url: tcp://127.0.0.1:${server.port}`,
      'interval: 1h',
      'deadband_heartbeat: 2s',
      'devices:',
      '  - unit_id: 4',
      '    registers:',
      '      - { name: t, table: holding, address: 0, scale: 0.1, deadband: 0.5 }',
    ]);
    await m.start();
    const t0 = 1_700_000_000_000;
    const steps: [number, number][] = [
      [200, 0], // 20.0 first: stored
      [203, 1000], // 20.3: within the deadband
      [206, 1500], // 20.6: moved 0.6 since 20.0
      [206, 2500], // unchanged, 1 s since stored
      [206, 3500], // heartbeat (2 s since stored)
    ];
    for (const [raw, dt] of steps) {
      await server.set(4, 'hr', 0, [raw]);
      await m.poll(t0 + dt);
    }
    expect(ctx.points.map((p) => [p.timeUs / 1000 - t0, p.fields.t])).toEqual([
      [0, 20],
      [1500, 20.6],
      [3500, 20.6],
    ]);
    expect(m.stats().counters).toMatchObject({ deadband_suppressed: 2 });
  });

  it('polls on a cron schedule, stamped with the scheduled second', async () => {
    const { m, ctx } = input([`url: tcp://127.0.0.1:${server.port}`, 'schedule: "* * * * * *"', 'devices:', '  - { unit_id: 4, registers: [{ name: t, table: holding, address: 0 }] }']);
    await m.start();
    await waitFor(() => ctx.points.length >= 2, 5000, 'two scheduled polls');
    await m.stop();
    const times = ctx.points.map((p) => p.timeUs);
    expect(times.every((t) => t % 1_000_000 === 0)).toBe(true);
    expect(times[1] - times[0]).toBe(1_000_000);
  });
});

describe('modbus TCP: dead units and lost servers', () => {
  let server: PymodbusServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('a unit that never answers is backed off and does not hold up the one that does', async () => {
    server = await startPymodbus({ tcp: { port: 0 }, missing: 'ignore', units: { '1': { hr: { '0': [1, 2] } } } });
    const intervalMs = 400;
    const timeoutMs = 150; // generous: pymodbus answers slowly on a loaded machine
    const { m, ctx } = input(
      [
        `url: tcp://127.0.0.1:${server.port}`,
        `interval: ${intervalMs}ms`,
        `timeout: ${timeoutMs}ms`,
        'devices:',
        '  - { unit_id: 9, name: dead, registers: [{ name: a, table: holding, address: 0 }, { name: b, table: input, address: 0 }, { name: c, table: coil, address: 0 }] }',
        '  - { unit_id: 1, name: good, registers: [{ name: a, table: holding, address: 0 }, { name: b, table: holding, address: 1 }] }',
      ],
      { breakerBaseOpenMs: 1000, breakerMaxOpenMs: 2000 },
    );
    await m.start();
    await waitFor(() => ctx.points.length >= 9, 10_000, '9 polls of the good unit');
    await m.stop();
    const good = ctx.points.filter((p) => p.tags.device === 'good');
    expect(good.length).toBe(ctx.points.length); // the dead unit never makes a point
    // Its cadence: a point on every tick, no gaps.
    const times = good.map((p) => p.timeUs / 1000);
    expect(times.slice(1).map((t, i) => t - times[i])).toEqual(times.slice(1).map(() => intervalMs));
    // It is never later than the dead unit's one timeout (not one per request of the dead unit: it has 3),
    // and once the dead unit is known it is read first.
    for (const p of good) expect(p.writtenMs - p.timeUs / 1000).toBeLessThan(2 * timeoutMs);
    const c = m.stats().counters!;
    expect(c.breaker_opens).toBeGreaterThanOrEqual(1);
    expect(c.breaker_skips).toBeGreaterThan(0);
    // Breaker: 3 timeouts, then a probe after 1 s, 2 s, 2 s … instead of one timeout per poll.
    expect(c.timeouts).toBeLessThan(c.polls - 3);
    expect(c.timeouts).toBeGreaterThanOrEqual(3);
    expect(ctx.log.entries.filter((e) => e.msg === 'modbus unit does not answer').map((e) => e.obj.unit_id)).toEqual([9]);
  });

  it('a server killed and restarted mid-run is reconnected without restarting the input', async () => {
    const port = await freePort();
    const spec = { tcp: { port }, units: { '1': { hr: { '0': [5] } } } };
    server = await startPymodbus(spec);
    const { m, ctx } = input(
      [`url: tcp://127.0.0.1:${port}`, 'interval: 200ms', 'timeout: 200ms', 'devices:', '  - { unit_id: 1, registers: [{ name: v, table: holding, address: 0 }] }'],
      { reconnectInitialMs: 100, reconnectMaxMs: 400 },
    );
    await m.start();
    await waitFor(() => ctx.points.length >= 2, 5000, 'points before the kill');
    await server.stop('SIGKILL');
    await sleep(1200);
    const beforeRestart = ctx.points.length;
    const restartedMs = Date.now();
    server = await startPymodbus({ ...spec, units: { '1': { hr: { '0': [6] } } } });
    await waitFor(() => ctx.points.some((p) => p.fields.v === 6n), 5000, 'points after the restart');
    expect(ctx.points.length).toBeGreaterThan(beforeRestart);
    expect(ctx.points.filter((p) => p.timeUs / 1000 > restartedMs).every((p) => p.fields.v === 6n)).toBe(true);
    const c = m.stats().counters!;
    expect(c.reconnects).toBeGreaterThanOrEqual(1);
    expect(c.bus_down_polls).toBeGreaterThan(0);
    expect(ctx.log.entries.filter((e) => e.level === 'warn').map((e) => e.msg)).toContain('modbus bus connection lost; reconnecting');
  });

  it('a server that is down at start is waited for, without failing start()', async () => {
    const port = await freePort();
    const { m, ctx } = input(
      [`url: tcp://127.0.0.1:${port}`, 'interval: 200ms', 'timeout: 200ms', 'devices:', '  - { unit_id: 1, registers: [{ name: v, table: holding, address: 0 }] }'],
      { reconnectInitialMs: 100, reconnectMaxMs: 300 },
    );
    await m.start();
    await sleep(500);
    expect(ctx.points).toHaveLength(0);
    server = await startPymodbus({ tcp: { port }, units: { '1': { hr: { '0': [9] } } } });
    await waitFor(() => ctx.points.length > 0, 5000, 'first point');
    expect(ctx.points[0].fields).toEqual({ v: 9n });
    expect(m.stats().counters!.connect_failures).toBeGreaterThan(0);
    expect(ctx.log.entries.filter((e) => e.msg === 'modbus bus unreachable; retrying with backoff')).toHaveLength(1);
  });
});
