// The agent (built CLI) killed with SIGKILL again and again while a publisher sends numbered messages
// through a real mosquitto: every message must be stored exactly once. The payloads carry no time, so
// a copy stored twice would be a second point (its own receipt time), which is what users saw.
// The long run (100 kills, 20,000 messages per case) is in bench/mqtt.mjs (`npm run bench mqtt-crash`).
import { join } from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SqliteRing } from '../../src/store/ring.js';
import { sluice, sluiceSpawn, waitFor } from '../../test/helpers/cli.js';
import { startMosquitto, type Mosquitto } from '../../test/helpers/mosquitto.js';
import { tmpDir } from '../../test/helpers/tmp.js';

const KILLS = 12;
/** Per input: the publishing goes on through the whole kill loop, so kills land while messages flow. */
const MESSAGES_PER_S = 60;
const CASES = [
  { protocolVersion: 4, qos: 1 },
  { protocolVersion: 4, qos: 2 },
  { protocolVersion: 5, qos: 1 },
  { protocolVersion: 5, qos: 2 },
] as const;

let broker: Mosquitto;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  // Unbounded queues: while the agent is down the broker must keep every message for it. log_type all
  // shows the redeliveries (DUP) the kills caused.
  broker = await startMosquitto({ global: ['max_queued_messages 0'], verbose: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await broker?.stop();
});

/** A fixed-seed generator: the kill moments vary with the machine's timing, not from run to run. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

function startAgent(config: string, dataDir: string) {
  const child = sluiceSpawn(['run', '-c', config, '--data-dir', dataDir], { env: { SLUICE_LOG_LEVEL: 'info' } });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, exited, output: () => output };
}

/** Publishes numbered messages at about `perS` a second until `stop()`; resolves with how many. */
function publishNumbered(client: MqttClient, topic: string, qos: 1 | 2, perS: number): { stop: () => void; done: Promise<number> } {
  let stopped = false;
  const done = (async () => {
    const startMs = Date.now();
    const inflight = new Set<Promise<unknown>>();
    let n = 0;
    for (; !stopped; n++) {
      const dueMs = startMs + (n * 1000) / perS;
      if (dueMs > Date.now()) await new Promise((r) => setTimeout(r, dueMs - Date.now()));
      const p: Promise<unknown> = client.publishAsync(topic, JSON.stringify({ n }), { qos }).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= 50) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    return n;
  })();
  return { stop: () => (stopped = true), done };
}

/** Distinct message numbers stored per measurement now (the agent may be writing): cheaper to poll than a CLI run. */
function storedNumbers(dataDir: string): Map<string, Set<number>> {
  const out = new Map<string, Set<number>>();
  if (!existsSync(join(dataDir, 'sluice.db'))) return out;
  const ring = SqliteRing.open({ dataDir, readonly: true, maxBytes: 64 << 20, whenFull: 'drop_oldest', commitIntervalMs: 1000 });
  try {
    for (const g of ring.scan({})) {
      const set = out.get(g.measurement) ?? new Set<number>();
      out.set(g.measurement, set);
      for (const col of g.group.columns) if (col.name === 'n') for (const v of col.values) set.add(Number(v));
    }
    return out;
  } finally {
    ring.close();
  }
}

/** How many rows the store holds per message number, read with `sluice export` like a user would. */
function rowsPerNumber(dataDir: string, measurement: string): Map<number, number> {
  const out = sluice(['export', '--data-dir', dataDir, '--measurement', measurement]);
  if (out.status !== 0) throw new Error(`sluice export failed: ${out.stderr}`);
  const counts = new Map<number, number>();
  for (const line of out.stdout.split('\n')) {
    const m = / n=(\d+)(?:,| )/.exec(line);
    if (m) counts.set(Number(m[1]), (counts.get(Number(m[1])) ?? 0) + 1);
  }
  return counts;
}

describe('the agent (built CLI) killed with SIGKILL while messages flow', () => {
  it(`${KILLS} SIGKILLs of an agent with MQTT 3.1.1 and 5 inputs at QoS 1 and 2: no message lost, none stored twice`, async () => {
    const dir = tmpDir();
    const dataDir = join(dir, 'data');
    const config = join(dir, 'sluice.yaml');
    const cases = CASES.map((c) => {
      const id = `c${c.protocolVersion}${c.qos}`;
      return { ...c, id, topic: `crash/${id}`, clientId: `sluice-gw-crash-${id}` };
    });
    writeFileSync(
      config,
      [
        'version: 1',
        'agent: { id: gw-crash, commit_interval: 200ms }',
        'buffer: { max_size: 64MiB, when_full: drop_oldest }',
        'inputs:',
        ...cases.flatMap((c) => [
          `  ${c.id}:`,
          '    type: mqtt',
          `    url: ${broker.url}`,
          `    topics: ["${c.topic}"]`,
          '    format: json',
          `    qos: ${c.qos}`,
          `    protocol_version: ${c.protocolVersion}`,
          `    measurement: ${c.id}`,
        ]),
        '',
      ].join('\n'),
    );
    const copiesSent = (clientId: string): number => broker.countLog(new RegExp(`Sending PUBLISH to ${clientId} \\(d1`));

    // The first run makes the broker sessions (and subscribes) before anything is published.
    let agent = startAgent(config, dataDir);
    for (const c of cases) await waitFor(() => broker.log().includes(`Sending SUBACK to ${c.clientId}`), 20_000, `the subscription of ${c.id}`);
    const publishers = [];
    for (const c of cases) {
      const client = await connectAsync(broker.url, { clientId: `pub-${c.id}-${process.pid}`, protocolVersion: c.protocolVersion, reconnectPeriod: 0 });
      const publisher = publishNumbered(client, c.topic, c.qos, MESSAGES_PER_S);
      publishers.push(publisher);
      cleanups.push(() => {
        publisher.stop();
        return client.endAsync(true);
      });
    }
    const next = random(7);
    for (let kill = 0; kill < KILLS; kill++) {
      if (kill > 0) agent = startAgent(config, dataDir);
      const connects = (): number => agent.output().split('"msg":"connected to the MQTT broker"').length - 1;
      await waitFor(() => connects() >= cases.length, 20_000, `the agent's connections (run ${kill}): ${agent.output()}`);
      // After the connections: first the backlog of the time it was down, then the live stream.
      await new Promise((r) => setTimeout(r, 100 + next() * 600));
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
    for (const p of publishers) p.stop();
    const published = await Promise.all(publishers.map((p) => p.done));
    agent = startAgent(config, dataDir);
    let stored = new Map<string, Set<number>>();
    await waitFor(() => {
      stored = storedNumbers(dataDir);
      return cases.every((c, i) => (stored.get(c.id)?.size ?? 0) >= published[i]);
    }, 60_000, 'every published message in the store').catch((err: Error) => {
      throw new Error(`${err.message}: published ${published.join(', ')}, stored ${cases.map((c) => stored.get(c.id)?.size ?? 0).join(', ')}`);
    });
    agent.child.kill('SIGTERM');
    await agent.exited;

    const outcome = cases.map((c, i) => {
      const counts = rowsPerNumber(dataDir, c.id);
      return {
        case: `MQTT ${c.protocolVersion === 4 ? '3.1.1' : '5'} QoS ${c.qos}`,
        lost: Array.from({ length: published[i] }, (_, n) => n).filter((n) => !counts.has(n)),
        twice: [...counts].filter(([, k]) => k > 1).map(([n]) => n),
      };
    });
    expect(outcome).toEqual(outcome.map((o) => ({ case: o.case, lost: [], twice: [] })));
    // The kills did catch messages in flight: the broker sent copies (DUP) to every input.
    for (const c of cases) expect(copiesSent(c.clientId), c.id).toBeGreaterThan(0);
  }, 170_000);
});
