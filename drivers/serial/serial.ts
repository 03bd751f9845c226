// The serial input: reads lines of text from a serial port, decodes each in the configured format and
// writes the points to the ring.
//
// Failure handling, in the order a line meets it:
// - the port is missing, busy or not permitted: retried with bounded backoff, forever; the first
//   failure of a kind is logged at warn (with the serial ports that do exist when it is missing), the
//   repeats at debug, so a gateway waiting for a USB adapter does not fill its log;
// - the port closes or errors while open (USB unplugged, the other end of a pty gone): an unterminated
//   line is dropped (counted `partial`) and the port is reopened, with the same backoff;
// - the first line after an open may be the tail of a line the device was sending while we were not
//   listening. It is kept only when the port was quiet for `settleMs` after opening (the device was
//   between lines, so its first byte starts a line); when bytes arrive at once, the device is
//   mid-line and the first line is dropped (counted `partial`). A device sending a line every few
//   seconds loses nothing; a device streaming back to back loses only the fragment;
// - over-long lines (counted `too_long`), undecodable lines (`garbage`: invalid UTF-8, control
//   characters, wrong format) are skipped; the lines around them are stored;
// - the ring refusing points (full under drop_newest, or closing) is counted (`refused`): polled data
//   cannot be asked for again, and the input goes on.
import { LogThrottle } from '../../src/core/log-throttle.js';
import { readdir } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import type { Input, InputContext, InputStats } from '../../src/core/component.js';
import type { Point } from '../../src/core/point.js';
import { Backoff } from '../../src/core/backoff.js';
import { createDecoder, type LineDecoder } from './formats.js';
import { LineFramer, type Frame } from './framing.js';
import type { SerialInputConfig } from './schema.js';

export interface SerialInputOptions {
  /** First reopen delay (default 500 ms). */
  reopenMinMs?: number;
  /** Longest reopen delay (default 30 s). */
  reopenMaxMs?: number;
}

/** At most one log line per kind of trouble per this interval; the rest are counted into the next one. */
const LOG_EVERY_MS = 60_000;
/** Garbage shown in a log line is clipped to this many characters. */
const LOG_LINE_CHARS = 120;

/** Counters reported in stats().counters (exposed as metrics). */
interface Counters {
  /** Bytes read from the port. */
  bytes: number;
  /** Delimited, non-blank lines received, whatever became of them. */
  lines: number;
  /** Lines that did not decode: not UTF-8, control characters, or not in the configured format. */
  garbage: number;
  /** Lines longer than max_line_length, discarded. */
  too_long: number;
  /** Fragments dropped: the first line after an open while the device was mid-line, a line cut by a close. */
  partial: number;
  /** Times the port was opened again after it had been open. */
  reopens: number;
  /** Failed attempts to open the port. */
  open_errors: number;
}

export class SerialInput implements Input {
  private readonly decode: LineDecoder;
  private readonly delimiter: Buffer;
  private readonly backoff: Backoff;
  /** Quiet time after an open that tells "the device is between lines" from "the device is mid-line". */
  readonly settleMs: number;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  private stopped = true;
  /** The port being opened or open; undefined while waiting to retry. */
  private port: SerialPort | undefined;
  /** The open attempt in flight (stop waits for it, so that no file handle outlives stop). */
  private opening: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private framer: LineFramer;
  private openedAtMs = 0;
  private everOpened = false;
  /** Before the first byte after an open: undecided; then whether the first line is kept. */
  private firstLine: 'undecided' | 'drop' | 'keep' = 'undecided';
  /** Message of the last open failure, so a repeated failure is logged once. */
  private lastOpenError: string | undefined;
  /** Failed opens since the port was last open (for the log line when it opens). */
  private failedOpens = 0;
  private lastReceiptUs = -Infinity;

  private readonly counters: Counters = { bytes: 0, lines: 0, garbage: 0, too_long: 0, partial: 0, reopens: 0, open_errors: 0 };
  private points = 0;
  private errors = 0;
  private refused = 0;
  private lastPointMs: number | null = null;
  private readonly garbageLog = new LogThrottle(LOG_EVERY_MS);
  private readonly refusedLog = new LogThrottle(LOG_EVERY_MS);

  constructor(
    private readonly config: SerialInputConfig,
    private readonly ctx: InputContext,
    options: SerialInputOptions = {},
  ) {
    this.decode = createDecoder(config);
    this.delimiter = Buffer.from(config.delimiter, 'utf8');
    this.framer = new LineFramer(this.delimiter, config.max_line_length);
    this.backoff = new Backoff({ minMs: options.reopenMinMs ?? 500, maxMs: options.reopenMaxMs ?? 30_000 });
    const bitsPerChar = 1 + config.data_bits + (config.parity === 'none' ? 0 : 1) + config.stop_bits;
    // 32 character times covers a USB adapter's latency timer (16 ms by default) at common rates; the
    // floor covers scheduling delays on a busy gateway.
    this.settleMs = Math.max(100, Math.ceil((32 * bitsPerChar * 1000) / config.baud_rate));
  }

  /** Starts opening the port and returns; a missing device is retried in the background. */
  start(): Promise<void> {
    this.stopped = false;
    this.connect();
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    // An open in flight closes its port itself once it sees `stopped`.
    if (this.opening) await this.opening;
    const port = this.port;
    this.port = undefined;
    this.framer.reset();
    if (port?.isOpen) await closePort(port);
  }

  stats(): InputStats {
    return { points: this.points, errors: this.errors, refused: this.refused, lastPointMs: this.lastPointMs, counters: { ...this.counters } };
  }

  // ------------------------------------------------------------------------------------ the port

  private connect(): void {
    this.retryTimer = undefined;
    if (this.stopped) return;
    const { port: path, baud_rate: baudRate, data_bits: dataBits, stop_bits: stopBits, parity } = this.config;
    // A new object per attempt: a SerialPort stream that closed keeps listeners and read state of its
    // old file descriptor.
    const port = new SerialPort({ path, baudRate, dataBits, stopBits, parity, autoOpen: false });
    // Without an 'error' listener an asynchronous port error would be thrown and end the process.
    port.on('error', (err: Error) => this.onError(port, err));
    this.port = port;
    this.opening = new Promise<void>((resolve) => {
      port.open((err) => {
        this.opening = undefined;
        if (err) {
          if (this.port === port) this.port = undefined;
          this.openFailed(err);
          resolve();
        } else if (this.stopped || this.port !== port) {
          closePort(port).then(resolve, resolve);
        } else {
          this.opened(port);
          resolve();
        }
      });
    });
  }

  private opened(port: SerialPort): void {
    this.ctx.log.info(
      { port: this.config.port, baud_rate: this.config.baud_rate, failed_attempts: this.failedOpens },
      this.everOpened ? 'serial port reopened' : 'serial port opened',
    );
    if (this.everOpened) this.counters.reopens++;
    this.everOpened = true;
    this.lastOpenError = undefined;
    this.failedOpens = 0;
    this.framer.reset();
    this.firstLine = 'undecided';
    this.openedAtMs = performance.now();
    port.on('data', (chunk: Buffer) => this.onData(port, chunk));
    port.on('close', (err?: Error | null) => this.onClose(port, err ?? undefined));
    // A read of zero bytes ends the stream without closing the port; treat it as a lost device.
    port.on('end', () => {
      if (this.port === port && port.isOpen) port.close();
    });
  }

  private openFailed(err: Error): void {
    this.counters.open_errors++;
    this.failedOpens++;
    const delayMs = this.backoff.nextDelayMs();
    const message = err.message;
    if (message !== this.lastOpenError) {
      this.lastOpenError = message;
      const details = { port: this.config.port, err: message, retry_ms: delayMs, hint: hintFor(message) };
      if (/No such file|ENOENT/i.test(message)) {
        // Listing reads /dev only (no udev, no child process), so it cannot fail on a minimal system.
        void listSerialDevices().then((candidates) => {
          if (!this.stopped) this.ctx.log.warn({ ...details, candidates }, 'serial port not found; retrying until it appears');
        });
      } else this.ctx.log.warn(details, 'cannot open serial port; retrying');
    } else this.ctx.log.debug({ port: this.config.port, err: message, retry_ms: delayMs }, 'serial port still cannot be opened');
    this.scheduleReconnect(delayMs);
  }

  private onClose(port: SerialPort, err: Error | undefined): void {
    if (this.port !== port) return; // closed by stop(), or a port already replaced
    this.port = undefined;
    if (this.framer.reset()) this.counters.partial++;
    if (this.stopped) return;
    const delayMs = this.backoff.nextDelayMs();
    this.ctx.log.warn({ port: this.config.port, err: err?.message, retry_ms: delayMs }, 'serial port closed; reopening');
    this.scheduleReconnect(delayMs);
  }

  private onError(port: SerialPort, err: Error): void {
    if (this.port !== port) return;
    // Errors of an open port are followed by 'close' (handled there); log the cause for troubleshooting.
    this.ctx.log.debug({ port: this.config.port, err: err.message }, 'serial port error');
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  // ------------------------------------------------------------------------------------ lines

  private onData(port: SerialPort, chunk: Buffer): void {
    if (this.port !== port || this.stopped) return;
    this.counters.bytes += chunk.length;
    if (this.firstLine === 'undecided') {
      this.firstLine = performance.now() - this.openedAtMs < this.settleMs ? 'drop' : 'keep';
      // Data flows: the device is really there, so a later loss starts again from the short delay.
      this.backoff.reset();
    }
    const nowUs = Date.now() * 1000;
    const points: Point[] = [];
    this.framer.push(chunk, (frame) => this.onFrame(frame, nowUs, points));
    if (points.length > 0) this.write(points);
  }

  private onFrame(frame: Frame, nowUs: number, out: Point[]): void {
    if (frame.kind === 'too_long') {
      this.firstLine = 'keep';
      this.counters.too_long++;
      this.errors++;
      this.logGarbage('line longer than max_line_length', `${this.config.max_line_length} bytes`);
      return;
    }
    let text: string;
    try {
      text = this.utf8.decode(frame.bytes);
    } catch {
      if (this.dropFragment(frame.bytes.length > 0)) return;
      this.counters.lines++;
      // Shown as hex: the bytes are not text, and a baud-rate mismatch is recognisable in hex.
      this.garbage('not valid UTF-8 (wrong baud rate, parity or data bits?)', `hex:${frame.bytes.subarray(0, LOG_LINE_CHARS / 2).toString('hex')}`);
      return;
    }
    text = trimLineBreaks(text);
    if (this.dropFragment(text.trim() !== '')) return;
    if (text.trim() === '') return;
    this.counters.lines++;
    if (CONTROL.test(text)) {
      this.garbage('control characters in the line (line noise, or wrong baud rate?)', text);
      return;
    }
    let point: Point | null;
    try {
      point = this.decode(text, this.receiptUs(nowUs));
    } catch (err) {
      this.garbage((err as Error).message, text);
      return;
    }
    if (point) out.push(point);
  }

  /**
   * The time of receipt of a line. Lines read together share one clock reading, and the ring keeps one
   * point per series and time (a later write replaces an earlier one), so each line gets its own µs,
   * strictly after the previous line's. A clock stepped back by more than a second is followed, not outrun.
   */
  private receiptUs(nowUs: number): number {
    const last = this.lastReceiptUs;
    const t = nowUs > last || last - nowUs > 1_000_000 ? nowUs : last + 1;
    this.lastReceiptUs = t;
    return t;
  }

  /** Applies the first-line rule; true when this line was the fragment and is dropped. */
  private dropFragment(counts: boolean): boolean {
    if (this.firstLine !== 'drop') return false;
    this.firstLine = 'keep';
    if (!counts) return true;
    this.counters.lines++;
    this.counters.partial++;
    this.ctx.log.debug({ port: this.config.port }, 'first line after opening dropped: the device was mid-line');
    return true;
  }

  private garbage(reason: string, text: string): void {
    this.counters.garbage++;
    this.errors++;
    this.logGarbage(reason, text);
  }

  private logGarbage(reason: string, text: string): void {
    const suppressed = this.garbageLog.pass(Date.now());
    if (suppressed === undefined) return;
    const line = text.length > LOG_LINE_CHARS ? text.slice(0, LOG_LINE_CHARS) + '…' : text;
    this.ctx.log.warn({ port: this.config.port, reason, line, ...(suppressed > 0 ? { suppressed } : {}) }, 'line skipped');
  }

  private write(points: Point[]): void {
    this.points += points.length;
    this.lastPointMs = Date.now();
    this.ctx.sink.write(points).catch((err: unknown) => {
      // Serial data cannot be asked for again: count it (the ring counted the drop) and go on.
      this.refused += points.length;
      const suppressed = this.refusedLog.pass(Date.now());
      if (suppressed !== undefined) this.ctx.log.warn({ err: (err as Error).message, points: points.length, ...(suppressed > 0 ? { suppressed } : {}) }, 'store refused points');
    });
  }
}

/** C0 controls (tab excepted) and DEL: what line noise and a wrong baud rate produce. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point of this pattern
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;

function trimLineBreaks(text: string): string {
  let s = 0;
  let e = text.length;
  while (s < e && (text.charCodeAt(s) === 10 || text.charCodeAt(s) === 13)) s++;
  while (e > s && (text.charCodeAt(e - 1) === 10 || text.charCodeAt(e - 1) === 13)) e--;
  return s === 0 && e === text.length ? text : text.slice(s, e);
}

function closePort(port: SerialPort): Promise<void> {
  return new Promise((resolve) => {
    if (!port.isOpen) return resolve();
    // A close error (already closed by a disconnect) leaves nothing to release.
    port.close(() => resolve());
  });
}

function hintFor(message: string): string | undefined {
  if (/Permission denied|EACCES/i.test(message)) return 'the user running sluice needs access to the device: add it to the dialout group (SupplementaryGroups=dialout under systemd)';
  if (/lock|Resource temporarily unavailable/i.test(message)) return 'another process holds the port (a second sluice input, ModemManager, a terminal program)';
  if (/No such file|ENOENT/i.test(message)) return 'check the cable and the name; /dev/serial/by-id/ names stay stable across reboots and replugging';
  if (/ioctl|baud/i.test(message)) return 'the device is not a serial port, or does not support this baud rate';
  return undefined;
}

/** Serial-looking device names, from /dev only: works without udev and never spawns a process. */
export async function listSerialDevices(): Promise<string[]> {
  const found: string[] = [];
  const scan = async (dir: string, keep: (name: string) => boolean): Promise<void> => {
    try {
      for (const name of await readdir(dir)) if (keep(name)) found.push(`${dir}/${name}`);
    } catch {
      // A missing directory (no /dev/serial without udev or without USB adapters) just lists nothing.
    }
  };
  await scan('/dev/serial/by-id', () => true);
  // ttyS* is left out: most PCs have 32 of them whether or not a UART is behind any.
  await scan('/dev', (name) => /^(ttyUSB|ttyACM|ttyAMA|ttyXRUSB|ttymxc|ttySC|ttyO|rfcomm|serial)\d+$/.test(name));
  return found.sort().slice(0, 32);
}
