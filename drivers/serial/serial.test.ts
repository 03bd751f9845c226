// The serial input against real pseudo-terminals (socat pty pairs): what a sensor writes on the peer
// end arrives in a real ring with the right fields, types, tags and times; garbage, fragments and
// over-long lines are counted while the lines around them are stored; a device that vanishes and comes
// back is reopened; a port that does not exist yet is waited for; refused points are counted.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import type { SerialInputConfig } from '../../drivers/serial/schema.js';
import type { Logger } from '../../src/core/component.js';
import { parseSeriesKey } from '../../src/core/line-protocol.js';
import { Unsigned, type FieldValue, type Point } from '../../src/core/point.js';
import { groupRows } from '../../src/query/rows.js';
import { StoreFullError } from '../../src/store/errors.js';
import { SqliteRing, type RingOptions } from '../../src/store/ring.js';
import { sluice, sluiceSpawn, waitFor } from '../../test/helpers/cli.js';
import { startPtyPair, type PtyPair } from '../../test/helpers/pty.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { SerialInput } from './serial.js';

const MiB = 1024 * 1024;

interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function captureLogger(records: LogRecord[]): Logger {
  const at =
    (level: LogRecord['level']) =>
    (obj: object, msg = ''): void => {
      records.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

function serialConfig(port: string, lines: string[]): SerialInputConfig {
  const text = ['version: 1', 'inputs:', '  dev:', '    type: serial', `    port: ${port}`, ...lines.map((l) => '    ' + l)].join('\n');
  const r = loadConfig({ text, file: 'test.yaml', env: {}, hostname: 'h' });
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.config.inputs.dev as SerialInputConfig;
}

interface Row {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, FieldValue>;
  timeUs: number;
}

/** Everything in the ring, oldest first (commits what is pending first). */
function rows(ring: SqliteRing): Row[] {
  ring.commit();
  const out: Row[] = [];
  for (const s of ring.scan()) {
    const { measurement, tags } = parseSeriesKey(s.key);
    for (const r of groupRows(s.group)) out.push({ measurement, tags, fields: Object.fromEntries(r.fields), timeUs: r.timeUs });
  }
  return out.sort((a, b) => a.timeUs - b.timeUs);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Each test's resources, released in afterEach even when an assertion failed.
let cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

interface Rig {
  dir: string;
  pair: PtyPair;
  ring: SqliteRing;
  input: SerialInput;
  logs: LogRecord[];
  /** Waits for the n-th log line with this message. */
  logged(msg: string, n?: number): Promise<LogRecord>;
}

async function rig(configLines: string[], opts: { ring?: Partial<RingOptions>; waitSettle?: boolean; ptyFirst?: boolean } = {}): Promise<Rig> {
  const dir = tmpDir('sluice-serial-');
  const logs: LogRecord[] = [];
  const ring = SqliteRing.open({ dataDir: join(dir, 'data'), maxBytes: 64 * MiB, whenFull: 'drop_oldest', commitIntervalMs: 20, ...opts.ring });
  cleanups.push(() => ring.close());
  let pair: PtyPair | undefined;
  if (opts.ptyFirst !== false) {
    pair = await startPtyPair(dir);
    const p = pair;
    cleanups.push(() => p.close());
  }
  const input = new SerialInput(serialConfig(join(dir, 'tty'), configLines), { id: 'dev', log: captureLogger(logs), sink: ring, agentId: 'gw', dataDir: dir }, { reopenMinMs: 50, reopenMaxMs: 200 });
  cleanups.push(() => input.stop());
  await input.start();
  const logged = (msg: string, n = 1): Promise<LogRecord> => waitFor(() => logs.filter((l) => l.msg === msg)[n - 1], 10_000, `log "${msg}" #${n}`);
  if (pair) {
    await logged('serial port opened');
    // Let the port be quiet for longer than settleMs, so the first line is taken as a whole line.
    if (opts.waitSettle !== false) await sleep(input.settleMs + 100);
  }
  return { dir, pair: pair!, ring, input, logs, logged };
}

describe('serial input (socat pty pairs)', () => {
  it('csv with "\\r\\n" lines, a time column and tags: exact fields, types and times', async () => {
    const r = await rig([
      'delimiter: "\\r\\n"',
      'format: csv',
      'csv: { columns: [ts, temperature, humidity, state], time_column: ts, time_format: unix_ms }',
      'measurement: climate',
      'tags: { room: lab }',
    ]);
    r.pair.write('1700000000000,21.5,40,ok\r\n1700000001000,21.25,40.5,true\r\n1700000002000, 22 ,,"warm, dry"\r\n');
    await waitFor(() => r.input.stats().points === 3, 10_000, '3 points');
    expect(rows(r.ring)).toStrictEqual([
      { measurement: 'climate', tags: { room: 'lab' }, fields: { temperature: 21.5, humidity: 40, state: 'ok' }, timeUs: 1_700_000_000_000_000 },
      { measurement: 'climate', tags: { room: 'lab' }, fields: { temperature: 21.25, humidity: 40.5, state: true }, timeUs: 1_700_000_001_000_000 },
      { measurement: 'climate', tags: { room: 'lab' }, fields: { temperature: 22, state: 'warm, dry' }, timeUs: 1_700_000_002_000_000 },
    ]);
    expect(r.input.stats()).toMatchObject({ points: 3, errors: 0, refused: 0, counters: { lines: 3, garbage: 0, too_long: 0, partial: 0, reopens: 0 } });
  });

  it('json lines: nested keys flattened with _, a picked subset, the time from time_key', async () => {
    const r = await rig(['format: json', 'json: { fields: [env, pump_on], time_key: ts, time_precision: s }']);
    r.pair.write('{"ts":1700000000,"env":{"t":21.5,"h":40},"pump_on":true,"fw":"1.2"}\n{"ts":"2023-11-14T22:13:21.5Z","env":{"t":21.6},"pump_on":false}\n');
    await waitFor(() => r.input.stats().points === 2, 10_000, '2 points');
    expect(rows(r.ring)).toStrictEqual([
      { measurement: 'dev', tags: {}, fields: { env_t: 21.5, env_h: 40, pump_on: true }, timeUs: 1_700_000_000_000_000 },
      { measurement: 'dev', tags: {}, fields: { env_t: 21.6, pump_on: false }, timeUs: 1_700_000_001_500_000 },
    ]);
  });

  it('influx lines keep their measurement and types; lines without a timestamp get the time of receipt', async () => {
    const r = await rig(['format: influx', 'tags: { bus: rs232 }']);
    const beforeUs = Date.now() * 1000;
    r.pair.write('power,phase=L1 watts=1250.5,count=12i,raw=65535u,ok=t,fw="1.2"\npower,phase=L2 watts=980 1700000000000000000\n');
    await waitFor(() => r.input.stats().points === 2, 10_000, '2 points');
    const afterUs = Date.now() * 1000;
    const got = rows(r.ring);
    expect(got[0]).toStrictEqual({ measurement: 'power', tags: { bus: 'rs232', phase: 'L2' }, fields: { watts: 980 }, timeUs: 1_700_000_000_000_000 });
    expect(got[1]).toMatchObject({ measurement: 'power', tags: { bus: 'rs232', phase: 'L1' }, fields: { watts: 1250.5, count: 12n, raw: new Unsigned(65535n), ok: true, fw: '1.2' } });
    expect(got[1].timeUs).toBeGreaterThanOrEqual(beforeUs);
    expect(got[1].timeUs).toBeLessThanOrEqual(afterUs);
  });

  it('regex with ";" as the delimiter; CR/LF around lines are ignored', async () => {
    const r = await rig(['delimiter: ";"', 'format: regex', "regex: { pattern: '^W=(?<weight_kg>-?[0-9.]+)kg(?: (?<state>ST|US))?$' }"]);
    r.pair.write('W=12.5kg ST;\r\nW=-0.2kg;W=13kg US;');
    await waitFor(() => r.input.stats().points === 3, 10_000, '3 points');
    expect(rows(r.ring).map((x) => x.fields)).toStrictEqual([{ weight_kg: 12.5, state: 'ST' }, { weight_kg: -0.2 }, { weight_kg: 13, state: 'US' }]);
    expect(r.input.stats().counters).toMatchObject({ lines: 3, garbage: 0 });
  });

  it('garbage and over-long lines are counted and skipped; the good lines around them are stored', async () => {
    const r = await rig(['format: csv', 'csv: { columns: [t, h] }', 'max_line_length: 64']);
    r.pair.write('1,10\n');
    r.pair.write('not,a,csv,line\n'); // wrong number of columns
    r.pair.write(Buffer.concat([Buffer.from([0xff, 0xfe, 0x2c, 0x80]), Buffer.from('\n')])); // wrong baud rate: not UTF-8
    r.pair.write('2,\u0007\u0000\n'); // line noise: control characters
    r.pair.write('x'.repeat(500) + '\n'); // over-long
    r.pair.write('\n\r\n'); // blank lines: nothing, not garbage
    r.pair.write('3,30\n');
    await waitFor(() => r.input.stats().points === 2 && r.input.stats().counters!.garbage === 3, 10_000, '2 points and 3 garbage lines');
    expect(rows(r.ring).map((x) => x.fields)).toStrictEqual([
      { t: 1, h: 10 },
      { t: 3, h: 30 },
    ]);
    expect(r.input.stats()).toMatchObject({ points: 2, errors: 4, counters: { lines: 5, garbage: 3, too_long: 1, partial: 0 } });
    // One log line for the first problem, the rest held back (counted in the next one).
    const warned = r.logs.filter((l) => l.msg === 'line skipped');
    expect(warned).toHaveLength(1);
    expect(warned[0].obj).toMatchObject({ reason: '4 columns, expected 2 (t,h)', line: 'not,a,csv,line' });
  });

  it('drops the first line after opening when the device is mid-line (a fragment), keeps it after a quiet start', async () => {
    // 300 bit/s: settleMs ≈ 1 s, so the write below lands well inside the settle window.
    const r = await rig(['baud_rate: 300', 'format: csv', 'csv: { columns: [t, h] }'], { waitSettle: false });
    expect(r.input.settleMs).toBeGreaterThan(1000);
    r.pair.write('5,40.1\n21.5,40.2\n'); // "5,40.1" is the tail of "21.5,40.1": it would decode, wrongly
    await waitFor(() => r.input.stats().counters!.lines === 2, 10_000, '2 lines');
    expect(rows(r.ring).map((x) => x.fields)).toStrictEqual([{ t: 21.5, h: 40.2 }]);
    expect(r.input.stats()).toMatchObject({ points: 1, errors: 0, counters: { partial: 1 } });
  });

  it('keeps the first line when the port was quiet after opening', async () => {
    const r = await rig(['format: csv', 'csv: { columns: [t, h] }']); // waits settleMs before writing
    r.pair.write('21.5,40.1\n');
    await waitFor(() => r.input.stats().points === 1, 10_000, '1 point');
    expect(r.input.stats().counters).toMatchObject({ lines: 1, partial: 0 });
  });

  it('reopens a device that disappeared and came back (socat killed and restarted), and keeps reading', async () => {
    const r = await rig(['format: csv', 'csv: { columns: [t, h] }']);
    r.pair.write('1,10\n2,');
    await waitFor(() => r.input.stats().points === 1, 10_000, '1 point');
    await r.pair.kill(); // the link vanishes, as /dev/ttyUSB0 does when unplugged
    await r.logged('serial port closed; reopening');
    await waitFor(() => r.input.stats().counters!.open_errors >= 2, 10_000, 'failed reopen attempts');
    await r.pair.restart(); // a new /dev/pts/N behind the same path
    await r.logged('serial port reopened');
    await sleep(r.input.settleMs + 100);
    r.pair.write('3,30\n');
    await waitFor(() => r.input.stats().points === 2, 10_000, '2 points');
    expect(rows(r.ring).map((x) => x.fields)).toStrictEqual([
      { t: 1, h: 10 },
      { t: 3, h: 30 },
    ]);
    // "2," was cut by the disconnect: a partial line, not stored, not glued to "3,30".
    expect(r.input.stats().counters).toMatchObject({ reopens: 1, partial: 1, garbage: 0 });
    // The repeated open failures were logged once at warn, then at debug.
    const notFound = r.logs.filter((l) => l.msg.startsWith('serial port not found'));
    expect(notFound).toHaveLength(1);

    // And a second time: reopening goes on as long as the device keeps coming back.
    await r.pair.restart();
    await r.logged('serial port reopened', 2);
    await sleep(r.input.settleMs + 100);
    r.pair.write('4,40\n');
    await waitFor(() => r.input.stats().points === 3, 10_000, '3 points');
    expect(r.input.stats().counters).toMatchObject({ reopens: 2 });
  });

  it('starts without its device, says which serial ports exist, and opens the port once it appears', async () => {
    const r = await rig(['format: csv', 'csv: { columns: [t] }'], { ptyFirst: false });
    const warn = await r.logged('serial port not found; retrying until it appears');
    expect(warn.level).toBe('warn');
    expect(Array.isArray(warn.obj.candidates)).toBe(true);
    expect(warn.obj.hint).toMatch(/by-id/);
    const pair = await startPtyPair(r.dir);
    cleanups.push(() => pair.close());
    const opened = await r.logged('serial port opened');
    expect(opened.obj.failed_attempts).toBeGreaterThan(0);
    await sleep(r.input.settleMs + 100);
    pair.write('7\n');
    await waitFor(() => r.input.stats().points === 1, 10_000, '1 point');
    expect(rows(r.ring)[0].fields).toStrictEqual({ t: 7 });
    expect(r.input.stats().counters!.reopens).toBe(0);
  });

  it('counts points the ring refuses (full under drop_newest) and goes on reading', async () => {
    const r = await rig(['format: csv', 'csv: { columns: [t, note] }'], { ring: { maxBytes: 1 * MiB, whenFull: 'drop_newest' } });
    // Fill the store with incompressible data until it refuses even one point as big as a line below.
    const blob = (chars: number): string => randomBytes(chars).toString('base64').slice(0, chars);
    let timeMs = 1_600_000_000_000;
    for (let batch = 512; batch >= 1; ) {
      const filler: Point[] = Array.from({ length: batch }, () => ({ measurement: 'filler', tags: {}, fields: { blob: blob(1000) }, timeUs: timeMs++ * 1000 }));
      try {
        await r.ring.write(filler);
      } catch (err) {
        expect(err).toBeInstanceOf(StoreFullError);
        batch = batch === 1 ? 0 : Math.floor(batch / 4);
      }
      if (timeMs > 1_600_000_000_000 + 100_000) throw new Error('the store never filled up');
    }
    r.pair.write(`1,${blob(3000)}\n`);
    await waitFor(() => r.input.stats().refused === 1, 10_000, '1 refused point');
    r.pair.write(`2,${blob(3000)}\n`);
    await waitFor(() => r.input.stats().refused === 2, 10_000, '2 refused points');
    expect(r.input.stats()).toMatchObject({ points: 2, refused: 2, counters: { lines: 2 } });
    expect(r.logs.filter((l) => l.msg === 'store refused points')).toHaveLength(1);
  });

  it('the pty helper carries bytes both ways (the Modbus RTU tests use the other direction)', async () => {
    const pair = await startPtyPair(tmpDir('sluice-pty-'));
    cleanups.push(() => pair.close());
    const { openSync, writeSync, closeSync, constants } = await import('node:fs');
    const fd = openSync(pair.dev, constants.O_RDWR | constants.O_NOCTTY);
    writeSync(fd, Buffer.from([1, 3, 0, 0, 0, 2]));
    closeSync(fd);
    expect([...(await pair.read(6))]).toEqual([1, 3, 0, 0, 0, 2]);
  });

  it('stop() releases the port: another process can open it right after', async () => {
    const r = await rig(['format: csv', 'csv: { columns: [t] }']);
    await r.input.stop();
    // serialport takes an exclusive lock on open; a second opener fails while the first holds it.
    const second = new SerialInput(serialConfig(r.pair.dev, ['format: csv', 'csv: { columns: [t] }']), { id: 'dev2', log: captureLogger(r.logs), sink: r.ring, agentId: 'gw', dataDir: r.dir });
    cleanups.push(() => second.stop());
    await second.start();
    await r.logged('serial port opened', 2);
    expect(r.logs.filter((l) => l.msg === 'cannot open serial port; retrying')).toHaveLength(0);
  });

  it('through the agent: `sluice run -c FILE` reads the port; export shows the points with the agent tags', async () => {
    const dir = tmpDir('sluice-serial-cli-');
    const pair = await startPtyPair(dir);
    cleanups.push(() => pair.close());
    const config = join(dir, 'sluice.yaml');
    const data = join(dir, 'data');
    writeFileSync(
      config,
      [
        'version: 1',
        'agent: { id: gw, tags: { site: plant-a }, commit_interval: 50ms }',
        'inputs:',
        '  climate:',
        '    type: serial',
        `    port: ${pair.dev}`,
        '    baud_rate: 115200',
        '    delimiter: "\\r\\n"',
        '    format: csv',
        '    csv: { columns: [time, temperature, humidity], time_column: time, time_format: rfc3339 }',
        '    tags: { room: lab }',
        '',
      ].join('\n'),
    );
    const child = sluiceSpawn(['run', '-c', config, '--data-dir', data]);
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(() => output.includes('"serial port opened"'), 10_000, 'the agent to open the port');
    await sleep(300); // past the settle time at 115200 bit/s
    pair.write('2024-05-01T12:00:00Z,21.5,40.1\r\n2024-05-01T12:00:05.25Z,21.6,40\r\ngarbage\r\n');
    await waitFor(() => (JSON.parse(sluice(['status', '--data-dir', data, '--json']).stdout) as { points: number }).points === 2, 10_000, '2 points in the store');
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('"reason":"1 column, expected 3 (time,temperature,humidity)"');
    const exported = sluice(['export', '--data-dir', data, '--precision', 'ms']);
    expect(exported.stdout).toBe(
      'climate,room=lab,site=plant-a temperature=21.5,humidity=40.1 1714564800000\n' + 'climate,room=lab,site=plant-a temperature=21.6,humidity=40 1714564805250\n',
    );
  });
});
