// `sluice run` sets its own memory limits, so the agent behaves the same by hand, under npx, as the
// single binary, under systemd, Docker or a Pi image's rc script: it starts itself again with V8's heap
// limits (derived from agent.memory_limit, src/core/memory.ts) in NODE_OPTIONS and MALLOC_ARENA_MAX=2.
//
// Why start again. V8 fixes its heap limits when the isolate is made: v8.setFlagsFromString at run
// time does not change them (measured). Measured at 10k points/s (simulator, 1,000 series,
// bin/sluice.js, 50 s):
//   Node's defaults                                 RSS 142 MB steady, 163 MB max (97 MB private)
//   worker thread, resourceLimits old 96 / young 3  RSS  91 MB steady,  94 MB max (46 MB private)
//   child with the limits and MALLOC_ARENA_MAX=2    RSS  84 MB steady,  85 MB max (40 MB private)
//     + the process that waits for it: an idle Node is RSS 40 MB of which 6 MB private; this one
//       (it has read the config's memory_limit) measured 52 MB / 11.5 MB private under node and
//       40 MB / 15 MB private as the binary. The rest is Node's file pages, shared with the child.
// A worker thread would keep one process, but serialport's addon is not safe in one: with a serial
// input the agent died at the first byte ("FATAL ERROR: HandleScope::HandleScope Entering the V8 API
// without proper locking in place", Node 20.20, by hand and in the binary), and Modbus RTU uses the
// same addon.
//
// How: execve of itself, with the project's own addon (src/sea/pages.c; Node 20 has no
// process.execve): in the single binary from its assets, under node (bin/sluice.js, npx) the one
// `npm install` compiled for that Node (build/addon.mjs). Same pid, no process left waiting: no
// 12–15 MB parent, no file pages mapped twice, and the supervisor's pid is the agent's. If the kernel
// refuses (an arm64 binary under qemu-user without binfmt_misc cannot execute its own file), the
// binary says so once and runs here with Node's defaults rather than not at all.
//
// Under node without the addon (the install had no C compiler or no Node headers): a child with the
// limits, and this process waits for it. So supervisors see one well-behaved service:
// - it forwards SIGINT, SIGTERM and SIGHUP and exits with the child's status (128 + signal when the
//   child died of one), so EXIT_RESTART (75) and config errors (78) reach systemd unchanged;
// - systemd signals every process of the unit, so the child gets SIGTERM twice: run.ts keeps its
//   handlers for the whole stop, and a repeated signal changes nothing;
// - kill -9 of the pid a supervisor knows (the parent) ends the agent as it would a single process:
//   the child sees its IPC channel close and kills itself with SIGKILL at once, no clean stop (a
//   clean stop would outlive the kill and race the next start for the store and the broker session);
// - the pid systemd tracks (Type=exec) is the parent's; `sluice health` is what says the agent is up.
// A V8 heap that runs out aborts the agent (SIGABRT, status 134) and the supervisor restarts it.
// The user's own NODE_OPTIONS come after ours, so an explicit --max-old-space-size still wins.
// SLUICE_OWN_LIMITS=0 runs the agent in this process with Node's defaults, for debugging.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import * as sea from 'node:sea';
import { memoryBudgets } from '../core/memory.js';
import { execSelf } from '../sea/pages.js';

/** Set in the child's environment: the limits are applied, run the agent here. */
const CHILD_ENV = 'SLUICE_LIMITED';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Whether `sluice run` should start itself again with its limits rather than run the agent here. */
export function wantsOwnLimits(): boolean {
  return process.env[CHILD_ENV] !== '1' && process.env.SLUICE_OWN_LIMITS !== '0';
}

/** The V8 flags of a memory limit: old generation in MB, semi-space a third of the young generation. */
export function heapFlags(memoryLimitBytes: number): string[] {
  const b = memoryBudgets(memoryLimitBytes);
  return [`--max-old-space-size=${b.heapOldMb}`, `--max-semi-space-size=${Math.max(1, Math.round(b.heapYoungMb / 3))}`];
}

/** The environment of the agent with its limits: NODE_OPTIONS (the user's after ours) and MALLOC_ARENA_MAX. */
function limitedEnv(memoryLimitBytes: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    [CHILD_ENV]: '1',
    NODE_OPTIONS: [...heapFlags(memoryLimitBytes), process.env.NODE_OPTIONS ?? ''].join(' ').trim(),
    // Fewer malloc arenas: each thread that allocates may otherwise get its own (8 per core).
    MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
  };
}

/**
 * Starts `sluice <argv>` again with the limits. The binary becomes that process (this call does not
 * return) or, when the kernel refuses, resolves with undefined: run the agent here. Under node it
 * resolves with the exit status of the child it waited for.
 */
export function runWithOwnLimits(argv: readonly string[], memoryLimitBytes: number): Promise<number | undefined> {
  const env = limitedEnv(memoryLimitBytes);
  // The binary is its own program; under node, the script (bin/sluice.js or dist/sluice.js) comes first.
  const args = sea.isSea() ? [...argv] : [...process.execArgv, process.argv[1], ...argv];
  let failure: string | undefined;
  try {
    const errno = execSelf(args, env);
    if (errno !== undefined) failure = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`;
  } catch (err) {
    failure = (err as Error).message;
  }
  if (sea.isSea()) {
    process.stderr.write(`sluice: could not start again with the memory limits (${failure ?? 'no addon'}); running with Node's default heap limits\n`);
    return Promise.resolve(undefined);
  }
  // Under node without the addon (npm install could not compile it) this is the way; with it, only
  // when the kernel refused.
  if (failure !== undefined) process.stderr.write(`sluice: could not start again in place with the memory limits (${failure}); starting the agent as a child\n`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const s of SIGNALS) process.on(s, forward);
    const done = (code: number) => {
      for (const s of SIGNALS) process.off(s, forward);
      resolve(code);
    };
    child.once('error', (err) => {
      process.stderr.write(`sluice: cannot start the agent: ${err.message}\n`);
      done(1);
    });
    child.once('exit', (code, signal) => done(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
  });
}

/** In the child: the parent was killed (a clean exit of the parent follows ours), so the agent dies with it. */
export function dieWithParent(): void {
  if (process.env[CHILD_ENV] !== '1' || !process.channel) return;
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGKILL'));
}
