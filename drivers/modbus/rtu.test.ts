// The modbus input over RTU: pymodbus as the device on one end of a socat pty pair, the input on the
// other. Values and a dead unit, garbage on the line, two inputs sharing one port (checked on the
// wire), and the adapter "unplugged" (the pty pair torn down) and plugged back.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/helpers/cli.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { ModbusInput, type ModbusTuning } from './modbus.js';
import { crc16, rtuFrame } from './protocol.js';
import { sleep, startPtyPair, startPymodbus, stopPeers, testContext, words, modbusConfig, type PtyPair, type PymodbusServer } from './testing/peers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  // Also the socat or pymodbus of a test that failed before it registered their cleanup.
  await stopPeers();
});
afterAll(stopPeers);

async function device(dir: string, units: Parameters<typeof startPymodbus>[0]['units'], options: { trace?: boolean; delayMs?: number } = {}) {
  const pty = await startPtyPair(dir, { trace: options.trace });
  // A pty carries bytes, not bits: speed and parity are not simulated. The input side is configured
  // as a real bus would be (19200 8E1); pymodbus stays at parity none because pyserial with parity on
  // a pty makes pymodbus drop every request (seen with mbpoll as the master too).
  const server = await startPymodbus({ rtu: { port: pty.b, baudrate: 19200, parity: 'N' }, units, delay_ms: options.delayMs });
  cleanup.push(() => pty.stop(), () => server.stop());
  return { pty, server };
}

function input(id: string, yaml: string[], tuning: Partial<ModbusTuning> = {}) {
  const ctx = testContext(id);
  const m = new ModbusInput(modbusConfig(id, yaml), ctx, tuning);
  cleanup.push(() => m.stop());
  return { m, ctx };
}

const rtuHead = (path: string) => [`url: rtu://${path}`, 'baud_rate: 19200', 'parity: even'];

/** socat -x -v output → the transfers in order, consecutive ones in the same direction joined. */
function wireRuns(log: string): { dir: '>' | '<'; bytes: number[] }[] {
  const runs: { dir: '>' | '<'; bytes: number[] }[] = [];
  const lines = log.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const head = /^([<>]) \d{4}\/\d\d\/\d\d \S+\s+length=(\d+)/.exec(lines[i]);
    if (!head) continue;
    const dir = head[1] as '>' | '<';
    const bytes: number[] = [];
    for (i++; i < lines.length && !lines[i].startsWith('--'); i++) {
      for (const m of lines[i].slice(0, 49).matchAll(/\b[0-9a-f]{2}\b/g)) bytes.push(parseInt(m[0], 16));
    }
    expect(bytes.length).toBe(Number(head[2]));
    const last = runs.at(-1);
    if (last?.dir === dir) last.bytes.push(...bytes);
    else runs.push({ dir, bytes });
  }
  return runs;
}

describe('modbus RTU against pymodbus on a pty pair', () => {
  it('reads values; a unit that never answers costs only its timeout and is backed off', async () => {
    const dir = tmpDir('sluice-mb-');
    await device(dir, {
      '1': { hr: { '0': [...words((b) => b.writeFloatBE(-12.5), 4), ...words((b) => b.writeInt32BE(-70000), 4)], '10': [...words((b) => b.writeUInt32BE(70000), 4)].reverse() } },
      '2': { ir: { '3': [1234] }, co: { '0': [false, true] }, di: { '7': [true] } },
    });
    const { m, ctx } = input(
      'rtu',
      [
        ...rtuHead(`${dir}/pty-a`),
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
    expect(c).toMatchObject({ crc_errors: 0, protocol_errors: 0 });
  });

  it('garbage and corrupted frames on the line are discarded and counted; polling goes on', async () => {
    const dir = tmpDir('sluice-mb-');
    const { pty } = await device(dir, { '1': { hr: { '0': [111, 222] } } }, { delayMs: 15 });
    const { m, ctx } = input('noisy', [...rtuHead(`${dir}/pty-a`), 'interval: 100ms', 'timeout: 150ms', 'devices:', '  - { unit_id: 1, registers: [{ name: a, table: holding, address: 0 }, { name: b, table: holding, address: 1 }] }']);
    await m.start();
    await waitFor(() => ctx.points.length >= 2, 5000, 'clean points');
    // A second writer on the device's end of the cable: what it writes reaches the input as line noise.
    const fd = openSync(pty.b, constants.O_WRONLY | constants.O_NOCTTY);
    const fake = rtuFrame(1, Buffer.from([3, 4, 0xde, 0xad, 0xbe, 0xef]));
    fake.writeUInt16LE(crc16(fake, 0, 7) ^ 0x5a5a, 7); // looks like the answer, but its CRC is wrong
    const noisyFrom = ctx.points.length;
    try {
      for (let i = 0; i < 100; i++) {
        writeSync(fd, i % 3 === 0 ? fake : Buffer.from(Array.from({ length: 1 + (i % 7) }, (_, k) => (i * 37 + k * 101) & 0xff)));
        await sleep(13);
      }
    } finally {
      closeSync(fd);
    }
    const during = ctx.points.length - noisyFrom;
    const after = ctx.points.length;
    await waitFor(() => ctx.points.length >= after + 3, 5000, 'points after the noise');
    await m.stop();
    const c = m.stats().counters!;
    expect(c.stray_bytes).toBeGreaterThan(50);
    expect(c.crc_errors).toBeGreaterThan(0);
    expect(c.protocol_errors).toBe(0);
    expect(during).toBeGreaterThan(3); // it kept polling through the noise
    // Nothing wrong was ever stored: every point has the device's values.
    for (const p of ctx.points) expect(p.fields).toEqual({ a: 111n, b: 222n });
  });

  it('two inputs sharing one serial port never interleave transactions (checked on the wire)', async () => {
    const dir = tmpDir('sluice-mb-');
    const { pty } = await device(
      dir,
      {
        '1': { hr: { '0': [1, 2, 3] }, ir: { '0': [4] }, co: { '0': [true] } },
        '2': { hr: { '0': [5, 6] }, ir: { '100': [7] }, di: { '0': [true] } },
      },
      { trace: true, delayMs: 3 },
    );
    const path = `${dir}/pty-a`;
    const a = input('line_a', [...rtuHead(path), 'interval: 100ms', 'timeout: 200ms', 'devices:', '  - { unit_id: 1, registers: [{ name: h, table: holding, address: 0 }, { name: i, table: input, address: 0 }, { name: c, table: coil, address: 0 }] }']);
    const b = input('line_b', [...rtuHead(path), 'interval: 100ms', 'timeout: 200ms', 'devices:', '  - { unit_id: 2, registers: [{ name: h, table: holding, address: 1 }, { name: i, table: input, address: 100 }, { name: d, table: discrete, address: 0 }] }']);
    await a.m.start();
    await b.m.start();
    await waitFor(() => a.ctx.points.length >= 10 && b.ctx.points.length >= 10, 10_000, '10 polls each');
    await a.m.stop();
    await b.m.stop();
    const runs = wireRuns(pty.log());
    expect(runs.length).toBeGreaterThan(100);
    // Request, answer, request, answer…: a request never goes out while another awaits its answer.
    runs.forEach((run, i) => {
      expect(run.dir, `transfer ${i}`).toBe(i % 2 === 0 ? '>' : '<');
      if (run.dir === '>') expect(run.bytes.length, `request ${i}`).toBe(8);
    });
    // Both inputs polled at the same ticks, so their requests really competed for the line.
    const units = runs.filter((r) => r.dir === '>').map((r) => r.bytes[0]);
    expect(units.filter((u) => u === 1).length).toBeGreaterThanOrEqual(30);
    expect(units.filter((u) => u === 2).length).toBeGreaterThanOrEqual(30);
    expect(units.slice(0, 6).sort()).toEqual([1, 1, 1, 2, 2, 2]);
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

  it('inputs on one port must agree on its line settings', async () => {
    const dir = tmpDir('sluice-mb-');
    await device(dir, { '1': { hr: { '0': [1] } } });
    const reg = ['devices:', '  - { unit_id: 1, registers: [{ name: h, table: holding, address: 0 }] }'];
    const a = input('first', [...rtuHead(`${dir}/pty-a`), ...reg]);
    const b = input('second', [`url: rtu://${dir}/pty-a`, 'baud_rate: 9600', ...reg]);
    await a.m.start();
    await expect(b.m.start()).rejects.toThrow(/already in use at 19200 baud, parity even.*same settings/);
  });

  it('an unplugged adapter (the port disappears) is reopened when it comes back', async () => {
    const dir = tmpDir('sluice-mb-');
    let pty: PtyPair = await startPtyPair(dir);
    let server: PymodbusServer = await startPymodbus({ rtu: { port: pty.b }, units: { '1': { hr: { '0': [1] } } } });
    cleanup.push(
      () => pty.stop(),
      () => server.stop(),
    );
    const { m, ctx } = input('usb', [`url: rtu://${dir}/pty-a`, 'interval: 100ms', 'timeout: 100ms', 'devices:', '  - { unit_id: 1, registers: [{ name: h, table: holding, address: 0 }] }'], {
      reconnectInitialMs: 100,
      reconnectMaxMs: 300,
    });
    await m.start();
    await waitFor(() => ctx.points.length >= 2, 5000, 'points before unplugging');
    await server.stop();
    await pty.stop();
    await sleep(700);
    pty = await startPtyPair(dir);
    server = await startPymodbus({ rtu: { port: pty.b }, units: { '1': { hr: { '0': [2] } } } });
    await waitFor(() => ctx.points.some((p) => p.fields.h === 2n), 5000, 'points after plugging back');
    const c = m.stats().counters!;
    expect(c.reconnects).toBeGreaterThanOrEqual(1);
    expect(c.bus_down_polls).toBeGreaterThan(0);
    expect(ctx.log.entries.map((e) => e.msg)).toContain('modbus bus connection lost; reconnecting');
  });
});
