// The `modbus` input: polls the devices of one bus on an interval (aligned to the wall clock) or a
// cron schedule and writes one point per device per poll. See README.md for the behaviour contract.
import { schedule as cronSchedule, type ScheduledTask } from 'node-cron';
import type { Input, InputContext, InputStats } from '../../src/core/component.js';
import type { FieldValue, Fields, Point, Tags } from '../../src/core/point.js';
import { DEFAULT_BUS_TUNING, acquireBus, parseBusUrl, releaseBus, type Bus, type BusTuning } from './bus.js';
import { Deadband } from './deadband.js';
import { bitAt, compileDecoder, type ValueDecoder } from './decode.js';
import { planRequests, splitRequest, type PlanItem, type ReadRequest } from './plan.js';
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
  plan: ReadRequest<Item>[];
  /** Whether the unit answered its last request (undefined before the first). */
  responding: boolean | undefined;
  /** Last outcome per request ("ok", "exception_2", "crc", …), to log once per change. */
  outcomes: Map<string, string>;
  /** Items by field name (the plan may be re-split; the items stay). */
  items: Map<string, Item>;
}

type Counters = Record<string, number>;

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
  private polling: Promise<void> | undefined;
  private stopping = false;
  private overrunLogged = false;
  private busDownLogged = false;
  private readonly stats_: InputStats = { points: 0, errors: 0, refused: 0, lastPointMs: null };
  private readonly counters: Counters = {
    polls: 0,
    overruns: 0,
    requests: 0,
    timeouts: 0,
    crc_errors: 0,
    stray_bytes: 0,
    protocol_errors: 0,
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
        plan: planRequests(items, { maxGapRegisters: this.tuning.maxGapRegisters, maxGapBits: this.tuning.maxGapBits }),
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
    if (this.polling) {
      // Polls never queue up behind a slow bus: this tick is skipped, counted, and logged once.
      this.counters.overruns++;
      if (!this.overrunLogged) {
        this.overrunLogged = true;
        this.ctx.log.warn({ interval_ms: this.config.interval }, 'modbus poll still running at the next tick; skipping ticks until it keeps up (lengthen interval or shorten timeout)');
      }
      return;
    }
    this.polling = this.poll(timeMs)
      .catch((err: unknown) => {
        this.stats_.errors++;
        this.ctx.log.error({ err }, 'modbus poll failed');
      })
      .finally(() => {
        this.polling = undefined;
      });
  }

  /** One poll of every device: healthy units first, so a dead one only ever delays what comes after it. */
  async poll(timeMs: number): Promise<void> {
    const bus = this.bus;
    if (!bus) return;
    this.counters.polls++;
    const overrunsBefore = this.counters.overruns;
    const order = [...this.devices].sort((a, b) => Number(a.responding === false) - Number(b.responding === false));
    const points: Point[] = [];
    for (const dev of order) {
      const values = new Map<string, FieldValue>();
      const outcome = await this.readDevice(bus, dev, values);
      if (outcome === 'stop') return;
      if (outcome === 'bus-down') {
        this.counters.bus_down_polls++;
        this.stats_.errors++;
        break;
      }
      const point = this.pointOf(dev, values, timeMs);
      if (point) points.push(point);
    }
    if (this.overrunLogged && this.counters.overruns === overrunsBefore) {
      this.overrunLogged = false;
      this.ctx.log.info({}, 'modbus polls keep up with the interval again');
    }
    if (points.length === 0 || this.stopping) return;
    this.stats_.points += points.length;
    this.stats_.lastPointMs = timeMs;
    this.ctx.sink.write(points).catch((err: unknown) => {
      // Polled data cannot be asked for again: count the refusal, the ring counted the drop.
      this.stats_.refused += points.length;
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

  private async readDevice(bus: Bus, dev: DeviceState, values: Map<string, FieldValue>): Promise<'ok' | 'stop' | 'bus-down'> {
    const queue = [...dev.plan];
    const breaker = bus.breaker(dev.unitId);
    for (let request = queue.shift(); request; request = queue.shift()) {
      if (this.stopping) return 'stop';
      if (breaker.state(Date.now()) === 'open') {
        this.counters.breaker_skips += queue.length + 1;
        return 'ok';
      }
      const result = await bus.transact({ unitId: dev.unitId, fc: request.fc, address: request.address, count: request.count, timeoutMs: this.config.timeout });
      this.countNoise(result);
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
          const parts = code === 2 || code === 3 ? splitRequest(request) : undefined;
          if (parts) {
            // The device refuses part of what was read through; read the parts on their own, now and from now on.
            const at = dev.plan.indexOf(request);
            if (at >= 0) dev.plan.splice(at, 1, ...parts);
            dev.outcomes.delete(requestKey(request));
            queue.unshift(...parts);
            this.ctx.log.info(
              { unit_id: dev.unitId, device: dev.label, table: request.table, address: request.address, count: request.count, code, exception: exceptionName(code) },
              `modbus request refused; reading its registers in ${parts.length} smaller requests`,
            );
            break;
          }
          this.setOutcome(dev, request, `exception_${code}`, { code, exception: exceptionName(code) });
          break;
        }
        case 'timeout': {
          this.counters.timeouts++;
          this.stats_.errors++;
          const openMs = breaker.timeout(Date.now());
          if (openMs !== undefined) this.counters.breaker_opens++;
          this.setResponding(dev, false, openMs);
          // A unit that does not answer costs one timeout per poll, not one per request.
          this.counters.breaker_skips += queue.length;
          return 'ok';
        }
        case 'crc':
          this.stats_.errors++;
          this.setOutcome(dev, request, 'crc');
          break;
        case 'protocol':
          this.counters.protocol_errors++;
          this.stats_.errors++;
          this.setOutcome(dev, request, 'protocol', { error: result.message });
          break;
      }
    }
    return 'ok';
  }

  private countNoise(result: TransactionResult): void {
    this.counters.stray_bytes += result.strayBytes;
    this.counters.crc_errors += result.crcErrors;
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
      this.ctx.log.warn({ ...where, outcome, ...details }, outcome.startsWith('exception_') ? 'modbus exception response' : `modbus request failed (${outcome})`);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.cronTask) await this.cronTask.destroy();
    this.cronTask = undefined;
    // The poll in progress stops before its next request; the one on the wire ends within the timeout.
    await this.polling;
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
