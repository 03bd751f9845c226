// The contract suites catch a broken rule: each is run here on an implementation broken on purpose in
// one way, and the check for that rule must fail and name it (a suite that passes whatever the code
// does would prove nothing). The correct implementations pass the same checks in ring.test.ts,
// inputs.test.ts and outputs.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Output } from '../../src/core/component.js';
import { SqliteRing } from '../../src/store/ring.js';
import { simulatorDriver } from '../../drivers/simulator/index.js';
import { inputConfig } from './configs.js';
import { inputContract, type InputRig } from './input-contract.js';
import { outputContract, type OutputRig } from './output-contract.js';
import { ringContract, type OpenRing } from './ring-contract.js';
import { serverSideOf } from './resources.js';
import { openSqliteRing } from './sqlite-ring.js';
import { ContractViolation, type ContractCheck } from './violation.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function find(checks: ContractCheck[], rulePrefix: string): ContractCheck {
  const c = checks.find((x) => x.rule.startsWith(rulePrefix));
  if (!c) throw new Error(`no check whose rule starts with ${rulePrefix}`);
  return c;
}

async function violation(check: ContractCheck): Promise<ContractViolation> {
  const err = await check.run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `«${check.rule}» passed on a broken implementation`).toBeInstanceOf(ContractViolation);
  return err as ContractViolation;
}

describe('the ring contract catches a ring that breaks a promise', () => {
  it('a ring that forgets everything on reopen fails «durable»', async () => {
    // Opens each time in a new directory of its own: every reopen finds an empty store.
    const forgetful: OpenRing = (_dataDir, settings) => {
      const dir = mkdtempSync(join(tmpdir(), 'sluice-forgetful-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      return openSqliteRing(dir, settings);
    };
    const err = await violation(find(ringContract('forgetful ring', forgetful), 'durable'));
    expect(err.rule).toMatch(/^durable: /);
    expect(err.message).toMatch(/forgetful ring breaks «durable.*after reopen/);
  });

  it('a ring whose settle only releases fails «a settled lease is never delivered again»', async () => {
    const careless: OpenRing = (dataDir, settings) => {
      const ring = openSqliteRing(dataDir, settings);
      return new Proxy(ring, {
        get(target, key) {
          if (key === 'settle') return (lease: Parameters<SqliteRing['settle']>[0]) => target.release(lease);
          const v = Reflect.get(target, key, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    };
    const err = await violation(find(ringContract('careless ring', careless), 'cursors: a settled lease'));
    expect(err.message).toMatch(/careless ring breaks «cursors: a settled lease is never delivered again/);
  });
});

describe('the input contract catches an input that breaks the lifecycle', () => {
  it('an input that keeps a timer after stop fails «stop resolves only when every timer … is released», naming the timer', async () => {
    const leftovers: NodeJS.Timeout[] = [];
    cleanups.push(() => leftovers.forEach((t) => clearInterval(t)));
    const rig: InputRig = {
      name: 'leaky simulator',
      driver: {
        type: 'simulator',
        async create(id, config, ctx) {
          const input = await simulatorDriver.create(id, config, ctx);
          const stop = input.stop.bind(input);
          // The deliberate fault: a housekeeping timer that stop() forgets.
          const keepAlive = () => undefined;
          return {
            start: async () => {
              await input.start();
              leftovers.push(setInterval(keepAlive, 60_000));
            },
            stop,
            stats: () => input.stats(),
          };
        },
      },
      setup: () => Promise.resolve(),
      teardown: () => Promise.resolve(),
      config: () => inputConfig('simulator', ['series: 1', 'interval: 50ms']),
      feed: () => undefined,
    };
    const err = await violation(find(inputContract(rig), 'stop resolves only when'));
    expect(err.message).toMatch(/leaky simulator breaks «stop resolves only when every timer, socket and file the input opened is released»: .*timer of 60000 ms made at .*suite\.test\.ts/);
  });
});

describe('the output contract catches an output that breaks the lifecycle', () => {
  /** A minimal output that opens one socket on connect; `leak` makes close() forget it. */
  async function socketRig(leak: boolean): Promise<OutputRig> {
    const peers = new Set<Socket>();
    const server: Server = createServer((s) => {
      peers.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    const opened: Socket[] = [];
    cleanups.push(async () => {
      for (const s of [...opened, ...peers]) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const make = (): Output => {
      let socket: Socket | undefined;
      return {
        connect: () =>
          new Promise<void>((resolve, reject) => {
            const s = new Socket();
            opened.push(s);
            socket = s;
            s.once('error', reject);
            s.connect(port, '127.0.0.1', () => resolve());
          }),
        write: () => Promise.resolve({ rejectedPoints: 0, bytes: 0 }),
        close: async () => {
          const s = socket;
          socket = undefined;
          if (leak || !s) return;
          await new Promise<void>((resolve) => {
            s.once('close', () => resolve());
            s.destroy();
          });
        },
      };
    };
    return {
      name: leak ? 'leaky output' : 'tidy output',
      driver: { type: 'socket', create: () => Promise.resolve(make()) },
      setup: () => Promise.resolve(),
      teardown: () => Promise.resolve(),
      target: () => Promise.resolve({ config: {}, readBack: () => Promise.resolve([]) }),
      canonical: (v) => String(v),
      deadConfig: () => ({}),
      refusals: () => Promise.resolve([]),
      stall: () => Promise.reject(new Error('not used here')),
      ignore: serverSideOf(port),
    };
  }

  it('an output whose close leaks its socket fails «close releases every socket …», naming the socket', async () => {
    const err = await violation(find(outputContract(await socketRig(true)), 'close releases'));
    expect(err.message).toMatch(/leaky output breaks «close releases every socket, pool and timer the output opened»: close\(\) resolved while it still holds handle Socket 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+/);
  });

  it('the same output with a close that destroys its socket passes that check', async () => {
    await find(outputContract(await socketRig(false)), 'close releases').run();
  });
});
