// A real mosquitto broker for tests: its own config, port and persistence directory on loopback,
// started and stopped by the test. There is no fallback: without mosquitto (the Debian package, or
// $MOSQUITTO) the test fails, because an MQTT test that passes without a broker proves nothing.
import type { ChildProcess } from 'node:child_process';
import { spawnPeer } from './peer.js';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const MOSQUITTO_BIN = process.env.MOSQUITTO ?? '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  /** Lines for the listener (after `listener PORT 127.0.0.1`), e.g. `certfile …`, `require_certificate true`. */
  listener?: string[];
  /** Global lines, e.g. `max_inflight_messages 5`, `password_file …`. `allow_anonymous true` unless set here. */
  global?: string[];
  /** Keep sessions and queued messages on disk across restart() (mosquitto `persistence true`). */
  persistence?: boolean;
  /** Log every packet (log_type all), for tests that assert what the broker sent and received. */
  verbose?: boolean;
}

export interface Mosquitto {
  readonly port: number;
  /** mqtt://127.0.0.1:PORT (or mqtts:// when the listener has a certfile). */
  readonly url: string;
  /** The broker's directory: config, persistence file; free for test files (certificates, passwords). */
  readonly dir: string;
  /** The broker's log so far. */
  log(): string;
  /** Resolves once `pattern` has matched `count` lines of the log. */
  waitForLog(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
  /** Count of log lines matching `pattern`. */
  countLog(pattern: RegExp): number;
  /** Stops and starts the broker on the same port with the same config (and persistence file). */
  restart(): Promise<void>;
  /** SIGTERM, wait for exit; the directory is removed unless `keepDir`. */
  stop(options?: { keepDir?: boolean }): Promise<void>;
}

import { freePort } from './http.js';

export { freePort };

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  if (!existsSync(MOSQUITTO_BIN)) {
    throw new Error(`mosquitto not found at ${MOSQUITTO_BIN}: install the Debian package "mosquitto" (or set $MOSQUITTO)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mosquitto-'));
  let port = 0;
  let logText = '';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const tls = (options.listener ?? []).some((l) => /^\s*certfile\s/.test(l));

  const writeConfig = (): string => {
    const file = join(dir, 'mosquitto.conf');
    const global = options.global ?? [];
    const lines = [
      // Running as root, mosquitto would switch to user "mosquitto", who cannot write our temp dir.
      `user ${userInfo().username}`,
      `persistence ${options.persistence ? 'true' : 'false'}`,
      `persistence_location ${dir}/`,
      'autosave_interval 1',
      'log_dest stderr',
      'log_timestamp false',
      ...(options.verbose ? ['log_type all'] : ['log_type error', 'log_type warning', 'log_type notice', 'log_type information']),
      ...(global.some((l) => /^\s*(allow_anonymous|password_file)\b/.test(l)) ? [] : ['allow_anonymous true']),
      ...global,
      `listener ${port} 127.0.0.1`,
      ...(options.listener ?? []),
    ];
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  };

  const launch = async (): Promise<void> => {
    const file = writeConfig();
    const proc = spawnPeer(MOSQUITTO_BIN, ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    const append = (chunk: Buffer): void => {
      logText += chunk.toString('utf8');
    };
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    let gone = false;
    exited = new Promise((resolve) => proc.once('exit', () => {
      gone = true;
      resolve();
    }));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (gone) throw new Error(`mosquitto exited at start (port ${port}):\n${logText}`);
      if (await canConnect(port)) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within 10 s:\n${logText}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const kill = async (): Promise<void> => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child?.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  // Another process may take the port between freePort() and the bind: try a few.
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      await kill();
      if (attempt >= 2) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const countLog = (pattern: RegExp): number => logText.split('\n').filter((l) => pattern.test(l)).length;
  return {
    port,
    url: `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    dir,
    log: () => logText,
    countLog,
    async waitForLog(pattern, count = 1, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (countLog(pattern) < count) {
        if (Date.now() > deadline) throw new Error(`mosquitto log: ${countLog(pattern)} of ${count} lines match ${pattern}:\n${logText.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async restart() {
      await kill();
      await launch();
    },
    async stop(opts = {}) {
      await kill();
      if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
