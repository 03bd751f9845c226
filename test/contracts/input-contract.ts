// The lifecycle every input promises (src/core/component.ts), stated once: `inputContract(rig)` returns
// named checks that any input driver must pass against its real peer. test/contracts/inputs.test.ts runs
// them for every driver in INPUT_DRIVERS; suite.test.ts runs them on an input broken on purpose.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Input, InputContext, Logger } from '../../src/core/component.js';
import type { Point } from '../../src/core/point.js';
import { leaked, snapshot } from './resources.js';
import { assert, checked, type ContractCheck } from './violation.js';

/**
 * What the contract uses of a descriptor (src/core/driver.ts InputDriver): its type and its factory.
 * The config is `never` here because each driver's is its own; rigs hand over decoded configs.
 */
export interface ContractInputDriver {
  readonly type: string;
  create(id: string, config: never, ctx: InputContext): Promise<Input>;
}

/** One driver against one peer, as the contract needs it. */
export interface InputRig {
  /** What runs, e.g. "mqtt against mosquitto". */
  readonly name: string;
  /** The descriptor the agent uses (one of INPUT_DRIVERS, or a broken one in the suite's own test). */
  readonly driver: ContractInputDriver;
  /** Starts the peer; everything it holds is there before any check takes its first look. */
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A decoded config for an input whose peer is up. */
  config(): Record<string, unknown>;
  /** A decoded config for an input whose peer is down or missing (none for a driver with no peer). */
  deadConfig?(): Record<string, unknown>;
  /** Makes the peer produce something that becomes points (called again until points arrive). */
  feed(): Promise<void> | void;
  /** Handles held by a peer living in this process, not by the input. */
  ignore?: (handle: unknown) => boolean;
}

/** Long enough for every driver's first poll, connect or read on a loaded 2-core box; a liveness bound, not a speed target. */
const POINTS_WITHIN_MS = 15_000;
/** How long start() may take with the peer down: it must not wait for the peer. */
const START_WITHIN_MS = 5_000;
/** How long the peer keeps producing after stop, to catch late writes. */
const AFTER_STOP_MS = 600;

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet };

interface Recorded {
  ctx: InputContext;
  points: Point[];
  writesAfterStop: number;
  stopped: boolean;
}

function recordingContext(dataDir: string): Recorded {
  const rec: Recorded = {
    points: [],
    writesAfterStop: 0,
    stopped: false,
    ctx: {
      id: 'under_test',
      agentId: 'contract',
      dataDir,
      log: quiet,
      sink: {
        write(points) {
          if (rec.stopped) rec.writesAfterStop++;
          rec.points.push(...points);
          return Promise.resolve();
        },
      },
    },
  };
  return rec;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not resolve within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function untilPoints(rig: InputRig, rec: Recorded): Promise<void> {
  const deadline = Date.now() + POINTS_WITHIN_MS;
  while (rec.points.length === 0) {
    if (Date.now() > deadline) throw new Error(`no point reached the sink within ${POINTS_WITHIN_MS} ms of start`);
    await rig.feed();
    await sleep(50);
  }
}

export function inputContract(rig: InputRig): ContractCheck[] {
  /** A fresh data dir and recording sink per check; the input is stopped whatever happens. */
  const withInput = (body: (make: (config: Record<string, unknown>) => Promise<Input>, rec: Recorded) => Promise<void>) => async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-input-contract-'));
    const rec = recordingContext(dir);
    const made: Input[] = [];
    try {
      await body(async (config) => {
        const input = await rig.driver.create('under_test', config as never, rec.ctx);
        made.push(input);
        return input;
      }, rec);
    } finally {
      if (!rec.stopped) for (const i of made) await i.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const stop = async (input: Input, rec: Recorded) => {
    await within(input.stop.call(input), 15_000, 'stop()');
    rec.stopped = true;
  };
  const check = (rule: string, body: Parameters<typeof withInput>[0]) => checked(rig.name, rule, withInput(body));

  return [
    check('create does no I/O: nothing is opened before start', async (make) => {
      // The implementation's module is loaded once beforehand: loading it is not the factory's doing.
      await make(rig.config());
      const before = snapshot();
      await make(rig.config());
      const held = leaked(before, rig.ignore);
      assert(held.length === 0, `create() opened ${held.join(', ')}`);
    }),

    check('start resolves while the peer is down, and stop still releases everything', async (make, rec) => {
      const config = rig.deadConfig?.() ?? rig.config();
      await make(config);
      const before = snapshot();
      const input = await make(config);
      await within(input.start(), START_WITHIN_MS, 'start() with the peer down');
      // Let it fail and schedule its retry.
      await sleep(300);
      await stop(input, rec);
      const held = leaked(before, rig.ignore);
      assert(held.length === 0, `after stop() it still holds ${held.join(', ')}`);
    }),

    check('points reach the sink after start', async (make, rec) => {
      const input = await make(rig.config());
      await input.start();
      await untilPoints(rig, rec);
      await stop(input, rec);
      for (const p of rec.points) assert(typeof p.measurement === 'string' && Object.keys(p.fields).length > 0 && Number.isFinite(p.timeUs), `a point without measurement, fields or time: ${JSON.stringify(p, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
    }),

    check('stop resolves only when every timer, socket and file the input opened is released', async (make, rec) => {
      await make(rig.config());
      const before = snapshot();
      const input = await make(rig.config());
      await input.start();
      await untilPoints(rig, rec);
      await stop(input, rec);
      const held = leaked(before, rig.ignore);
      assert(held.length === 0, `stop() resolved while it still holds ${held.join(', ')}`);
    }),

    check('after stop resolves the sink is never written again', async (make, rec) => {
      const input = await make(rig.config());
      await input.start();
      await untilPoints(rig, rec);
      await stop(input, rec);
      const deadline = Date.now() + AFTER_STOP_MS;
      while (Date.now() < deadline) {
        await rig.feed();
        await sleep(50);
      }
      assert(rec.writesAfterStop === 0, `${rec.writesAfterStop} sink writes after stop() resolved`);
    }),

    check('stats() counts every point handed to the sink', async (make, rec) => {
      const input = await make(rig.config());
      await input.start();
      await untilPoints(rig, rec);
      await stop(input, rec);
      const stats = input.stats();
      assert(stats.points === rec.points.length, `stats().points is ${stats.points}, the sink received ${rec.points.length}`);
      assert(stats.lastPointMs !== null, 'stats().lastPointMs is null after points were produced');
    }),
  ];
}
