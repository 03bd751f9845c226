// The `modbus` input: polls the devices of one bus on an interval (aligned to the wall clock) or a
// cron schedule and writes one point per device per poll. Each device is read on its own at every
// tick: a slow or dead device skips its own ticks, never the others'. See README.md for the contract.
import { schedule as cronSchedule, type ScheduledTask } from 'node-cron';
import type { Input, InputContext, InputStats } from '../../src/core/component.js';
import type { FieldValue, Fields, Point, Tags } from '../../src/core/point.js';
import { DEFAULT_BUS_TUNING, acquireBus, parseBusUrl, releaseBus, type Bus, type BusTuning } from './bus.js';
import { Deadband } from './deadband.js';
import { bitAt, compileDecoder, type ValueDecoder } from './decode.js';
import { DevicePlan } from './device-plan.js';
import type { PlanItem, ReadRequest } from './plan.js';
import { exceptionName } from './protocol.js';
import type { ModbusDeviceConfig, ModbusInputConfig } from './schema.js';
import type { TransactionResult } from './transport.js';

export interface ModbusTuning extends BusTuning {
  maxGapRegisters?: number;
  maxGapBits?: number;
}

interface Item extends PlanItem {
  name: string;
  decoder: ValueDecoder;
  deadband: Deadband | undefined;
}

interface DeviceState {
  config: ModbusDeviceConfig;
  unitId: number;
  /** The `device` tag: the device's name, or its unit id. */
  label: string;
  tags: Tags;
  /** The requests of one poll; a request the device refuses may be replaced by smaller ones. */
  plan: DevicePlan<Item>;
  /** The read of this device in progress: at most one, so a slow device never queues up behind itself. */
  reading: Promise<void> | undefined;
  /** Whether a skipped tick of this device has been logged (until its reads keep up again). */
  overrunLogged: boolean;
  /** Whether the last tick was skipped for this device: it keeps up once two ticks in a row read it. */
  skippedLastTick: boolean;
  /** Whether the unit answered its last request (undefined before the first). */
  responding: boolean | undefined;
  /** Last outcome per request ("ok", "exception_2", "crc", …), to log once per change. */
  outcomes: Map<string, string>;
  /** Items by field name (the plan may be re-split; the items stay). */
  items: Map<string, Item>;
}

type Counters = Record<string, number>;

/** One tick's reads: when one device finds the bus down, the others' queued requests are dropped. */
interface Round {
  busDown: AbortController;
  /** Aborted when the bus is found down or the input stops. */
  signal: AbortSignal;
}

type ReadOutcome = 'ok' | 'stop' | 'bus-down';

function requestKey(r: ReadRequest<Item>): string {
  return `${r.table}:${r.address}+${r.count}`;
}

export class ModbusInput implements Input {
  private readonly devices: DeviceState[];
  private readonly tuning: ModbusTuning;
  private bus: Bus | undefined;
  private timer: NodeJS.Timeout | undefined;
  private cronTask: ScheduledTask | undefined;
  private lastTickMs = 0;
  private stopping = false;
  /** Aborted by stop(): requests still queued on the bus are not sent. */
  private readonly stopController = new AbortController();
  private busDownLogged = false;
  private lateRepliesLogged = false;
  private readonly stats_: InputStats = { points: 0, errors: 0, refused: 0, lastPointMs: null };
  private readonly counters: Counters = {
    polls: 0,
    overruns: 0,
    requests: 0,
    timeouts: 0,
    crc_errors: 0,
    stray_bytes: 0,
    protocol_errors: 0,
    late_replies: 0,
    mismatched_replies: 0,
    mismatched_requests: 0,
    breaker_skips: 0,
    breaker_opens: 0,
    bus_down_polls: 0,
    deadband_suppressed: 0,
  };
  private busCounters = { reconnects: 0, connect_failures: 0 };

  constructor(
    private readonly config: ModbusInputConfig,
    private readonly ctx: InputContext,
    tuning: Partial<ModbusTuning> = {},
  ) {
    this.tuning = { ...DEFAULT_BUS_TUNING, ...tuning };
    this.devices = config.devices.map((dev) => {
      const items: Item[] = dev.registers.map((reg) => ({
        table: reg.table,
        address: reg.address,
        type: reg.type,
        ownRequest: reg.own_request === true,
        name: reg.name,
        decoder: compileDecoder(reg),
        deadband: reg.deadband === undefined ? undefined : new Deadband(reg.deadband, config.deadband_heartbeat),
      }));
      const label = dev.name ?? String(dev.unit_id);
      return {
        config: dev,
        unitId: dev.unit_id,
        label,
        tags: { ...config.tags, device: label },
        plan: new DevicePlan(items, { maxGapRegisters: this.tuning.maxGapRegisters, maxGapBits: this.tuning.maxGapBits }),
        reading: undefined,
        overrunLogged: false,
        skippedLastTick: false,
        responding: undefined,
        outcomes: new Map(),
        items: new Map(items.map((i) => [i.name, i])),
      };
    });
  }

  start(): Promise<void> {
    const spec = parseBusUrl(this.config.url, {
      baudRate: this.config.baud_rate,
      parity: this.config.parity,
      dataBits: this.config.data_bits,
      stopBits: this.config.stop_bits,
    });
    if (spec.kind === 'tcp') spec.maxInFlight = this.config.max_in_flight ?? 1;
    try {
      this.bus = acquireBus(spec, this.ctx.log, this.tuning);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.config.schedule !== undefined) {
      // Cron fires on whole seconds; the point time is the scheduled second, not when the callback ran.
      this.cronTask = cronSchedule(this.config.schedule, (c) => this.tick(Math.floor(c.date.getTime() / 1000) * 1000), {
        name: `modbus-${this.ctx.id}`,
        logger: {
          info: (m) => this.ctx.log.debug({}, m),
          warn: (m) => this.ctx.log.warn({}, m),
          error: (m) => this.ctx.log.error({}, String(m)),
          debug: (m) => this.ctx.log.debug({}, String(m)),
        },
      });
    } else {
      this.scheduleNext();
    }
    return Promise.resolve();
  }

  /** Ticks on multiples of the interval since the epoch, so every input's points line up in time. */
  private scheduleNext(): void {
    const intervalMs = this.config.interval;
    const now = Date.now();
    const next = Math.max(Math.floor(now / intervalMs) * intervalMs + intervalMs, this.lastTickMs + intervalMs);
    this.timer = setTimeout(() => {
      this.lastTickMs = next;
      this.tick(next);
      if (!this.stopping) this.scheduleNext();
    }, next - now);
  }

  private tick(timeMs: number): void {
    if (this.stopping) return;
    // Never rejects; stop() waits for the reads it started (each device's `reading`).
    void this.poll(timeMs);
  }

  /**
   * One tick: every device that is not still being read from an earlier tick is read now, each on its
   * own, and stores its point as soon as it is read. The devices' requests share the bus queue, one
   * request per device at a time, healthy units first: a slow unit delays the others by at most one of
   * its requests per request of theirs, and a device still busy at the next tick skips that tick alone.
   */
  async poll(timeMs: number): Promise<void> {
    const bus = this.bus;
    if (!bus || this.stopping) return;
    this.counters.polls++;
    const busDown = new AbortController();
    const round: Round = { busDown, signal: AbortSignal.any([busDown.signal, this.stopController.signal]) };
    const order = [...this.devices].sort((a, b) => Number(a.responding === false) - Number(b.responding === false));
    const reads: Promise<void>[] = [];
    for (const dev of order) {
      if (dev.reading) {
        this.overrun(dev);
        continue;
      }
      const keptUp = !dev.skippedLastTick;
      dev.skippedLastTick = false;
      if (dev.overrunLogged && keptUp) {
        dev.overrunLogged = false;
        this.ctx.log.info({ unit_id: dev.unitId, device: dev.label }, 'modbus device reads keep up with the interval again');
      }
      const reading = this.readAndStore(bus, dev, timeMs, round).finally(() => {
        dev.reading = undefined;
      });
      dev.reading = reading;
      reads.push(reading);
    }
    await Promise.all(reads);
  }

  private overrun(dev: DeviceState): void {
    // A device's reads never queue up behind a slow read of its own: its tick is skipped, counted, logged once.
    this.counters.overruns++;
    dev.skippedLastTick = true;
    if (dev.overrunLogged) return;
    dev.overrunLogged = true;
    this.ctx.log.warn(
      { unit_id: dev.unitId, device: dev.label, interval_ms: this.config.interval, timeout_ms: this.config.timeout },
      'modbus device still being read at the next tick; skipping its ticks until it keeps up (the other devices are read as usual)',
    );
  }

  /** Reads one device and stores what was read — also when the input stops half-way through. Never rejects. */
  private async readAndStore(bus: Bus, dev: DeviceState, timeMs: number, round: Round): Promise<void> {
    const values = new Map<string, FieldValue>();
    try {
      const outcome = await this.readDevice(bus, dev, values, round);
      if (outcome === 'bus-down' && !round.busDown.signal.aborted) {
        // One skipped poll per tick, however many devices the outage stops; their queued requests are dropped.
        round.busDown.abort();
        this.counters.bus_down_polls++;
        this.stats_.errors++;
      }
    } catch (err) {
      this.stats_.errors++;
      this.ctx.log.error({ err, unit_id: dev.unitId, device: dev.label }, 'modbus poll failed');
    }
    // Readings already taken are stored, whatever stopped the read (stop, bus down, a timeout).
    const point = this.pointOf(dev, values, timeMs);
    if (!point) return;
    this.stats_.points++;
    this.stats_.lastPointMs = Math.max(this.stats_.lastPointMs ?? 0, timeMs);
    this.ctx.sink.write([point]).catch((err: unknown) => {
      // Polled data cannot be asked for again: count the refusal, the ring counted the drop.
      this.stats_.refused++;
      this.ctx.log.debug({ err }, 'points refused by the store');
    });
  }

  private pointOf(dev: DeviceState, values: Map<string, FieldValue>, timeMs: number): Point | undefined {
    if (values.size === 0) return undefined;
    const fields: Fields = {};
    let any = false;
    for (const reg of dev.config.registers) {
      const v = values.get(reg.name);
      if (v === undefined) continue;
      const item = dev.items.get(reg.name);
      if (item?.deadband && !item.deadband.admit(v, timeMs)) {
        this.counters.deadband_suppressed++;
        continue;
      }
      fields[reg.name] = v;
      any = true;
    }
    if (!any) return undefined;
    // A copy per point: whatever the agent does to a point's tags must not leak into the next poll.
    return { measurement: this.config.measurement, tags: { ...dev.tags }, fields, timeUs: timeMs * 1000 };
  }

  private async readDevice(bus: Bus, dev: DeviceState, values: Map<string, FieldValue>, round: Round): Promise<ReadOutcome> {
    const queue = [...dev.plan.requests];
    const breaker = bus.breaker(dev.unitId);
    for (let request = queue.shift(); request; request = queue.shift()) {
      if (this.stopping) return 'stop';
      if (round.busDown.signal.aborted) return 'bus-down';
      if (breaker.state(Date.now()) === 'open') {
        this.counters.breaker_skips += queue.length + 1;
        return 'ok';
      }
      const result = await bus.transact({ unitId: dev.unitId, fc: request.fc, address: request.address, count: request.count, timeoutMs: this.config.timeout }, round.signal);
      this.countNoise(result);
      if (result.status === 'cancelled') return this.stopping ? 'stop' : 'bus-down';
      if (result.status === 'disconnected') {
        this.logBusDown(true, result.reason);
        return 'bus-down';
      }
      this.logBusDown(false);
      this.counters.requests++;
      switch (result.status) {
        case 'response': {
          if (breaker.success()) this.ctx.log.debug({ unit_id: dev.unitId }, 'modbus unit circuit breaker closed');
          this.setResponding(dev, true);
          const response = result.response;
          if (response.kind === 'data') {
            dev.plan.answered(request);
            this.setOutcome(dev, request, 'ok');
            for (const item of request.items) {
              const offset = item.address - request.address;
              values.set(item.name, request.table === 'coil' || request.table === 'discrete' ? bitAt(response.data, offset) : item.decoder.fromRegisters(response.data, offset));
            }
            break;
          }
          const code = response.code;
          this.counters[`exception_${code}`] = (this.counters[`exception_${code}`] ?? 0) + 1;
          this.stats_.errors++;
          const { readNow } = dev.plan.refused(request, code);
          if (readNow) {
            // Read the registers of the refused request in smaller ones, now (see device-plan.ts for what is kept).
            dev.outcomes.delete(requestKey(request));
            queue.unshift(...readNow);
            this.ctx.log.info(
              { unit_id: dev.unitId, device: dev.label, table: request.table, address: request.address, count: request.count, code, exception: exceptionName(code) },
              `modbus request refused; reading its registers in ${readNow.length} smaller requests`,
            );
          } else {
            this.setOutcome(dev, request, `exception_${code}`, { code, exception: exceptionName(code) });
          }
          break;
        }
        case 'timeout': {
          dev.plan.unanswered(request);
          this.counters.timeouts++;
          this.stats_.errors++;
          const openMs = breaker.timeout(Date.now());
          if (openMs !== undefined) this.counters.breaker_opens++;
          this.setResponding(dev, false, openMs);
          // A unit that does not answer costs one timeout per poll, not one per request.
          this.counters.breaker_skips += queue.length;
          this.logPlanChanges(dev);
          return 'ok';
        }
        case 'crc':
          dev.plan.unanswered(request);
          this.stats_.errors++;
          this.setOutcome(dev, request, 'crc');
          break;
        case 'protocol':
          dev.plan.unanswered(request);
          this.counters.protocol_errors++;
          this.stats_.errors++;
          this.setOutcome(dev, request, 'protocol', { error: result.message });
          break;
        case 'mismatched':
          // Something answers (not a timeout, not the breaker's business), but never this request.
          dev.plan.unanswered(request);
          this.counters.mismatched_requests++;
          this.stats_.errors++;
          this.setOutcome(dev, request, 'mismatched', { error: result.message });
          break;
      }
      this.logPlanChanges(dev);
    }
    return 'ok';
  }

  /** Logs what the device's plan learnt: a register isolated, merged again, or gaps no longer read through. */
  private logPlanChanges(dev: DeviceState): void {
    const changes = dev.plan.takeChanges();
    if (changes.length === 0) return;
    for (const change of changes) {
      const where = { unit_id: dev.unitId, device: dev.label };
      if (change.kind === 'isolated') {
        const first = change.items[0];
        this.ctx.log.info(
          { ...where, table: first.table, addresses: change.items.map((i) => i.address), fields: change.items.map((i) => i.name), code: change.code, exception: exceptionName(change.code) },
          'modbus register fails while its neighbours answer; reading it in a request of its own',
        );
      } else if (change.kind === 'merged') {
        this.ctx.log.info({ ...where, fields: change.items.map((i) => i.name) }, 'modbus register answers again; reading it with its neighbours again');
      }
    }
    // Outcomes of requests that are no longer in the plan would never change again.
    const keys = new Set(dev.plan.requests.map(requestKey));
    for (const key of dev.outcomes.keys()) if (!keys.has(key)) dev.outcomes.delete(key);
  }

  private countNoise(result: TransactionResult): void {
    this.counters.stray_bytes += result.strayBytes;
    this.counters.crc_errors += result.crcErrors;
    this.counters.mismatched_replies += result.mismatchedReplies ?? 0;
    const late = result.lateReplies ?? 0;
    this.counters.late_replies += late;
    if (late > 0 && !this.lateRepliesLogged) {
      this.lateRepliesLogged = true;
      this.ctx.log.info({ timeout_ms: this.config.timeout }, 'modbus answer arrived after its request had timed out (discarded; a longer timeout may suit this bus)');
    }
  }

  private logBusDown(down: boolean, reason?: string): void {
    if (down === this.busDownLogged) return;
    this.busDownLogged = down;
    // The bus itself logs the outage at warn; this says what it costs this input.
    if (down) this.ctx.log.debug({ url: this.config.url, reason }, 'modbus bus not connected; polls skipped until it reconnects');
    else this.ctx.log.debug({ url: this.config.url }, 'modbus bus back; polling');
  }

  private setResponding(dev: DeviceState, responding: boolean, backoffMs?: number): void {
    const before = dev.responding;
    dev.responding = responding;
    if (responding && before === false) {
      this.ctx.log.info({ unit_id: dev.unitId, device: dev.label }, 'modbus unit answers again');
    } else if (!responding && before !== false) {
      this.ctx.log.warn({ unit_id: dev.unitId, device: dev.label, timeout_ms: this.config.timeout }, 'modbus unit does not answer');
    } else if (!responding && backoffMs !== undefined) {
      this.ctx.log.debug({ unit_id: dev.unitId, device: dev.label, backoff_ms: backoffMs }, 'modbus unit backed off');
    }
  }

  /** Logs a request's outcome when it changes: once when it starts failing (with the code), once when it recovers. */
  private setOutcome(dev: DeviceState, request: ReadRequest<Item>, outcome: string, details: Record<string, unknown> = {}): void {
    const key = requestKey(request);
    const before = dev.outcomes.get(key);
    if (before === outcome) return;
    dev.outcomes.set(key, outcome);
    const where = {
      unit_id: dev.unitId,
      device: dev.label,
      table: request.table,
      address: request.address,
      count: request.count,
      fields: request.items.map((i) => i.name),
    };
    if (outcome === 'ok') {
      if (before !== undefined) this.ctx.log.info({ ...where, was: before }, 'modbus request succeeds again');
    } else {
      const msg = outcome.startsWith('exception_')
        ? 'modbus exception response'
        : outcome === 'mismatched'
          ? 'modbus answers do not match the request (wrong transaction or unit id); each was discarded while waiting for the right one until the timeout'
          : `modbus request failed (${outcome})`;
      this.ctx.log.warn({ ...where, outcome, ...details }, msg);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopController.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.cronTask) await this.cronTask.destroy();
    this.cronTask = undefined;
    // Reads in progress stop before their next request (queued ones are not sent), the ones on the wire
    // end within the timeout, and what they read is stored.
    await Promise.all(this.devices.flatMap((d) => (d.reading ? [d.reading] : [])));
    const bus = this.bus;
    this.bus = undefined;
    if (bus) {
      this.busCounters = { reconnects: bus.reconnects, connect_failures: bus.connectFailures };
      await releaseBus(bus);
    }
  }

  stats(): InputStats {
    if (this.bus) this.busCounters = { reconnects: this.bus.reconnects, connect_failures: this.bus.connectFailures };
    return { ...this.stats_, counters: { ...this.counters, ...this.busCounters } };
  }
}
