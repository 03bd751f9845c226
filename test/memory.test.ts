// Bounded memory, as a user starts the agent (the built CLI, no NODE_OPTIONS): `sluice run` runs the
// agent with a heap limit from agent.memory_limit (it starts itself again with it, src/cli/limits.ts),
// and a broker backlog far larger than the intake budget (a sixteenth of the limit) is drained by holding intake back and resuming,
// with every message stored once. Not timed: the figures (RSS, messages/s) are in bench/.
import { connectAsync } from 'mqtt';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sluice, sluiceSpawn } from './helpers/cli.js';
import { freePort } from './helpers/http.js';
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { childrenOf } from './helpers/proc.js';
import { tmpDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
const MESSAGES = 3000;
const LINES_PER_MESSAGE = 20;

let broker: Mosquitto;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  // Unbounded queue and in-flight window: for MQTT 3.1.1 the broker then sends the whole backlog at
  // once, so only the agent's own budget can bound what it holds.
  broker = await startMosquitto({ global: ['max_queued_messages 0', 'max_inflight_messages 0'], verbose: true });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await broker?.stop();
});

interface Status {
  memory: { limit_bytes: number; heap_limit_bytes: number; intake_limit_bytes: number };
  inputs: Record<string, { points: number; counters: Record<string, number> }>;
}

function startAgent(config: string, dataDir: string, env: NodeJS.ProcessEnv = {}) {
  const child = sluiceSpawn(['run', '-c', config, '--data-dir', dataDir], { env });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, exited, output: () => output };
}

async function poll<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('bounded memory (built CLI, Node defaults)', () => {
  it('`sluice run` under node executes itself with its limits: one process, the pid it was started as', async () => {
    // The addon npm install compiles for this Node (build/addon.mjs); CI has a C compiler and Node's headers.
    const addon = fileURLToPath(new URL('../build/out/node-addon/pages.node', import.meta.url));
    if (!existsSync(addon)) throw new Error(`${addon} is missing: npm ci builds it (needs cc and Node's headers beside node)`);
    const dir = tmpDir();
    const port = await freePort();
    const config = join(dir, 'sluice.yaml');
    writeFileSync(config, `version: 1\nagent: { id: one, memory_limit: 80MiB }\ninputs: { sim: { type: simulator, series: 2, interval: 100ms } }\nhttp: { listen: "127.0.0.1:${port}" }\n`);
    // Debug level: the releases of the start-up pages (the same addon) are logged there.
    const agent = startAgent(config, join(dir, 'data'), { SLUICE_LOG_LEVEL: 'debug' });
    const st = await poll(
      () => fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.json() as Promise<Status & { points: number }>).then((s) => (s.points > 0 ? s : undefined)),
      30_000,
      () => `points stored (output: ${agent.output()})`,
    );
    expect(st.memory.heap_limit_bytes).toBeGreaterThanOrEqual(80 * MiB);
    expect(st.memory.heap_limit_bytes).toBeLessThan(96 * MiB);
    expect(childrenOf(agent.child.pid!)).toEqual([]);
    // Ours first; a user's own NODE_OPTIONS (the test runner's, if any) after them.
    const nodeOptions = readFileSync(`/proc/${agent.child.pid}/environ`, 'utf8').split('\0').find((v) => v.startsWith('NODE_OPTIONS='));
    expect(nodeOptions?.startsWith('NODE_OPTIONS=--max-old-space-size=80 --max-semi-space-size=1')).toBe(true);
    // Node's start-up pages went before and after the inputs started, and node's file-backed memory fell.
    const releases = agent
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"start-up pages of the executable released"'))
      .map((l) => JSON.parse(l) as { file_mb_before: number; file_mb_after: number });
    expect(releases.length).toBeGreaterThanOrEqual(2);
    expect(releases[0].file_mb_after).toBeLessThan(releases[0].file_mb_before);
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    // The log of the process that replaced the one started (its stdout survived the execve).
    expect(agent.output()).toContain('"msg":"sluice stopped"');
  });

  it('drains a backlog many times its intake budget: holds back, resumes, stores every message once', async () => {
    const dir = tmpDir();
    const dataDir = join(dir, 'data');
    const config = join(dir, 'sluice.yaml');
    const port = await freePort();
    const inputs = [
      { id: 'v4', protocolVersion: 4 },
      { id: 'v5', protocolVersion: 5 },
    ];
    writeFileSync(
      config,
      [
        'version: 1',
        // A long commit interval: the budget, not the timer, must be what makes intake wait and commit.
        'agent: { id: mem, memory_limit: 64MiB, commit_interval: 10s }',
        'buffer: { max_size: 256MiB, when_full: drop_newest }',
        `http: { listen: "127.0.0.1:${port}" }`,
        'inputs:',
        ...inputs.flatMap((i) => [
          `  ${i.id}:`,
          '    type: mqtt',
          `    url: ${broker.url}`,
          `    topics: ["backlog/${i.id}/#"]`,
          '    format: influx',
          '    influx: { precision: ms }',
          '    qos: 1',
          `    protocol_version: ${i.protocolVersion}`,
          '    max_inflight: 65535',
        ]),
        '',
      ].join('\n'),
    );
    const status = () => fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.json() as Promise<Status>);

    // The first run makes the persistent sessions; the backlog is published while the agent is stopped.
    let agent = startAgent(config, dataDir);
    for (const i of inputs) await broker.waitForLog(new RegExp(`Sending SUBACK to sluice-mem-${i.id}`), 1, 20_000);
    const first = await status();
    expect(first.memory).toMatchObject({ limit_bytes: 64 * MiB, intake_limit_bytes: 4 * MiB });
    // V8's heap limit: the old generation of 64 MB plus the young generation, not Node's default (GBs).
    expect(first.memory.heap_limit_bytes).toBeGreaterThanOrEqual(64 * MiB);
    expect(first.memory.heap_limit_bytes).toBeLessThan(80 * MiB);
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);

    const baseMs = Date.UTC(2026, 0, 1);
    for (const i of inputs) {
      const pub = await connectAsync(broker.url, { clientId: `pub-${i.id}-${process.pid}`, protocolVersion: 5, reconnectPeriod: 0 });
      const pending: Promise<unknown>[] = [];
      for (let n = 0; n < MESSAGES; n++) {
        const lines = Array.from({ length: LINES_PER_MESSAGE }, (_, l) => `m_${i.id},line=${l} n=${n}i,value=${(n % 97) + l / 10} ${baseMs + n}`);
        pending.push(pub.publishAsync(`backlog/${i.id}/m`, lines.join('\n'), { qos: 1 }));
        if (pending.length >= 200) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      await pub.endAsync();
    }

    agent = startAgent(config, dataDir);
    const drained = await poll(
      async () => {
        const s = await status();
        return inputs.every((i) => s.inputs[i.id].counters.messages_acked >= MESSAGES) ? s : undefined;
      },
      120_000,
      () => `every message acknowledged: ${agent.output().slice(-2000)}`,
    );
    const limit = drained.memory.intake_limit_bytes;
    const largestMessage = 64 * 1024; // the most one message beyond the budget can add: the check is after each message
    for (const i of inputs) {
      const c = drained.inputs[i.id].counters;
      expect(c.intake_holdbacks, `${i.id} held intake back`).toBeGreaterThan(0);
      expect(c.intake_held_ms, i.id).toBeGreaterThan(0);
      expect(c.inflight_bytes_max, `${i.id} held at most the budget`).toBeLessThanOrEqual(limit + largestMessage);
      expect(c.messages_refused, i.id).toBe(0);
    }
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);

    // Every point once: MESSAGES × LINES_PER_MESSAGE distinct (measurement, line, n) per input, no copies.
    const out = sluice(['export', '--data-dir', dataDir, '--precision', 'ms']);
    expect(out.status, out.stderr).toBe(0);
    const lines = out.stdout.split('\n').filter((l) => l.startsWith('m_'));
    const keys = new Set(lines.map((l) => /^(m_v\d),line=(\d+) .*?\bn=(\d+)i/.exec(l)?.slice(1).join(':')));
    expect(lines.length).toBe(inputs.length * MESSAGES * LINES_PER_MESSAGE);
    expect(keys.size).toBe(lines.length);
    expect(keys.has(undefined)).toBe(false);
  }, 200_000);

  it('acknowledges a flood of small messages as fast as it commits them, within its heap', async () => {
    // 150,000 one-point JSON messages published while the agent drains them: each commit releases
    // thousands of PUBACKs at once. Sent one by one they queued in the socket in pieces (IOV_MAX per
    // write) faster than they left, and the agent ran out of heap (SIGABRT) half way.
    const count = 150_000;
    const dir = tmpDir();
    const dataDir = join(dir, 'data');
    const config = join(dir, 'sluice.yaml');
    const port = await freePort();
    writeFileSync(
      config,
      [
        'version: 1',
        'agent: { id: memjson, memory_limit: 64MiB }',
        'buffer: { max_size: 256MiB, when_full: drop_newest }',
        `http: { listen: "127.0.0.1:${port}" }`,
        'inputs:',
        '  small:',
        '    type: mqtt',
        `    url: ${broker.url}`,
        '    topics: ["small/#"]',
        '    format: json',
        '    json: { time_key: t, time_precision: ms }',
        '    qos: 1',
        '    protocol_version: 4',
        '',
      ].join('\n'),
    );
    const status = () => fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.json() as Promise<Status>);
    const agent = startAgent(config, dataDir);
    await broker.waitForLog(/Sending SUBACK to sluice-memjson-small/, 1, 20_000);
    // Four publishers at once, as fast as the broker takes them, while the agent drains.
    const baseMs = Date.UTC(2026, 0, 1);
    const publishers = 4;
    await Promise.all(
      Array.from({ length: publishers }, async (_, p) => {
        const pub = await connectAsync(broker.url, { clientId: `pub-small-${p}-${process.pid}`, reconnectPeriod: 0 });
        const pending: Promise<unknown>[] = [];
        for (let n = p; n < count; n += publishers) {
          pending.push(pub.publishAsync('small/s', JSON.stringify({ t: baseMs + n, n }), { qos: 1 }));
          if (pending.length >= 500) await Promise.all(pending.splice(0));
        }
        await Promise.all(pending);
        await pub.endAsync();
      }),
    );
    const drained = await poll(
      async () => {
        if (agent.child.exitCode !== null || agent.child.signalCode !== null) return 'exited' as const;
        const s = await status();
        return s.inputs.small.counters.messages_acked >= count ? s : undefined;
      },
      120_000,
      () => `every message acknowledged (agent ${agent.child.exitCode ?? agent.child.signalCode ?? 'running'}): ${agent.output().slice(-1500)}`,
    );
    if (drained === 'exited') throw new Error(`the agent exited (${agent.child.exitCode ?? agent.child.signalCode}): ${agent.output().slice(-1500)}`);
    expect(drained.inputs.small.counters.messages_refused).toBe(0);
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);

    const out = sluice(['export', '--data-dir', dataDir, '--precision', 'ms']);
    expect(out.status, out.stderr).toBe(0);
    const numbers = out.stdout.split('\n').flatMap((l) => /\bn=(\d+)/.exec(l)?.[1] ?? []);
    expect(numbers.length).toBe(count);
    expect(new Set(numbers).size).toBe(count);
  }, 200_000);
});
