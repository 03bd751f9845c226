// `sluice run` sets its own memory limits, so the agent behaves the same by hand, under npx, as the
// single binary, under systemd, Docker or a Pi image's rc script: the agent runs in a worker thread
// whose V8 heap limits (resourceLimits) come from agent.memory_limit (src/core/memory.ts).
//
// Why a worker thread. V8 fixes its heap limits when the isolate is made: v8.setFlagsFromString at
// run time does not change them (measured), and Node 20 has no execve to restart itself with flags.
// The two ways left, measured at 10k points/s (simulator, 1,000 series, bin/sluice.js, 50 s):
//   Node's defaults                                 RSS 142 MB steady, 163 MB max (97 MB private)
//   worker, old generation 96 MB, young 3 MB        RSS  91 MB steady,  94 MB max (46 MB private)
//   child process with the unit's NODE_OPTIONS
//     and MALLOC_ARENA_MAX=2                        RSS  84 MB steady,  85 MB max (40 MB private)
//     + the parent that waits for it                RSS  40 MB (6 MB private, the rest Node's file pages)
// Both cut the memory by the same private amount; MALLOC_ARENA_MAX, which only a new process can
// get, is worth ~2 MB here. The worker keeps one process: one pid for systemd and supervisors, a
// kill -9 ends everything at once (a child could outlive a killed parent and hold the store), no
// second copy of Node's pages in RSS, and no signal arriving twice (systemd signals every process
// of the unit; a parent would forward it again). A heap that runs out ends the worker with
// ERR_WORKER_OUT_OF_MEMORY, which the main thread logs before it exits 70 for the supervisor to
// restart, where a process would abort in V8. better-sqlite3, serialport and the binary's own addon
// are Node-API addons and load in a worker (the tests and the bench run the agent this way).
//
// The main thread only starts the worker, forwards SIGINT, SIGTERM and SIGHUP to it (signals reach
// only the main thread; the agent's handlers are process.on(...) listeners, which the bridge below
// calls in the worker) and exits with the worker's exit code. SLUICE_AGENT_THREAD=0 runs the agent
// in the main thread with Node's own limits (NODE_OPTIONS then decides), for debugging.
import * as sea from 'node:sea';
import { isMainThread, parentPort, Worker, workerData, type ResourceLimits } from 'node:worker_threads';
import { memoryBudgets } from '../core/memory.js';

/** EX_SOFTWARE: the agent's thread ended without an exit code of its own (out of memory, a crash). */
export const EXIT_AGENT_THREAD_FAILED = 70;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const MARK = 'sluiceAgentThread';

/** Whether `sluice run` should start the agent's thread rather than run the agent here. */
export function wantsAgentThread(): boolean {
  return isMainThread && process.env.SLUICE_AGENT_THREAD !== '0';
}

export function agentResourceLimits(memoryLimitBytes: number): ResourceLimits {
  const b = memoryBudgets(memoryLimitBytes);
  return { maxOldGenerationSizeMb: b.heapOldMb, maxYoungGenerationSizeMb: b.heapYoungMb };
}

/** The code of this program, for the worker: the bundle itself (dist/), or in the single binary its copy among the assets. */
function workerSource(): { source: string | URL; eval: boolean } {
  if (sea.isSea()) {
    // The SEA main script is not a file; build/bin.mjs carries the same bundle as an asset. In an
    // evaluated script __filename is "[worker eval]": the binary's path instead, as in the main thread.
    const bundle = sea.getAsset('sluice.cjs', 'utf8');
    return { source: `globalThis.__filename = ${JSON.stringify(process.execPath)};\n${bundle}`, eval: true };
  }
  return { source: new URL(import.meta.url), eval: false };
}

/** Runs `sluice run` (argv as given to the command line) in the agent's thread; resolves with its exit code. */
export function runInAgentThread(argv: readonly string[], memoryLimitBytes: number): Promise<number> {
  const { source, eval: isEval } = workerSource();
  const worker = new Worker(source, {
    eval: isEval,
    argv: [...argv],
    workerData: { [MARK]: true },
    resourceLimits: agentResourceLimits(memoryLimitBytes),
    // The agent writes its log with synchronous writes to fd 1 (pino); what it writes through
    // process.stdout/stderr goes to this thread's streams.
    stdout: false,
    stderr: false,
  });
  const forward = (signal: NodeJS.Signals) => worker.postMessage({ signal });
  for (const s of SIGNALS) process.on(s, forward);
  return new Promise((resolve) => {
    let failure: Error | undefined;
    worker.on('error', (err) => {
      failure = err;
      const what = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY' ? `the agent ran out of its heap (agent.memory_limit): ${err.message}` : (err.stack ?? String(err));
      process.stderr.write(`sluice: ${what}\n`);
    });
    worker.on('exit', (code) => {
      for (const s of SIGNALS) process.off(s, forward);
      resolve(failure ? EXIT_AGENT_THREAD_FAILED : code);
    });
  });
}

/** In the agent's thread: the main thread's signals arrive as messages and are emitted here as on a process. */
export function bridgeSignals(): void {
  if (isMainThread || !parentPort || (workerData as Record<string, unknown> | null)?.[MARK] !== true) return;
  parentPort.on('message', (m: { signal?: NodeJS.Signals }) => {
    if (m.signal && (SIGNALS as readonly string[]).includes(m.signal)) process.emit(m.signal, m.signal);
  });
  // The bridge must not keep the thread alive once the agent has stopped.
  parentPort.unref();
}
