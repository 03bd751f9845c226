// The contract every output promises (src/core/component.ts), stated once: `outputContract(rig)` returns
// named checks that any output driver must pass against its upstream. test/contracts/outputs.test.ts
// runs them for every driver in OUTPUT_DRIVERS; suite.test.ts runs them on an output broken on purpose.
import { seriesKey } from '../../src/core/line-protocol.js';
import { OutputError, type Logger, type Output, type OutputBatch, type OutputContext, type OutputErrorCategory } from '../../src/core/component.js';
import { Unsigned, type FieldValue, type Point } from '../../src/core/point.js';
import { SeriesBuilder } from '../../src/store/builder.js';
import { leaked, snapshot } from './resources.js';
import { assert, checked, type ContractCheck } from './violation.js';

/** A place upstream (a database, bucket or table of its own) and how to read back what landed there. */
export interface OutputTarget {
  config: Record<string, unknown>;
  /** What the upstream stores, as `series time field=value` lines in the rig's canonical form, sorted. */
  readBack(): Promise<string[]>;
}

/** A write that hangs upstream until `end` (a lock held, an answer held back). */
export interface Stall {
  config: Record<string, unknown>;
  /** Call after connect(): from then on writes hang. */
  hang(): Promise<void>;
  end(): Promise<void>;
}

/** What the contract uses of a descriptor (src/core/driver.ts OutputDriver); `never`: each driver's config is its own. */
export interface ContractOutputDriver {
  readonly type: string;
  create(id: string, config: never, ctx: OutputContext): Promise<Output>;
}

export interface OutputRig {
  readonly name: string;
  /** The descriptor the agent uses (one of OUTPUT_DRIVERS, or a broken one in the suite's own test). */
  readonly driver: ContractOutputDriver;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A fresh, empty target. */
  target(): Promise<OutputTarget>;
  /** How the upstream keeps a value, as the text readBack() gives it (e.g. integers and unsigned alike). */
  canonical(value: FieldValue): string;
  /** A config whose upstream port has nobody listening. */
  deadConfig(): Record<string, unknown>;
  /** Configs the upstream refuses, and the category the driver documents for each. */
  refusals(): Promise<{ what: string; config: Record<string, unknown>; category: OutputErrorCategory }[]>;
  stall(): Promise<Stall>;
  /** Handles held by an upstream living in this process, not by the output. */
  ignore?: (handle: unknown) => boolean;
}

/** After an abort, a write must settle within this (a liveness bound on a loaded box, not a speed target). */
const GIVE_UP_WITHIN_MS = 3000;

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => quiet };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Two series, every field type (integers within 2^53, so every upstream's JSON keeps them exact). */
export function contractPoints(): Point[] {
  const out: Point[] = [];
  const t0 = 1_700_000_000_000_000;
  for (let i = 0; i < 60; i++) {
    for (const sensor of ['a', 'b']) {
      const fields: Record<string, FieldValue> = {
        temp: Math.round(Math.sin(i) * 1e6) / 1e3,
        count: BigInt(i * 1_000_003 - 5_000_000),
        raw: new Unsigned(BigInt(i * 7919)),
        on: i % 3 === 0,
        state: i % 4 === 0 ? 'warn "hot", high' : 'ok',
      };
      if (i % 5 === 0) delete fields.state;
      out.push({ measurement: 'contract', tags: { sensor, area: sensor === 'a' ? 'north' : 'south' }, fields, timeUs: t0 + i * 1_000_000 + (sensor === 'a' ? 0 : 17) });
    }
  }
  return out;
}

export function batchOf(points: readonly Point[]): OutputBatch {
  const bySeries = new Map<string, SeriesBuilder>();
  for (const p of points) {
    const key = seriesKey(p.measurement, p.tags);
    let b = bySeries.get(key);
    if (!b) bySeries.set(key, (b = new SeriesBuilder()));
    b.add(p.timeUs, p.fields);
  }
  return { parts: [...bySeries].map(([key, b]) => ({ seriesKey: key, group: b.build() })), points: points.length };
}

function expectedLines(rig: OutputRig, points: readonly Point[]): string[] {
  const out: string[] = [];
  for (const p of points) for (const [f, v] of Object.entries(p.fields)) out.push(`${seriesKey(p.measurement, p.tags)} ${p.timeUs} ${f}=${rig.canonical(v)}`);
  return out.sort();
}

function sameLines(got: string[], want: string[], what: string): void {
  if (got.length === want.length && got.every((l, i) => l === want[i])) return;
  const missing = want.filter((l) => !got.includes(l)).slice(0, 3);
  const extra = got.filter((l) => !want.includes(l)).slice(0, 3);
  throw new Error(`${what}: the upstream holds ${got.length} values, ${want.length} were written; missing e.g. ${JSON.stringify(missing)}, unexpected e.g. ${JSON.stringify(extra)}`);
}

/** The error a promise settles with, or undefined when it resolves; fails when it does not settle in time. */
async function settles(promise: Promise<unknown>, ms: number, what: string): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = promise.then(
    () => undefined,
    (err: unknown) => err ?? new Error('rejected with nothing'),
  );
  try {
    return await Promise.race([outcome, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} had not settled ${ms} ms later`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function describeError(err: unknown): string {
  return err instanceof OutputError ? `OutputError '${err.category}' ${JSON.stringify(err.details)}: ${err.message}` : String(err);
}

export function outputContract(rig: OutputRig): ContractCheck[] {
  const ctx = { id: 'under_test', log: quiet, agentId: 'contract' };
  /** Every output made in a check is closed at its end, whatever happens. */
  const withOutputs = (body: (make: (config: Record<string, unknown>) => Promise<Output>) => Promise<void>) => async () => {
    const made: Output[] = [];
    const closed = new Set<Output>();
    try {
      await body(async (config) => {
        const output = await rig.driver.create('under_test', config as never, ctx);
        made.push(output);
        const close = output.close.bind(output);
        output.close = () => {
          closed.add(output);
          return close();
        };
        return output;
      });
    } finally {
      for (const o of made) if (!closed.has(o)) await o.close().catch(() => undefined);
    }
  };
  const check = (rule: string, body: Parameters<typeof withOutputs>[0]) => checked(rig.name, rule, withOutputs(body));
  const live = () => new AbortController().signal;

  return [
    check('create does no I/O: nothing is opened before connect', async (make) => {
      const target = await rig.target();
      await make(target.config); // loads the implementation's module, which is not the factory's doing
      const before = snapshot();
      await make(target.config);
      const held = leaked(before, rig.ignore);
      assert(held.length === 0, `create() opened ${held.join(', ')}`);
    }),

    check('connect, then write: the upstream holds the batch exactly', async (make) => {
      const target = await rig.target();
      const output = await make(target.config);
      await output.connect(live());
      const points = contractPoints();
      const result = await output.write(batchOf(points), live());
      assert(result.rejectedPoints === 0, `${result.rejectedPoints} points rejected from a batch the upstream can store`);
      sameLines(await target.readBack(), expectedLines(rig, points), 'after write');
    }),

    check('encode() is what write sends: write(batch, signal, encode(batch)) stores exactly what write(batch, signal) stores', async (make) => {
      const points = contractPoints();
      const plain = await rig.target();
      const viaEncode = await rig.target();
      const a = await make(plain.config);
      const b = await make(viaEncode.config);
      await a.connect(live());
      await b.connect(live());
      await a.write(batchOf(points), live());
      const batch = batchOf(points);
      await b.write(batch, live(), b.encode ? b.encode(batch) : undefined);
      const [got, want] = [await viaEncode.readBack(), await plain.readBack()];
      sameLines(got, want, 'written with encode() compared with written without');
      sameLines(got, expectedLines(rig, points), 'written with encode()');
    }),

    check('an already-aborted signal makes write give up promptly with an error', async (make) => {
      const target = await rig.target();
      const output = await make(target.config);
      await output.connect(live());
      const err = await settles(output.write(batchOf(contractPoints()), AbortSignal.abort()), GIVE_UP_WITHIN_MS, 'write() with an aborted signal');
      assert(err !== undefined, 'write() with an already-aborted signal resolved (it wrote the batch instead of giving up)');
    }),

    check('a signal aborted mid-request makes write give up promptly with an error', async (make) => {
      const stall = await rig.stall();
      try {
        const output = await make(stall.config);
        await output.connect(live());
        await stall.hang();
        const controller = new AbortController();
        const writing = output.write(batchOf(contractPoints()), controller.signal);
        await sleep(300);
        controller.abort();
        const err = await settles(writing, GIVE_UP_WITHIN_MS, 'write() after its signal aborted mid-request');
        assert(err !== undefined, 'write() resolved although its signal aborted while the upstream hung');
      } finally {
        await stall.end();
      }
    }),

    check("a dead upstream port is OutputError 'retry' with unreached", async (make) => {
      const output = await make(rig.deadConfig());
      let err: unknown;
      try {
        await output.connect(live());
        await output.write(batchOf(contractPoints()), live());
      } catch (e) {
        err = e;
      }
      assert(err instanceof OutputError, `expected an OutputError, got ${err === undefined ? 'success' : describeError(err)}`);
      assert(err.category === 'retry' && err.details.unreached === true, `expected 'retry' with unreached, got ${describeError(err)}`);
    }),

    check('refused credentials and unknown targets are the documented categories (auth, fatal)', async (make) => {
      for (const refusal of await rig.refusals()) {
        const output = await make(refusal.config);
        let err: unknown;
        try {
          await output.connect(live());
          await output.write(batchOf(contractPoints()), live());
        } catch (e) {
          err = e;
        }
        assert(err instanceof OutputError && err.category === refusal.category, `${refusal.what}: expected OutputError '${refusal.category}', got ${err === undefined ? 'success' : describeError(err)}`);
      }
    }),

    check('close releases every socket, pool and timer the output opened', async (make) => {
      const target = await rig.target();
      await make(target.config);
      const before = snapshot();
      const output = await make(target.config);
      await output.connect(live());
      await output.write(batchOf(contractPoints()), live());
      await output.close();
      const held = leaked(before, rig.ignore);
      assert(held.length === 0, `close() resolved while it still holds ${held.join(', ')}`);
    }),
  ];
}
