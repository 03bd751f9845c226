// The modbus input under an awkward peer (pymodbus made awkward by testing/server.py): one slow unit
// beside a good one (TCP and RTU), one busy address among good neighbours, answers under a wrong
// transaction id, answers after their timeout, the input stopped mid-poll, and the peers themselves
// stopped whatever happens to the test.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { waitFor } from '../../test/helpers/cli.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { REMERGE_AFTER_POLLS } from './device-plan.js';
import { ModbusInput, type ModbusTuning } from './modbus.js';
import { modbusConfig, runningPeers, startPtyPair, startPymodbus, stopPeers, testContext, type ServerSpec } from './testing/peers.js';

const running: ModbusInput[] = [];
afterEach(async () => {
  for (const input of running.splice(0)) await input.stop();
  await stopPeers();
});
afterAll(stopPeers);

function input(yaml: string[], tuning: Partial<ModbusTuning> = {}, id = 'plc') {
  const ctx = testContext(id);
  const m = new ModbusInput(modbusConfig(id, yaml), ctx, tuning);
  running.push(m);
  return { m, ctx };
}

/** A pymodbus server over TCP, or over RTU on a fresh pty pair: the url the input uses. */
async function peer(link: 'tcp' | 'rtu', spec: Omit<ServerSpec, 'tcp' | 'rtu'>): Promise<{ url: string; server: Awaited<ReturnType<typeof startPymodbus>> }> {
  if (link === 'tcp') {
    const server = await startPymodbus({ ...spec, tcp: { port: 0 } });
    return { url: `tcp://127.0.0.1:${server.port}`, server };
  }
  const pty = await startPtyPair(tmpDir('sluice-mb-'));
  const server = await startPymodbus({ ...spec, rtu: { port: pty.b, baudrate: 19200 } });
  return { url: `rtu://${pty.a}`, server };
}

const T0 = 1_700_000_000_000;

/**
 * `device` was read at every tick the input had: never skipped (no overrun logged for it), a point
 * for each poll (the last may have been cut by stop()), on the interval's multiples, in order. Ticks
 * the event loop itself missed on a loaded machine are not polls, so they do not count against it.
 */
function expectReadAtEveryTick(ctx: ReturnType<typeof testContext>, device: string, polls: number, intervalMs: number): void {
  const skipped = ctx.log.entries.filter((e) => e.msg.startsWith('modbus device still being read at the next tick') && e.obj.device === device);
  expect(skipped).toEqual([]);
  const times = ctx.points.filter((p) => p.tags.device === device).map((p) => p.timeUs / 1000);
  expect(times.length).toBeGreaterThanOrEqual(polls - 1);
  expect(times.every((t, i) => t % intervalMs === 0 && (i === 0 || t > times[i - 1]))).toBe(true);
}

describe.each(['tcp', 'rtu'] as const)('a slow unit on a %s bus', (link) => {
  it('skips its own ticks, not the others: the good unit is stored at every tick', async () => {
    // The figures: unit 2 answers each request after 500 ms (1 s timeout) and has 3 requests:
    // 1.5 s a read, for a 1 s interval.
    // Unit 1 answers at once and has 3 requests too: each must not wait for one of unit 2's.
    const { url } = await peer(link, {
      slow_ms: { '2': 500 },
      units: { '1': { hr: { '0': [11, 12] }, ir: { '0': [13] }, di: { '0': [false] } }, '2': { hr: { '0': [21] }, ir: { '0': [22] }, co: { '0': [true] } } },
    });
    const intervalMs = 1000;
    const { m, ctx } = input([
      `url: ${url}`,
      `interval: ${intervalMs}ms`,
      'timeout: 1s',
      'devices:',
      '  - { unit_id: 2, name: slow, registers: [{ name: h, table: holding, address: 0 }, { name: i, table: input, address: 0 }, { name: c, table: coil, address: 0 }] }',
      '  - unit_id: 1',
      '    name: good',
      '    registers: [{ name: a, table: holding, address: 0 }, { name: b, table: holding, address: 1 }, { name: i, table: input, address: 0 }, { name: d, table: discrete, address: 0 }]',
    ]);
    await m.start();
    await waitFor(() => ctx.points.filter((p) => p.tags.device === 'good').length >= 6, 20_000, '6 points of the good unit');
    await m.stop();
    const good = ctx.points.filter((p) => p.tags.device === 'good');
    const slow = ctx.points.filter((p) => p.tags.device === 'slow');
    expectReadAtEveryTick(ctx, 'good', m.stats().counters!.polls, intervalMs);
    // Exact values; the last read may have been cut short by stop() (it keeps what it had read).
    for (const p of good.slice(0, -1)) expect(p.fields).toEqual({ a: 11n, b: 12n, i: 13n, d: false });
    // The slow unit is read as often as it can be, exactly, and its skipped ticks are its own.
    expect(slow.length).toBeGreaterThan(0);
    for (const p of slow.slice(0, -1)) expect(p.fields).toEqual({ h: 21n, i: 22n, c: true });
    const c = m.stats().counters!;
    expect(c.overruns).toBeGreaterThan(0);
    expect(c).toMatchObject({ timeouts: 0, protocol_errors: 0, crc_errors: 0, mismatched_replies: 0 });
    const overrunLogs = ctx.log.entries.filter((e) => e.msg.startsWith('modbus device still being read at the next tick'));
    expect(overrunLogs.map((e) => [e.level, e.obj.device])).toEqual([['warn', 'slow']]);
  });
});

describe('one failing address among good neighbours', () => {
  const regs = (unit: number, extra: Record<number, string> = {}) => [
    `  - unit_id: ${unit}`,
    '    registers:',
    ...[0, 1, 2, 3, 4, 5].map((a) => `      - { name: r${a}, table: holding, address: ${a}${extra[a] ?? ''} }`),
  ];
  const spec = (code: number): ServerSpec => ({ tcp: { port: 0 }, units: { '1': { hr: { '0': [10, 11, 12, 13, 14, 15] } } }, exceptions: { '1': { hr: { '3': code } } } });
  const neighbours = { r0: 10n, r1: 11n, r2: 12n, r4: 14n, r5: 15n };

  it.each([6, 2])('exception %i on one address fails that address only, on every poll', async (code) => {
    const server = await startPymodbus(spec(code));
    const { m, ctx } = input([`url: tcp://127.0.0.1:${server.port}`, 'interval: 1h', 'devices:', ...regs(1)]);
    await m.start();
    for (let i = 0; i < 4; i++) await m.poll(T0 + i * 1000);
    expect(ctx.points.map((p) => p.fields)).toEqual([neighbours, neighbours, neighbours, neighbours]);
    const c = m.stats().counters!;
    // Poll 1: the merged request (refused), then one request per register; the failing one is isolated.
    // Polls 2-4: r0-r2, r3 alone (refused), r4-r5.
    expect(c).toMatchObject({ requests: 1 + 6 + 3 * 3, [`exception_${code}`]: 2 + 3, timeouts: 0 });
    const isolated = ctx.log.entries.filter((e) => e.msg.startsWith('modbus register fails while its neighbours answer'));
    expect(isolated.map((e) => [e.obj.addresses, e.obj.code])).toEqual([[[3], code]]);
    const warns = ctx.log.entries.filter((e) => e.level === 'warn');
    expect(warns.map((e) => [e.obj.address, e.obj.count, e.obj.code])).toEqual([[3, 1, code]]);
  });

  it('an isolated address that answers again is merged with its neighbours again', async () => {
    const server = await startPymodbus(spec(6));
    const { m, ctx } = input([`url: tcp://127.0.0.1:${server.port}`, 'interval: 1h', 'devices:', ...regs(1)]);
    await m.start();
    await m.poll(T0);
    await server.raise(1, 'hr', 3, null);
    for (let i = 1; i <= REMERGE_AFTER_POLLS + 2; i++) await m.poll(T0 + i * 1000);
    expect(ctx.points.at(-1)!.fields).toEqual({ ...neighbours, r3: 13n });
    const before = m.stats().counters!.requests;
    await m.poll(T0 + 100_000);
    expect(m.stats().counters!.requests - before).toBe(1); // one request for the six registers again
    expect(ctx.log.entries.filter((e) => e.msg.startsWith('modbus register answers again')).map((e) => e.obj.fields)).toEqual([['r3']]);
  });

  it('own_request: true reads a register alone from the first poll', async () => {
    const server = await startPymodbus(spec(6));
    const { m, ctx } = input([`url: tcp://127.0.0.1:${server.port}`, 'interval: 1h', 'devices:', ...regs(1, { 3: ', own_request: true' })]);
    await m.start();
    await m.poll(T0);
    expect(ctx.points.map((p) => p.fields)).toEqual([neighbours]);
    expect(m.stats().counters).toMatchObject({ requests: 3, exception_6: 1 });
  });

  it('own_request is a boolean in the config', () => {
    const text = (v: string) =>
      ['version: 1', 'inputs:', '  m:', '    type: modbus', '    url: tcp://10.0.0.1', '    devices:', '      - unit_id: 1', '        registers:', `          - { name: a, table: holding, address: 0, own_request: ${v} }`, ''].join('\n');
    const ok = loadConfig({ text: text('true'), file: 't.yaml', env: {}, hostname: 'h' });
    expect(ok.ok).toBe(true);
    const bad = loadConfig({ text: text('"yes"'), file: 't.yaml', env: {}, hostname: 'h' });
    expect(bad.ok ? [] : bad.errors.map((e) => e.path)).toEqual(['inputs.m.devices[0].registers[0].own_request']);
  });
});

describe('answers that do not match the request (TCP)', () => {
  it('a wrong transaction id is discarded and counted, and the right answer is still waited for', async () => {
    const server = await startPymodbus({
      tcp: { port: 0 },
      units: { '5': { hr: { '0': [55] } }, '6': { hr: { '0': [66] } } },
      wrong_tid: { '5': 'before', '6': 'instead' },
    });
    const { m, ctx } = input([
      `url: tcp://127.0.0.1:${server.port}`,
      'interval: 1h',
      'timeout: 300ms',
      'devices:',
      '  - { unit_id: 5, name: noisy, registers: [{ name: v, table: holding, address: 0 }] }',
      '  - { unit_id: 6, name: wrong, registers: [{ name: v, table: holding, address: 0 }] }',
    ]);
    await m.start();
    for (let i = 0; i < 4; i++) await m.poll(T0 + i * 1000);
    // Unit 5: a stray copy first, then the answer: read every time. Unit 6: only wrong ids: never read.
    expect(ctx.points.map((p) => [p.tags.device, p.fields.v])).toEqual([
      ['noisy', 55n],
      ['noisy', 55n],
      ['noisy', 55n],
      ['noisy', 55n],
    ]);
    const c = m.stats().counters!;
    expect(c).toMatchObject({ mismatched_replies: 8, mismatched_requests: 4, late_replies: 0, timeouts: 0, breaker_opens: 0 });
    expect(m.stats().errors).toBe(4);
    const logs = ctx.log.entries.filter((e) => e.level !== 'debug');
    expect(logs.map((e) => [e.level, e.obj.unit_id, e.obj.outcome, e.msg])).toEqual([
      ['warn', 6, 'mismatched', expect.stringMatching(/^modbus answers do not match the request \(wrong transaction or unit id\)/)],
    ]);
    expect(String(logs[0].obj.error)).toMatch(/^only answers with transaction id \d+ came back \(expected transaction id \d+, unit id 6\)$/);
  });

  it('an answer that arrives after its timeout is counted as late, not as a mismatch', async () => {
    const server = await startPymodbus({ tcp: { port: 0 }, slow_ms: { '1': 300 }, units: { '1': { hr: { '0': [1] }, ir: { '0': [2] } } } });
    // A breaker that stays closed, so every poll sends a request (a late answer is reported with the next one).
    const { m, ctx } = input([`url: tcp://127.0.0.1:${server.port}`, 'interval: 1h', 'timeout: 150ms', 'devices:', '  - { unit_id: 1, registers: [{ name: h, table: holding, address: 0 }] }'], {
      breakerThreshold: 1000,
    });
    await m.start();
    for (let i = 0; i < 10 && m.stats().counters!.late_replies === 0; i++) await m.poll(T0 + i * 1000);
    expect(m.stats().counters!.late_replies).toBeGreaterThanOrEqual(1);
    expect(m.stats().counters).toMatchObject({ mismatched_replies: 0 });
    expect(ctx.log.entries.filter((e) => e.msg.startsWith('modbus answer arrived after its request had timed out'))).toHaveLength(1);
    expect(m.stats().counters!.timeouts).toBeGreaterThanOrEqual(2);
  });
});

describe('stopping mid-poll', () => {
  it('stores the readings the poll in progress has already taken', async () => {
    const server = await startPymodbus({ tcp: { port: 0 }, slow_ms: { '7': 400 }, units: { '7': { hr: { '0': [70] }, ir: { '0': [71] }, co: { '0': [true] } } } });
    const { m, ctx } = input([
      `url: tcp://127.0.0.1:${server.port}`,
      'interval: 1h',
      'timeout: 2s',
      'devices:',
      '  - { unit_id: 7, registers: [{ name: h, table: holding, address: 0 }, { name: i, table: input, address: 0 }, { name: c, table: coil, address: 0 }] }',
    ]);
    await m.start();
    const polling = m.poll(T0);
    // The first answer is in and the second request is on the wire: stop now.
    await waitFor(() => m.stats().counters!.requests >= 1, 5000, 'the first answer');
    await m.stop();
    await polling;
    // Coils are read first, then input, then holding registers; the third request is never sent.
    expect(ctx.points.map((p) => p.fields)).toEqual([{ c: true, i: 71n }]);
    expect(m.stats().counters).toMatchObject({ requests: 2 });
    expect(m.stats().points).toBe(1);
  });
});

describe('the peers themselves', () => {
  it('stopPeers ends every socat and pymodbus still running, also those a test left behind', async () => {
    const pty = await startPtyPair(tmpDir('sluice-mb-'));
    await startPymodbus({ rtu: { port: pty.b }, units: { '1': { hr: { '0': [1] } } } });
    const pids = runningPeers();
    expect(pids).toHaveLength(2);
    await stopPeers();
    expect(runningPeers()).toEqual([]);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  });
});

describe('max_in_flight on TCP', () => {
  it('a unit whose requests wait out their timeout does not hold up the others: the good unit is stored at every tick', async () => {
    // Unit 6 answers only under wrong transaction ids, so each of its requests waits for the timeout.
    // (Not a silent unit: pymodbus drops whatever follows a request for a unit it does not serve.)
    const server = await startPymodbus({
      tcp: { port: 0 },
      units: { '1': { hr: { '0': [11] }, ir: { '0': [12] }, co: { '0': [true] } }, '6': { hr: { '0': [66] } } },
      wrong_tid: { '6': 'instead' },
    });
    const intervalMs = 1000;
    // A timeout longer than the interval.
    const { m, ctx } = input([
      `url: tcp://127.0.0.1:${server.port}`,
      'max_in_flight: 4',
      `interval: ${intervalMs}ms`,
      'timeout: 1500ms',
      'devices:',
      '  - { unit_id: 6, name: wrong, registers: [{ name: x, table: holding, address: 0 }] }',
      '  - { unit_id: 1, name: good, registers: [{ name: h, table: holding, address: 0 }, { name: i, table: input, address: 0 }, { name: c, table: coil, address: 0 }] }',
    ]);
    await m.start();
    await waitFor(() => ctx.points.length >= 6, 20_000, '6 points of the good unit');
    await m.stop();
    expect(ctx.points.every((p) => p.tags.device === 'good')).toBe(true);
    for (const p of ctx.points.slice(0, -1)) expect(p.fields).toEqual({ h: 11n, i: 12n, c: true });
    const c = m.stats().counters!;
    expect(c.mismatched_replies).toBeGreaterThanOrEqual(3);
    expectReadAtEveryTick(ctx, 'good', c.polls, intervalMs);
  });

  it('is refused on an rtu:// url', () => {
    expect(() => modbusConfig('m', ['url: rtu:///dev/ttyUSB0', 'max_in_flight: 2', 'devices:', '  - { unit_id: 1, registers: [{ name: a, table: holding, address: 0 }] }'])).toThrow(
      /max_in_flight: max_in_flight applies only to tcp:\/\/ urls/,
    );
  });
});
