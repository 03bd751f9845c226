// Every input driver with its real peer, for the input contract: one rig per driver type. A driver in
// INPUT_DRIVERS without a rig here fails test/contracts/coverage.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { INPUT_DRIVERS } from '../../drivers/index.js';
import { startPymodbus, type PymodbusServer } from '../../drivers/modbus/testing/peers.js';
import { startOpcuaServer, type OpcuaServer } from '../../drivers/opcua/testing/peer.js';
import { freePort } from '../helpers/http.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startPtyPair, type PtyPair } from '../helpers/pty.js';
import { inputConfig } from './configs.js';
import type { ContractInputDriver, InputRig } from './input-contract.js';

function driver(type: string): ContractInputDriver {
  const d = INPUT_DRIVERS.find((x) => x.type === type);
  if (!d) throw new Error(`no input driver of type ${type} in INPUT_DRIVERS`);
  return d;
}

function simulatorRig(): InputRig {
  return {
    name: 'simulator',
    driver: driver('simulator'),
    setup: () => Promise.resolve(),
    teardown: () => Promise.resolve(),
    config: () => inputConfig('simulator', ['series: 2', 'interval: 50ms']),
    feed: () => undefined,
  };
}

function mqttRig(): InputRig {
  let broker: Mosquitto | undefined;
  let publisher: MqttClient | undefined;
  let deadPort = 0;
  let n = 0;
  return {
    name: 'mqtt against mosquitto',
    driver: driver('mqtt'),
    async setup() {
      broker = await startMosquitto();
      deadPort = await freePort();
      // keepalive 0: no ping timer of its own (mqtt.js makes a new one per packet), so every timer
      // seen is the input's.
      const client = connect(broker.url, { clientId: 'contract-publisher', reconnectPeriod: 0, keepalive: 0 });
      publisher = client;
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
    },
    async teardown() {
      const client = publisher;
      if (client) await new Promise<void>((resolve) => client.end(true, () => resolve()));
      await broker?.stop();
    },
    config: () => inputConfig('mqtt', [`url: ${broker!.url}`, 'topics: ["contract/+"]', 'format: value', 'qos: 1', 'client_id: contract-input']),
    deadConfig: () => inputConfig('mqtt', [`url: mqtt://127.0.0.1:${deadPort}`, 'topics: ["contract/+"]', 'format: value', 'qos: 1', 'client_id: contract-dead']),
    async feed() {
      const client = publisher!;
      await new Promise<void>((resolve, reject) => client.publish(`contract/t${n % 3}`, String(20 + (n++ % 10) / 10), { qos: 1 }, (err) => (err ? reject(err) : resolve())));
    },
  };
}

function modbusRig(): InputRig {
  let server: PymodbusServer | undefined;
  let deadPort = 0;
  let n = 0;
  const lines = (port: number) => [
    `url: tcp://127.0.0.1:${port}`,
    'interval: 100ms',
    'timeout: 500ms',
    'devices:',
    '  - unit_id: 1',
    '    registers:',
    '      - { name: level, table: holding, address: 0, type: uint16 }',
    '      - { name: temp, table: holding, address: 1, type: int16, scale: 0.1 }',
  ];
  return {
    name: 'modbus TCP against pymodbus',
    driver: driver('modbus'),
    async setup() {
      server = await startPymodbus({ tcp: { host: '127.0.0.1', port: 0 }, units: { '1': { hr: { '0': [100, 215] } } } });
      deadPort = await freePort();
    },
    async teardown() {
      await server?.stop();
    },
    config: () => inputConfig('modbus', lines(server!.port)),
    deadConfig: () => inputConfig('modbus', lines(deadPort)),
    // The device's values change as a real one's would; polling alone produces points.
    feed: () => server!.set(1, 'hr', 0, [100 + (n++ % 50)]),
  };
}

function serialRig(): InputRig {
  let dir: string | undefined;
  let pair: PtyPair | undefined;
  let n = 0;
  return {
    name: 'serial on a socat pty pair',
    driver: driver('serial'),
    async setup() {
      dir = mkdtempSync(join(tmpdir(), 'sluice-serial-contract-'));
      pair = await startPtyPair(dir);
      // Opens the test's end now, so its descriptor is there before any check looks.
      pair.write('');
    },
    async teardown() {
      await pair?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    config: () => inputConfig('serial', [`port: ${pair!.dev}`, 'format: influx']),
    deadConfig: () => inputConfig('serial', [`port: ${join(dir!, 'no-such-tty')}`, 'format: influx']),
    feed: () => pair!.write(`env,probe=p${n % 2} temp=${20 + (n++ % 10) / 10}\n`),
  };
}

function opcuaRig(): InputRig {
  let server: OpcuaServer | undefined;
  let dir: string | undefined;
  let deadPort = 0;
  let n = 0;
  const lines = (url: string) => [`url: ${url}`, 'publishing_interval: 100ms', 'nodes:', '  - { name: d, node_id: "ns=1;s=Test.Double", sampling_interval: 50ms }'];
  return {
    name: 'opcua against the node-opcua server',
    driver: driver('opcua'),
    async setup() {
      dir = mkdtempSync(join(tmpdir(), 'sluice-opcua-contract-'));
      server = await startOpcuaServer({ pki: dir });
      deadPort = await freePort();
    },
    async teardown() {
      await server?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    config: () => inputConfig('opcua', lines(server!.url)),
    deadConfig: () => inputConfig('opcua', lines(`opc.tcp://127.0.0.1:${deadPort}/sluice`)),
    feed: () => server!.set('Double', 20 + (n++ % 10) / 10),
  };
}

/** One rig per input driver type. */
export const INPUT_RIGS: Record<string, () => InputRig> = {
  simulator: simulatorRig,
  mqtt: mqttRig,
  modbus: modbusRig,
  serial: serialRig,
  opcua: opcuaRig,
};
