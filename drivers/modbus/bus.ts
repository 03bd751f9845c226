// The bus: one link (a TCP connection, a serial port, or a TCP connection to a serial converter) and
// the rule that matters most on RS-485 — one transaction at a time — shared by every input in the
// process that names the same port or host:port. It also holds a circuit breaker per unit id, so a
// dead unit is backed off for every input that polls it, and decides whose request goes next, so a
// slow unit holds the line for its own requests but does not make every other unit's request wait
// behind each of its own.
import { realpathSync } from 'node:fs';
import type { Logger } from '../../src/core/component.js';
import { serialLine, socketLine, type SerialSettings } from './line.js';
import { RtuTransport } from './transport-rtu.js';
import { TcpTransport } from './transport-tcp.js';
import type { LinkEvents, TransactionRequest, TransactionResult, Transport } from './transport.js';

export type BusSpec =
  | { kind: 'tcp'; host: string; port: number; maxInFlight?: number }
  | ({ kind: 'rtu'; path: string } & SerialSettings)
  /** RTU frames over TCP (a serial-to-Ethernet converter); the settings are the serial line's behind it. */
  | ({ kind: 'rtu+tcp'; host: string; port: number } & SerialSettings);

/** The serial line of an RTU bus (a port, or the line behind a converter): one line, one speed. */
type SerialBusSpec = Extract<BusSpec, SerialSettings>;

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

/** `host[:port]` after the scheme: a name, an IPv4 address or a bracketed IPv6 address. */
const HOST_PORT = /^(\[[^\]]+\]|[^:/]+)(?::([0-9]+))?$/;

/** Parses `tcp://host[:port]` (default port 502), `rtu://<path>` or `rtu+tcp://host:port`. */
export function parseBusUrl(url: string, serial: SerialSettings): BusSpec {
  if (url.startsWith('rtu://')) return { kind: 'rtu', path: url.slice('rtu://'.length), ...serial };
  const scheme = /^(tcp|rtu\+tcp):\/\//.exec(url)?.[1];
  const m = scheme === undefined ? null : HOST_PORT.exec(url.slice(scheme.length + 3));
  if (!m || (scheme === 'rtu+tcp' && m[2] === undefined)) throw new Error(`modbus: not a tcp://, rtu:// or rtu+tcp://host:port url: ${url}`);
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  const port = m[2] === undefined ? 502 : Number(m[2]);
  return scheme === 'tcp' ? { kind: 'tcp', host, port } : { kind: 'rtu+tcp', host, port, ...serial };
}

/** The registry key: one bus per serial device (symlinks such as /dev/serial/by-id/… resolved) or host:port. */
export function busKey(spec: BusSpec): string {
  if (spec.kind !== 'rtu') return `${spec.kind}://${spec.host.toLowerCase()}:${spec.port}`;
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

/** Weight of the newest transaction in a unit's average time on the line. */
const SERVICE_EWMA_WEIGHT = 0.3;

interface Waiting {
  request: TransactionRequest;
  signal: AbortSignal | undefined;
  enqueuedMs: number;
  resolve(result: TransactionResult): void;
}

export class Bus {
  private readonly waiting: Waiting[] = [];
  /** Units with a transaction on the line (or just answered, until the next choice). */
  private readonly busyUnits = new Set<number>();
  private idleWaiters: (() => void)[] = [];
  /** Per unit id: how long its transactions hold the line (ms, moving average; a timeout counts in full). */
  private readonly serviceMs = new Map<number, number>();
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
    if (spec.kind === 'tcp') {
      const openLine = socketLine({ host: spec.host, port: spec.port, connectTimeoutMs: tuning.connectTimeoutMs });
      this.transport = new TcpTransport({ ...link, openLine, maxInFlight: spec.maxInFlight });
    } else {
      const serial = { baudRate: spec.baudRate, parity: spec.parity, dataBits: spec.dataBits, stopBits: spec.stopBits };
      const openLine = spec.kind === 'rtu' ? serialLine(spec.path, serial) : socketLine({ host: spec.host, port: spec.port, connectTimeoutMs: tuning.connectTimeoutMs });
      this.transport = new RtuTransport({ ...link, openLine, serial, dropWhenSilent: spec.kind === 'rtu+tcp' });
    }
  }

  open(): void {
    this.transport.open();
  }

  get connected(): boolean {
    return this.transport.connected;
  }

  /**
   * Queues one transaction; one at a time goes on the line, whichever input asked. Next goes the
   * waiting request that is expected to hold the line the shortest — its unit's average time on the
   * line, less the time it has waited — so a quick unit's requests pass a slow unit's waiting one, and
   * a slow unit's request waits at most about its own duration. A device has at most one request
   * waiting, so a slow unit delays another device's read by about one of its own transactions, not one
   * per request of that device. A request whose `signal` was aborted before its turn is not sent.
   * With a TCP `maxInFlight` above 1, that many go out at once, at most one per unit id.
   */
  transact(request: TransactionRequest, signal?: AbortSignal): Promise<TransactionResult> {
    return new Promise((resolve) => {
      this.waiting.push({ request, signal, enqueuedMs: performance.now(), resolve });
      this.next();
    });
  }

  private next(): void {
    while (this.busyUnits.size < this.transport.maxInFlight) {
      const nowMs = performance.now();
      let best = -1;
      let bestKey = Infinity;
      this.waiting.forEach((w, i) => {
        if (this.busyUnits.has(w.request.unitId)) return;
        const key = (this.serviceMs.get(w.request.unitId) ?? 0) - (nowMs - w.enqueuedMs);
        if (key < bestKey) {
          bestKey = key;
          best = i;
        }
      });
      if (best < 0) return;
      const [w] = this.waiting.splice(best, 1);
      if (w.signal?.aborted) {
        w.resolve({ status: 'cancelled', strayBytes: 0, crcErrors: 0 });
        continue;
      }
      const unitId = w.request.unitId;
      this.busyUnits.add(unitId);
      const startedMs = nowMs;
      void this.transport
        .transact(w.request)
        .catch((err: unknown): TransactionResult => ({ status: 'protocol', message: err instanceof Error ? err.message : String(err), strayBytes: 0, crcErrors: 0 }))
        .then((result) => {
          const tookMs = performance.now() - startedMs;
          const before = this.serviceMs.get(w.request.unitId);
          this.serviceMs.set(w.request.unitId, before === undefined ? tookMs : before + SERVICE_EWMA_WEIGHT * (tookMs - before));
          w.resolve(result);
          // Choose the next one once the answer's reader has run: a device's next request (queued in
          // the same turn of the event loop) is then among the candidates.
          setImmediate(() => {
            this.busyUnits.delete(unitId);
            this.next();
            if (this.busyUnits.size === 0 && this.waiting.length === 0) for (const idle of this.idleWaiters.splice(0)) idle();
          });
        });
    }
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
    if (this.busyUnits.size > 0 || this.waiting.length > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.transport.close();
  }
}

const buses = new Map<string, Bus>();

function sameSerial(a: SerialBusSpec, b: SerialBusSpec): boolean {
  return a.baudRate === b.baudRate && a.parity === b.parity && a.dataBits === b.dataBits && a.stopBits === b.stopBits;
}

/**
 * The process-wide bus for `spec`, opened on first use. Inputs that name the same serial port (or the
 * same converter) must agree on its line settings: one line cannot run at two speeds. One host:port
 * cannot be both a Modbus TCP server and an RTU converter.
 */
export function acquireBus(spec: BusSpec, log: Logger, tuning: BusTuning = DEFAULT_BUS_TUNING): Bus {
  const key = busKey(spec);
  if (spec.kind !== 'rtu') {
    const other = `${spec.kind === 'tcp' ? 'rtu+tcp' : 'tcp'}://${spec.host.toLowerCase()}:${spec.port}`;
    if (buses.has(other)) throw new Error(`modbus: ${spec.host}:${spec.port} is already in use as ${other}; one host:port speaks either Modbus TCP or RTU over TCP`);
  }
  let bus = buses.get(key);
  if (bus && spec.kind === 'tcp' && bus.spec.kind === 'tcp' && (bus.spec.maxInFlight ?? 1) !== (spec.maxInFlight ?? 1)) {
    throw new Error(`modbus: ${key} is already in use with max_in_flight ${bus.spec.maxInFlight ?? 1}; every input on one connection must use the same`);
  }
  if (bus && spec.kind !== 'tcp' && !sameSerial(bus.spec as SerialBusSpec, spec)) {
    const s = bus.spec as SerialBusSpec;
    throw new Error(
      `modbus: ${key} is already in use at ${s.baudRate} baud, parity ${s.parity}, ${s.dataBits} data bits, ${s.stopBits} stop bits; ` +
        `every input on one serial ${spec.kind === 'rtu' ? 'port' : 'line'} must use the same settings`,
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
