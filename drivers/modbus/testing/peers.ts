// Real peers for the modbus tests and benchmark: a pymodbus server (TCP, RTU over TCP, or RTU on a
// pty), socat pty pairs, and a loopback TCP relay that stands where a serial converter would. Nothing
// here skips: a missing python3-pymodbus or socat fails the test that needs it.
//
// Every process started here is tracked until it exits: `stopPeers()` (each test file's afterAll)
// ends those still running, also after a failed test or a start that failed half-way, and the test
// process kills them when it exits. Both also die with the process that started them (PR_SET_PDEATHSIG),
// so a test worker that is killed outright leaves no socat or pymodbus behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../../src/config/index.js';
import type { InputContext, Logger } from '../../../src/core/component.js';
import type { Point } from '../../../src/core/point.js';
import type { ModbusInputConfig } from '../schema.js';

/** Debian's python3 with python3-pymodbus (the pyenv python3 on PATH has no pymodbus). */
export const PYTHON = '/usr/bin/python3';
export const SERVER_SCRIPT = fileURLToPath(new URL('./server.py', import.meta.url));

export type TableName = 'hr' | 'ir' | 'co' | 'di';

const children = new Set<ChildProcess>();

function track<P extends ChildProcess>(proc: P): P {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  proc.once('error', () => children.delete(proc));
  return proc;
}

function alive(proc: ChildProcess): boolean {
  return proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined;
}

/** Ends `proc` (SIGTERM, SIGKILL after `graceMs`) and waits until it has exited. */
async function endProcess(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 2000): Promise<void> {
  if (!alive(proc)) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Stops every peer started here that is still running; for afterAll (and afterEach where peers are per test). */
export async function stopPeers(): Promise<void> {
  await Promise.all([...children].map((c) => endProcess(c)));
}

/** The peers started here that are still running (pids), for a test that checks nothing was left behind. */
export function runningPeers(): number[] {
  return [...children].filter(alive).map((c) => c.pid!);
}

process.once('exit', () => {
  for (const c of children) if (alive(c)) c.kill('SIGKILL');
});

/**
 * Runs `command` so that the kernel sends it SIGTERM when the process that started it dies (however it
 * dies): python3 sets PR_SET_PDEATHSIG (prctl option 1), which survives the exec into `command`.
 */
function spawnBound(command: string, args: string[], stdio: ['pipe' | 'ignore', 'pipe' | 'ignore', 'pipe' | 'ignore']): ChildProcess {
  const bind = 'import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); os.execvp(sys.argv[1], sys.argv[1:])';
  return track(spawn(PYTHON, ['-c', bind, command, ...args], { stdio }));
}

export interface ServerSpec {
  tcp?: { host?: string; port?: number };
  rtu?: { port: string; baudrate?: number; parity?: 'N' | 'E' | 'O'; bytesize?: number; stopbits?: number };
  /** Per unit id, per table: start address → values. */
  units: Record<string, Partial<Record<TableName, Record<string, (number | boolean)[]>>>>;
  fail?: Record<string, Partial<Record<TableName, number[]>>>;
  missing?: 'ignore' | 'gateway';
  delay_ms?: number;
  /** Per unit id: a delay before each of its answers (the server answers one request at a time). */
  slow_ms?: Record<string, number>;
  /** Per unit id, per table: address → the exception code a read that includes it answers. */
  exceptions?: Record<string, Partial<Record<TableName, Record<string, number>>>>;
  /** TCP, per unit id: a copy of each answer under a wrong transaction id, before the right one or instead of it. */
  wrong_tid?: Record<string, 'before' | 'instead'>;
  /** With `tcp`: RTU frames on the socket (no MBAP), as a serial-to-Ethernet converter carries them. */
  framer?: 'rtu';
}

export interface PymodbusServer {
  port: number;
  proc: ChildProcess;
  set(unit: number, table: TableName, address: number, values: (number | boolean)[]): Promise<void>;
  /** From now on, a read that includes `address` answers exception `code` (null: answers normally again). */
  raise(unit: number, table: TableName, address: number, code: number | null): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startPymodbus(spec: ServerSpec): Promise<PymodbusServer> {
  // server.py binds itself to this process (PR_SET_PDEATHSIG) and also exits when its stdin closes.
  const proc = track(spawn(PYTHON, [SERVER_SCRIPT, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  let stderr = '';
  let stdout = '';
  const acks: (() => void)[] = [];
  const command = (cmd: object) =>
    new Promise<void>((ack) => {
      acks.push(ack);
      proc.stdin.write(JSON.stringify(cmd) + '\n');
    });
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const started = new Promise<PymodbusServer>((resolve, reject) => {
    proc.once('error', (err) => reject(new Error(`cannot start ${PYTHON} (python3-pymodbus is required): ${err.message}`)));
    proc.once('exit', (code, signal) => reject(new Error(`pymodbus server exited (${code ?? signal}) before it was ready:\n${stderr}`)));
    proc.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      let nl;
      while ((nl = stdout.indexOf('\n')) >= 0) {
        const line = stdout.slice(0, nl);
        stdout = stdout.slice(nl + 1);
        const msg = JSON.parse(line) as { ready?: boolean; port?: number | string; ok?: boolean };
        if (msg.ready) {
          resolve({
            port: typeof msg.port === 'number' ? msg.port : 0,
            proc,
            set: (unit, table, address, values) => command({ set: { unit, table, address, values } }),
            raise: (unit, table, address, code) => command({ raise: { unit, table, address, code } }),
            stop: async (sig: NodeJS.Signals = 'SIGKILL') => {
              if (alive(proc)) proc.kill(sig);
              await exited;
            },
          });
        } else if (msg.ok) acks.shift()?.();
      }
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`pymodbus server not ready within 15 s:\n${stderr}`)), 15_000);
  });
  try {
    return await Promise.race([started, deadline]);
  } catch (err) {
    // A server that failed to come up is not left running.
    await endProcess(proc, 'SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export interface PtyPair {
  /** The agent's end. */
  a: string;
  /** The device's end (pymodbus). */
  b: string;
  proc: ChildProcess;
  /** socat's stderr: with `trace`, every transfer with its direction (">" a→b, "<" b→a). */
  log(): string;
  stop(): Promise<void>;
}

/** A pseudo-terminal pair joined by socat, as a null-modem cable between the agent and a device. */
export async function startPtyPair(dir: string, options: { trace?: boolean; name?: string } = {}): Promise<PtyPair> {
  const name = options.name ?? 'pty';
  const a = `${dir}/${name}-a`;
  const b = `${dir}/${name}-b`;
  const args = ['-d', '-d', ...(options.trace ? ['-x', '-v'] : []), `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`];
  const proc = spawnBound('socat', args, ['ignore', 'ignore', 'pipe']);
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
  const spawnError = new Promise<never>((_, reject) => proc.once('error', (err) => reject(new Error(`cannot start socat: ${err.message}`))));
  spawnError.catch(() => undefined); // raced below; unobserved once the pair is up
  const deadline = Date.now() + 5000;
  try {
    for (;;) {
      if (existsSync(a) && existsSync(b) && stderr.includes('starting data transfer loop')) break;
      if (proc.exitCode !== null) throw new Error(`socat exited (${proc.exitCode}):\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`socat did not create ${a} and ${b}:\n${stderr}`);
      await Promise.race([new Promise((r) => setTimeout(r, 20)), spawnError]);
    }
  } catch (err) {
    await endProcess(proc, 'SIGKILL');
    throw err;
  }
  return {
    a,
    b,
    proc,
    log: () => stderr,
    stop: () => endProcess(proc),
  };
}

export interface Relay {
  port: number;
  /** Connections accepted so far (a reconnecting input opens a new one). */
  readonly connections: number;
  /** What the relay carried, in order: ">" input → peer, "<" peer → input (injected bytes not included). */
  readonly wire: { dir: '>' | '<'; bytes: Buffer }[];
  /** Writes `bytes` to the input as if they came from the peer: line noise passed on by a converter. */
  inject(bytes: Buffer): void;
  /** While on, carries nothing either way and keeps the connections open: a peer gone without a FIN. */
  silence(on: boolean): void;
  close(): Promise<void>;
}

/**
 * A TCP relay on loopback between the input and a peer, standing where a serial-to-Ethernet converter
 * stands: it records the wire, and can add noise or go silent. Closes the input's side when the peer's
 * closes, and the other way round.
 */
export async function startRelay(targetPort: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const clients = new Set<Socket>();
  const wire: Relay['wire'] = [];
  let connections = 0;
  let silent = false;
  const server = createServer((client) => {
    connections++;
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined); // the close that follows ends the pair
      s.on('close', () => {
        sockets.delete(s);
        clients.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    clients.add(client);
    client.on('data', (chunk: Buffer) => {
      if (silent) return;
      wire.push({ dir: '>', bytes: chunk });
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (silent) return;
      wire.push({ dir: '<', bytes: chunk });
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get connections() {
      return connections;
    },
    wire,
    inject: (bytes) => {
      for (const c of clients) c.write(bytes);
    },
    silence: (on) => {
      silent = on;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps what it is told, for assertions on "logged once per state change". */
export function recordingLogger(entries: LogEntry[] = [], bindings: Record<string, unknown> = {}): Logger & { entries: LogEntry[] } {
  const at =
    (level: LogEntry['level']) =>
    (obj: object, msg = ''): void => {
      entries.push({ level, obj: { ...bindings, ...(obj as Record<string, unknown>) }, msg });
    };
  return {
    entries,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => recordingLogger(entries, { ...bindings, ...more }),
  };
}

export interface StoredPoint extends Point {
  /** When the sink received it (ms). */
  writtenMs: number;
}

/** An input context whose sink keeps the points (the ring's contract: resolves = durable). */
export function testContext(id = 'plc'): InputContext & { points: StoredPoint[]; log: ReturnType<typeof recordingLogger> } {
  const points: StoredPoint[] = [];
  return {
    id,
    agentId: 'test',
    dataDir: '/nonexistent',
    log: recordingLogger(),
    points,
    sink: {
      write: (batch: Point[]) => {
        const now = Date.now();
        for (const p of batch) points.push({ ...p, writtenMs: now });
        return Promise.resolve();
      },
    },
  };
}

/** Decodes an input's YAML through the real config loader (defaults, units, checks). */
export function modbusConfig(id: string, yamlLines: string[]): ModbusInputConfig {
  const text = ['version: 1', 'inputs:', `  ${id}:`, '    type: modbus', ...yamlLines.map((l) => `    ${l}`)].join('\n') + '\n';
  const r = loadConfig({ text, file: 'test.yaml', env: {}, hostname: 'test' });
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`).join('\n'));
  return r.config.inputs[id] as ModbusInputConfig;
}

/** Registers holding `values` encoded big-endian, as a device would hold them. */
export function words(write: (b: Buffer) => void, bytes: number): number[] {
  const b = Buffer.alloc(bytes);
  write(b);
  const out: number[] = [];
  for (let i = 0; i < bytes; i += 2) out.push(b.readUInt16BE(i));
  return out;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
