// The installed binary is the launcher: `sluice run` first looks for a staged binary
// (DATA_DIR/fleet/binary.json) and, when there is one, runs it as a child with the same arguments,
// stdio inherited and signals forwarded, and exits with its exit status. Node has no exec(), so the
// launcher stays as the parent; it does nothing while the child runs. Without a staged binary it
// returns null and the agent runs in this process.
//
// Which binary: a candidate (staged, not yet committed) while it has starts left, else the committed
// current one, else the installed one (this process). Each start of a candidate is counted in
// binary.json before the spawn, so a binary that crashes before it can write anything still uses up
// its starts; after MAX_STARTS starts without a commit (or once it gave up on itself) it is abandoned:
// deleted, its sha256 remembered so the same build is never installed again, and the rollback recorded
// for status. The installed binary is never replaced: it is always there to fall back to.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import type { Logger } from '../core/component.js';
import { releaseStartupPages } from '../sea/pages.js';
import { FleetFiles, MAX_STARTS, fingerprint, type BinaryState, type CandidateBinary, type StagedBinary } from './state.js';

/** Set in the child's environment: the serial of the staged binary it is. */
export const CHILD_ENV = 'SLUICE_FLEET_BINARY';

/** The serial of the staged binary this process is, or null for the installed one. */
export function runningSerial(): number | null {
  const v = process.env[CHILD_ENV];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
}

function sameInstall(a: BinaryState['installed'], b: BinaryState['installed']): boolean {
  return a !== null && b !== null && a.path === b.path && a.size === b.size && a.mtime_ms === b.mtime_ms && a.ino === b.ino;
}

/** Removes staged binaries that are neither `keep`. */
export function pruneStaged(binDir: string, keep: readonly (StagedBinary | null | undefined)[]): void {
  const kept = new Set(keep.filter((b): b is StagedBinary => !!b).map((b) => b.path));
  let names: string[];
  try {
    names = readdirSync(binDir);
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(binDir, name);
    if (!kept.has(path)) rmSync(path, { force: true });
  }
}

export function abandonCandidate(state: BinaryState, reason: string, nowMs = Date.now()): CandidateBinary | null {
  const c = state.candidate;
  if (!c) return null;
  state.rollback = { serial: c.serial, sha256: c.sha256, reason, time_ms: nowMs };
  if (!state.abandoned.includes(c.sha256)) state.abandoned.push(c.sha256);
  state.candidate = null;
  rmSync(c.path, { force: true });
  return c;
}

function exitDescription(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

/**
 * Runs the staged binary when there is one; resolves to its exit status, or null when this process
 * should run the agent itself.
 */
export async function runStagedBinary(local: Config, dataDir: string, argv: string[], log: Logger): Promise<number | null> {
  // The child itself, and gateways that are not fleet-managed (an operator took over), run here.
  if (runningSerial() !== null || local.fleet.url === undefined) return null;
  const files = new FleetFiles(dataDir);
  let state: BinaryState | undefined;
  try {
    state = files.readBinary();
  } catch (err) {
    log.error({ err: (err as Error).message }, 'staged binary state unreadable; running the installed binary');
    return null;
  }
  if (!state) return null;
  const installed = fingerprint(process.execPath);
  if (state.installed && !sameInstall(state.installed, installed) && (state.current || state.candidate)) {
    // An operator installed a binary by hand since the fleet staged one: theirs wins.
    log.warn({ installed: process.execPath }, 'the installed binary changed since a fleet binary was staged; running the installed one and dropping the staged ones');
    state.current = null;
    state.candidate = null;
    pruneStaged(files.paths.bin, []);
  }
  state.installed = installed;

  const c = state.candidate;
  if (c && (c.abandon !== undefined || c.starts >= MAX_STARTS || !existsSync(c.path))) {
    const reason = c.abandon ?? (existsSync(c.path) ? `it did not run healthy for fleet.commit_after in ${MAX_STARTS} starts (last run: ${c.last_exit ?? 'unknown'})` : `the staged file ${c.path} is missing`);
    abandonCandidate(state, reason);
    const back = state.current ? `staged serial ${state.current.serial}` : `the installed binary ${process.execPath}`;
    log.error({ serial: c.serial, sha256: c.sha256, reason }, `binary of serial ${c.serial} rolled back: ${reason}; running ${back}`);
  }
  let target: StagedBinary | null = null;
  if (state.candidate) {
    state.candidate.starts++;
    target = state.candidate;
    log.info({ serial: target.serial, path: target.path, start: state.candidate.starts, of: MAX_STARTS }, `running staged binary of serial ${target.serial} (start ${state.candidate.starts} of ${MAX_STARTS} before it must commit)`);
  } else if (state.current && existsSync(state.current.path)) {
    target = state.current;
    log.info({ serial: target.serial, path: target.path }, `running staged binary of serial ${target.serial} (committed)`);
  } else if (state.current) {
    log.warn({ path: state.current.path }, 'the committed staged binary is missing; running the installed one');
    state.current = null;
  }
  // Persisted before the spawn: a binary that takes the machine down still has used up this start.
  files.writeBinary(state);
  if (!target) return null;

  const running = spawnChild(target, argv);
  // From here on the launcher only waits: what it mapped to start is all it holds (src/sea/pages.ts).
  releaseStartupPages(log.child({ component: 'memory' }));
  const result = await running;
  if (state.candidate?.serial === target.serial) {
    // The child may have committed itself or given up meanwhile: read what it wrote.
    const after = files.readBinary();
    if (after?.candidate?.serial === target.serial) {
      after.candidate.last_exit = result.description;
      files.writeBinary(after);
    }
  }
  if (result.description.startsWith('could not start')) log.error({ serial: target.serial, path: target.path }, `staged binary ${result.description}`);
  return result.code;
}

function spawnChild(target: StagedBinary, argv: string[]): Promise<{ code: number; description: string }> {
  return new Promise((resolve) => {
    const child = spawn(target.path, argv, { stdio: 'inherit', env: { ...process.env, [CHILD_ENV]: String(target.serial) } });
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const forward = (signal: NodeJS.Signals) => {
      child.kill(signal);
    };
    for (const s of signals) process.on(s, forward);
    let settled = false;
    const done = (code: number, description: string) => {
      if (settled) return;
      settled = true;
      for (const s of signals) process.off(s, forward);
      resolve({ code, description });
    };
    child.once('error', (err) => done(1, `could not start: ${err.message}`));
    child.once('exit', (code, signal) => {
      const status = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
      done(status, exitDescription(code, signal));
    });
  });
}
