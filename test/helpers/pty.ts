// A pseudo-terminal pair made by socat: a real serial-like device for drivers to open (`dev`) and its
// other end (`peer`) for the test to write to, as a sensor would. socat is required, not optional: a
// machine without it fails the test with a message that says so, rather than skipping it.
import type { ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnPeer } from './peer.js';

export interface PtyPair {
  /** Path the driver opens (a symlink to a /dev/pts/N that changes when socat restarts). */
  readonly dev: string;
  /** Path the test writes to or reads from. */
  readonly peer: string;
  /** Writes to the peer end (opened on first use and kept open, so writes stay in order). */
  write(data: string | Uint8Array): void;
  /** Reads what the driver wrote to `dev`, waiting up to timeoutMs for `bytes` bytes. */
  read(bytes: number, timeoutMs?: number): Promise<Buffer>;
  /** Ends socat (as unplugging the device would) and waits until its links are gone. */
  kill(): Promise<void>;
  /** Starts socat again with the same link paths (the device comes back, on a new pts). */
  restart(): Promise<void>;
  /** Kills socat; for afterEach. Idempotent. */
  close(): Promise<void>;
}

/** Starts `socat pty,raw,echo=0,link=DIR/NAME pty,raw,echo=0,link=DIR/NAME-peer` and waits for both links. */
export async function startPtyPair(dir: string, name = 'tty'): Promise<PtyPair> {
  const dev = join(dir, name);
  const peer = join(dir, `${name}-peer`);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let fd: number | undefined;
  let stderr = '';

  const launch = async (): Promise<void> => {
    const c = spawnPeer('socat', ['-d', '-d', `pty,raw,echo=0,link=${dev}`, `pty,raw,echo=0,link=${peer}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let failure: Error | undefined;
    exited = new Promise<void>((resolve) => {
      c.once('error', (err: NodeJS.ErrnoException) => {
        failure = err.code === 'ENOENT' ? new Error('setpriv (util-linux) is not installed; the serial tests need it') : err;
        resolve();
      });
      c.once('exit', () => resolve());
    });
    const deadline = Date.now() + 10_000;
    while (!(existsSync(dev) && existsSync(peer))) {
      if (failure) throw failure;
      // A missing socat shows here: setpriv says it cannot execute it.
      if (c.exitCode !== null) throw new Error(`socat exited with ${c.exitCode} (apt-get install socat if it is missing): ${stderr}`);
      if (Date.now() > deadline) {
        // The caller gets no pair to close, so this socat is ended here.
        c.kill('SIGKILL');
        throw new Error(`socat did not create ${dev} and ${peer} within 10 s: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const closeFd = (): void => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };

  const stopSocat = async (): Promise<void> => {
    closeFd();
    const c = child;
    child = undefined;
    if (c && c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await exited;
    }
    // socat removes its links on exit; wait so a restart cannot race with the removal.
    const deadline = Date.now() + 5_000;
    while ((existsSync(dev) || existsSync(peer)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };

  const peerFd = (): number => {
    // O_NOCTTY: the pty must not become the test process's controlling terminal.
    fd ??= openSync(peer, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
    return fd;
  };

  await launch();
  return {
    dev,
    peer,
    write(data) {
      const fdNow = peerFd();
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.length) {
        try {
          off += writeSync(fdNow, buf, off, buf.length - off);
        } catch (err) {
          // Non-blocking: a full pty buffer says EAGAIN; wait for socat to drain it.
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
        }
      }
    },
    async read(bytes, timeoutMs = 5_000) {
      const fdNow = peerFd();
      const out = Buffer.alloc(bytes);
      let got = 0;
      const deadline = Date.now() + timeoutMs;
      while (got < bytes) {
        try {
          got += readSync(fdNow, out, got, bytes - got, null);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
          if (Date.now() > deadline) throw new Error(`read ${got} of ${bytes} bytes from ${peer} within ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      return out;
    },
    kill: stopSocat,
    async restart() {
      await stopSocat();
      await launch();
    },
    close: stopSocat,
  };
}
