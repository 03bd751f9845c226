// Starting and stopping a peer server process (influxd, postgres) the same way in every helper.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * Polls `ready` until it answers true; throws with the peer's recent stderr if the process exits first
 * or `timeoutMs` passes.
 */
export async function waitReady(proc: ChildProcess, name: string, ready: () => Promise<boolean>, stderr: () => string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}:\n${stderr()}`);
    try {
      if (await ready()) return;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) throw new Error(`${name} was not ready within ${timeoutMs / 1000} s:\n${stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops a peer with `signal`, and kills it if it has not exited after `killAfterMs`. */
export async function stopPeer(proc: ChildProcess | undefined, signal: NodeJS.Signals, killAfterMs: number): Promise<void> {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Spawns a peer that cannot outlive the test process: `setpriv --pdeathsig KILL` (util-linux, on every
 * Debian) execs the command with the kernel's parent-death signal set, so a test worker that dies —
 * a timeout, a crash, a SIGKILL — takes its peers with it, and no afterEach is needed for that case.
 * setpriv execs in place, so the child's pid, signals and exit status are the peer's own.
 */
export function spawnPeer(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  return spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], options);
}
