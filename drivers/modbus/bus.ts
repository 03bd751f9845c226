// The bus: one link (a TCP connection or a serial port) and the rule that matters most on RS-485 —
// one transaction at a time — shared by every input in the process that names the same port or
// host:port. It also holds a circuit breaker per unit id, so a dead unit is backed off for every
// input that polls it.
import { realpathSync } from 'node:fs';
import type { Logger } from '../../src/core/component.js';
import { RtuTransport, type SerialSettings } from './transport-rtu.js';
import { TcpTransport } from './transport-tcp.js';
import type { LinkEvents, TransactionRequest, TransactionResult, Transport } from './transport.js';

export type BusSpec =
  | { kind: 'tcp'; host: string; port: number }
  | ({ kind: 'rtu'; path: string } & SerialSettings);

export interface BusTuning {
  /** First reconnect delay; doubles (with jitter) up to reconnectMaxMs, forever. */
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  /** Timeouts in a row after which a unit's breaker opens. */
  breakerThreshold: number;
  /** First open period; doubles with every failed probe up to breakerMaxOpenMs. */
  breakerBaseOpenMs: number;
  breakerMaxOpenMs: number;
}

export const DEFAULT_BUS_TUNING: BusTuning = {
  reconnectInitialMs: 250,
  reconnectMaxMs: 15_000,
  connectTimeoutMs: 5_000,
  breakerThreshold: 3,
  breakerBaseOpenMs: 2_000,
  breakerMaxOpenMs: 60_000,
};

/** Parses `tcp://host[:port]` (default port 502) or `rtu://<path>`. */
export function parseBusUrl(url: string, serial: SerialSettings): BusSpec {
  if (url.startsWith('rtu://')) return { kind: 'rtu', path: url.slice('rtu://'.length), ...serial };
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+)(?::([0-9]+))?$/.exec(url);
  if (!m) throw new Error(`modbus: not a tcp:// or rtu:// url: ${url}`);
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  return { kind: 'tcp', host, port: m[2] === undefined ? 502 : Number(m[2]) };
}

/** The registry key: one bus per serial device (symlinks such as /dev/serial/by-id/… resolved) or host:port. */
export function busKey(spec: BusSpec): string {
  if (spec.kind === 'tcp') return `tcp://${spec.host.toLowerCase()}:${spec.port}`;
  let path = spec.path;
  try {
    path = realpathSync(spec.path);
  } catch {
    // Not plugged in yet: the configured path is the identity until it appears.
  }
  return `rtu://${path}`;
}

export type BreakerState = 'closed' | 'probe' | 'open';

/**
 * Per-unit circuit breaker. Closed: every request goes out. After `threshold` timeouts in a row it
 * opens: the unit's requests are skipped (costing nothing) for an open period; when that ends, one
 * probe request may go out; a probe that times out reopens it for twice as long (up to the maximum),
 * any answer closes it.
 */
export class CircuitBreaker {
  private consecutiveTimeouts = 0;
  private openUntilMs = 0;
  private openMs = 0;
  private isOpen = false;

  constructor(private readonly tuning: Pick<BusTuning, 'breakerThreshold' | 'breakerBaseOpenMs' | 'breakerMaxOpenMs'>) {}

  state(nowMs: number): BreakerState {
    if (!this.isOpen) return 'closed';
    return nowMs >= this.openUntilMs ? 'probe' : 'open';
  }

  /** The unit answered (data or an exception). Returns true when that closed an open breaker. */
  success(): boolean {
    const wasOpen = this.isOpen;
    this.consecutiveTimeouts = 0;
    this.isOpen = false;
    this.openMs = 0;
    return wasOpen;
  }

  /** The unit did not answer. Returns the open period when this opened (or reopened) the breaker. */
  timeout(nowMs: number): number | undefined {
    this.consecutiveTimeouts++;
    if (this.isOpen) {
      this.openMs = Math.min(this.tuning.breakerMaxOpenMs, this.openMs * 2);
    } else if (this.consecutiveTimeouts >= this.tuning.breakerThreshold) {
      this.isOpen = true;
      this.openMs = this.tuning.breakerBaseOpenMs;
    } else {
      return undefined;
    }
    this.openUntilMs = nowMs + this.openMs;
    return this.openMs;
  }
}

export class Bus {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly breakers = new Map<number, CircuitBreaker>();
  private readonly transport: Transport;
  private down = false;
  users = 0;
  /** Connections re-established after a loss (not the first connect). */
  reconnects = 0;
  /** Failed connection attempts. */
  connectFailures = 0;

  constructor(
    readonly key: string,
    readonly spec: BusSpec,
    private readonly tuning: BusTuning,
    private readonly log: Logger,
  ) {
    const events: LinkEvents = {
      onUp: (reconnect) => {
        if (reconnect) this.reconnects++;
        if (this.down || reconnect) this.log.info({ bus: key }, 'modbus bus connected');
        this.down = false;
      },
      onLost: (err) => {
        this.down = true;
        this.log.warn({ bus: key, err: err?.message }, 'modbus bus connection lost; reconnecting');
      },
      onAttemptFailed: (err, retryMs) => {
        this.connectFailures++;
        // Once per outage at warn; the retries themselves are quiet.
        if (!this.down) this.log.warn({ bus: key, err: err.message, retry_ms: retryMs }, 'modbus bus unreachable; retrying with backoff');
        else this.log.debug({ bus: key, err: err.message, retry_ms: retryMs }, 'modbus bus still unreachable');
        this.down = true;
      },
    };
    const link = { reconnectInitialMs: tuning.reconnectInitialMs, reconnectMaxMs: tuning.reconnectMaxMs, log, events };
    this.transport =
      spec.kind === 'tcp'
        ? new TcpTransport({ ...link, host: spec.host, port: spec.port, connectTimeoutMs: tuning.connectTimeoutMs })
        : new RtuTransport({ ...link, path: spec.path, baudRate: spec.baudRate, parity: spec.parity, dataBits: spec.dataBits, stopBits: spec.stopBits });
  }

  open(): void {
    this.transport.open();
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  /**
   * Queues one transaction behind every other on this bus (FIFO), whichever input asked. Each device
   * has at most one request queued at a time, so the queue takes the devices in turn: a slow unit
   * holds the line for its own requests only, one at a time. A request whose `signal` was aborted
   * before its turn is not sent.
   */
  transact(request: TransactionRequest, signal?: AbortSignal): Promise<TransactionResult> {
    const run = this.tail.then(() =>
      signal?.aborted ? ({ status: 'cancelled', strayBytes: 0, crcErrors: 0 } as const) : this.transport.transact(request),
    );
    this.tail = run.catch(() => undefined);
    return run;
  }

  breaker(unitId: number): CircuitBreaker {
    let b = this.breakers.get(unitId);
    if (!b) {
      b = new CircuitBreaker(this.tuning);
      this.breakers.set(unitId, b);
    }
    return b;
  }

  /** Waits for queued transactions, then closes the link. */
  async close(): Promise<void> {
    await this.tail;
    await this.transport.close();
  }
}

const buses = new Map<string, Bus>();

function sameSerial(a: BusSpec, b: BusSpec): boolean {
  return a.kind === 'rtu' && b.kind === 'rtu' && a.baudRate === b.baudRate && a.parity === b.parity && a.dataBits === b.dataBits && a.stopBits === b.stopBits;
}

/**
 * The process-wide bus for `spec`, opened on first use. Inputs that name the same serial port must
 * agree on its line settings: one port cannot run at two speeds.
 */
export function acquireBus(spec: BusSpec, log: Logger, tuning: BusTuning = DEFAULT_BUS_TUNING): Bus {
  const key = busKey(spec);
  let bus = buses.get(key);
  if (bus && spec.kind === 'rtu' && !sameSerial(bus.spec, spec)) {
    const s = bus.spec as typeof spec;
    throw new Error(
      `modbus: ${key} is already in use at ${s.baudRate} baud, parity ${s.parity}, ${s.dataBits} data bits, ${s.stopBits} stop bits; ` +
        `every input on one serial port must use the same settings`,
    );
  }
  if (!bus) {
    bus = new Bus(key, spec, tuning, log);
    buses.set(key, bus);
    bus.open();
  }
  bus.users++;
  return bus;
}

/** Gives a bus back; the last user closes it. */
export async function releaseBus(bus: Bus): Promise<void> {
  bus.users--;
  if (bus.users > 0) return;
  if (buses.get(bus.key) === bus) buses.delete(bus.key);
  await bus.close();
}
