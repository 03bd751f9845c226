// The modbus input as a user runs it: the sample config is valid and is what the README shows, and the
// built agent (`sluice run`) polls a real pymodbus server into the ring with the right field types.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { formatConfigError, loadConfig } from '../../src/config/index.js';
import type { ModbusInputConfig } from '../../drivers/modbus/schema.js';
import { sluice, sluiceSpawn, waitFor } from '../../test/helpers/cli.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { startPymodbus, stopPeers, words, type PymodbusServer } from './testing/peers.js';

afterAll(stopPeers);

const here = (name: string): string => readFileSync(new URL(name, import.meta.url), 'utf8');

describe('modbus config', () => {
  it('sample.yaml is a complete, valid config, and the README embeds it verbatim', () => {
    const text = here('sample.yaml');
    const r = loadConfig({ text, file: 'sample.yaml', env: {}, hostname: 'h' });
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    const boiler = r.config.inputs.boiler as ModbusInputConfig;
    const meters = r.config.inputs.meters as ModbusInputConfig;
    expect(boiler).toMatchObject({ interval: 5000, timeout: 1000, measurement: 'boiler' });
    expect(meters).toMatchObject({ schedule: '0 * * * * *', baud_rate: 19200, parity: 'even', timeout: 500, measurement: 'meters' });
    expect(r.config.inputs.pumps).toMatchObject({ url: 'rtu+tcp://192.168.1.30:4001', baud_rate: 9600, parity: 'even', data_bits: 8, stop_bits: 1, measurement: 'pumps' });
    expect(here('README.md')).toContain('```yaml\n' + text + '```');
    expect(sluice(['check', '-c', new URL('sample.yaml', import.meta.url).pathname]).status).toBe(0);
  });

  it('scale and offset on a bool are refused where they are written', () => {
    const text = ['version: 1', 'inputs:', '  m:', '    type: modbus', '    url: tcp://10.0.0.1', '    devices:', '      - unit_id: 1', '        registers:'];
    const r = loadConfig({ text: [...text, '          - { name: on, table: coil, address: 0, scale: 10 }', '          - { name: run, table: holding, address: 1, type: bool, offset: 1 }', ''].join('\n'), file: 't.yaml', env: {}, hostname: 'h' });
    expect(r.ok ? [] : r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`)).toEqual([
      '9:57 inputs.m.devices[0].registers[0].scale: scale and offset do not apply to a bool',
      '10:74 inputs.m.devices[0].registers[1].offset: scale and offset do not apply to a bool',
    ]);
  });
});

describe('sluice run with a modbus input', () => {
  let server: PymodbusServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  // Modbus TCP, and RTU over TCP (pymodbus's RTU framer on its TCP server, as a serial converter).
  it.each([
    { scheme: 'tcp', framer: undefined },
    { scheme: 'rtu+tcp', framer: 'rtu' as const },
  ])('$scheme: stores one point per device per poll, typed, tagged with the device, and stops cleanly', async ({ scheme, framer }) => {
    server = await startPymodbus({
      tcp: { port: 0 },
      framer,
      units: {
        '1': { hr: { '0': [1234, 0xff85, ...words((b) => b.writeFloatBE(21.3), 4), ...words((b) => b.writeBigUInt64BE(2n ** 64n - 1n), 8)] }, co: { '0': [true] } },
        '2': { ir: { '0': [7] } },
      },
    });
    const dir = tmpDir('sluice-mb-');
    const cfg = join(dir, 'sluice.yaml');
    writeFileSync(
      cfg,
      [
        'version: 1',
        'agent: { id: gw, tags: { site: a } }',
        'http: { listen: "off" }',
        'inputs:',
        '  plant:',
        '    type: modbus',
        `    url: ${scheme}://127.0.0.1:${server.port}`,
        '    interval: 500ms',
        '    measurement: plc',
        '    devices:',
        '      - unit_id: 1',
        '        name: boiler',
        '        registers:',
        '          - { name: flow, table: holding, address: 0, scale: 0.1 }',
        '          - { name: delta, table: holding, address: 1, type: int16 }',
        '          - { name: temp, table: holding, address: 2, type: float32 }',
        '          - { name: total, table: holding, address: 4, type: uint64 }',
        '          - { name: pump, table: coil, address: 0 }',
        '      - unit_id: 2',
        '        registers: [{ name: level, table: input, address: 0 }]',
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
          const r = sluice(['query', '--data-dir', dir, '--measurement', 'plc', '--json']);
          return r.status === 0 && (JSON.parse(r.stdout) as unknown[]).length >= 12;
        },
        15_000,
        'two polls in the store',
      );
    } finally {
      agent.kill('SIGTERM');
    }
    expect(await exited, log).toBe(0);
    const lines = sluice(['export', '--data-dir', dir, '--measurement', 'plc', '--precision', 'ms']).stdout.trim().split('\n');
    const first = (device: string) => lines.find((l) => l.startsWith(`plc,device=${device},site=a `))!;
    // Polled at multiples of 500 ms: the time is the tick.
    expect(first('boiler')).toMatch(/^plc,device=boiler,site=a flow=123\.4,delta=-123i,temp=21\.3,total=18446744073709551615u,pump=true \d+[05]00$/);
    expect(first('2')).toMatch(/^plc,device=2,site=a level=7i \d+[05]00$/);
    // No warnings or errors, but for a read that outlasted the interval: a loaded machine can slow the
    // peer past 500 ms, and the agent saying it skipped a tick is then the right answer.
    const unexpected = log.split('\n').filter((l) => /"level":(40|50)/.test(l) && !/still being read at the next tick/.test(l));
    expect(unexpected).toEqual([]);
  });
});
