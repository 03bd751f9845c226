// The fleet's files in the data directory, and the state that survives restarts:
//
//   DATA_DIR/fleet/config.yaml        the config applied from the fleet (runs instead of -c FILE's
//                                     sections, see boot.ts), written atomically
//   DATA_DIR/fleet/config.yaml.prev   the one before it: what a failed health window reverts to
//   DATA_DIR/fleet/state.json         serials, ETag, the config transaction, the last error (the agent's)
//   DATA_DIR/fleet/binary.json        staged binaries: current, candidate with its start counter,
//                                     the last rollback (the launcher's and the agent's, never at once)
//   DATA_DIR/fleet/bin/sluice-<serial>  staged binaries (the installed one is never touched)
import { existsSync, linkSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir, readJsonFile, readTextFile, writeFileAtomic, writeJsonFile } from './files.js';
import { sha256Hex, type Arch } from './manifest.js';

/** A new config or binary gets this many process starts to become healthy before it is abandoned. */
export const MAX_STARTS = 3;

export interface FleetPaths {
  dir: string;
  config: string;
  configPrev: string;
  state: string;
  binary: string;
  bin: string;
}

export function fleetPaths(dataDir: string): FleetPaths {
  const dir = join(dataDir, 'fleet');
  return {
    dir,
    config: join(dir, 'config.yaml'),
    configPrev: join(dir, 'config.yaml.prev'),
    state: join(dir, 'state.json'),
    binary: join(dir, 'binary.json'),
    bin: join(dir, 'bin'),
  };
}

export interface AppliedConfig {
  serial: number;
  sha256: string;
  /** pending: inside its health window (commit_after); committed: kept. */
  state: 'pending' | 'committed';
  /** Process starts while pending; a config that needs a restart, or one the agent dies of, counts them. */
  starts: number;
  applied_ms: number;
  /** Serial of config.yaml.prev, or null when reverting means going back to the local file. */
  previous_serial: number | null;
  /** What its health window judges (health.ts): inputs healthy before it or started by it, outputs it started. */
  judged?: { inputs: string[]; outputs: string[] };
  /** A binary of the same manifest, staged once this config is committed. */
  then_binary?: BinaryOrder;
}

/** A manifest's binary for this architecture, its url resolved against the manifest's. */
export interface BinaryOrder {
  serial: number;
  arch: Arch;
  url: string;
  sha256: string;
}

export interface FleetState {
  /** The highest authentic manifest serial acted on (applied, refused for its content, reverted); never retried. */
  serial: number | null;
  /** sha256 of that manifest's body: the same serial with other content is an operator mistake worth saying. */
  manifest_sha256: string | null;
  etag: string | null;
  /** The fleet config in config.yaml; null when the local config runs. */
  config: AppliedConfig | null;
  /** A binary not staged yet because its download failed: tried again at each poll, a few times. */
  binary_pending: (BinaryOrder & { failures: number }) | null;
  last_error: string | null;
  last_error_ms: number | null;
  last_change: string | null;
  last_change_ms: number | null;
  /** The last reload of the local config file that was refused (invalid); cleared by a good one. */
  local_error: { message: string; errors: string[]; time_ms: number } | null;
}

export interface StagedBinary {
  serial: number;
  path: string;
  sha256: string;
  staged_ms: number;
}

export interface CandidateBinary extends StagedBinary {
  /** Starts so far; the launcher counts each one before it spawns. */
  starts: number;
  /** Inputs that were healthy when it was staged: they must be healthy under the new binary too. */
  healthy_inputs: string[];
  /** How its last run ended (the launcher writes it). */
  last_exit?: string;
  /** Set by the candidate itself when it judged itself unhealthy: abandon without further starts. */
  abandon?: string;
}

export interface BinaryState {
  /** The installed binary (the launcher) when the state was written; a different one means an operator installed a new version. */
  installed: { path: string; size: number; mtime_ms: number; ino: number } | null;
  /** The committed staged binary the launcher runs; null: the installed one runs itself. */
  current: StagedBinary | null;
  candidate: CandidateBinary | null;
  rollback: { serial: number; sha256: string; reason: string; time_ms: number } | null;
  /** sha256 of binaries rolled back: never installed again. */
  abandoned: string[];
}

export function emptyState(): FleetState {
  return {
    serial: null,
    manifest_sha256: null,
    etag: null,
    config: null,
    binary_pending: null,
    last_error: null,
    last_error_ms: null,
    last_change: null,
    last_change_ms: null,
    local_error: null,
  };
}

export function emptyBinaryState(): BinaryState {
  return { installed: null, current: null, candidate: null, rollback: null, abandoned: [] };
}

export class FleetFiles {
  readonly paths: FleetPaths;

  constructor(readonly dataDir: string) {
    this.paths = fleetPaths(dataDir);
  }

  readState(): FleetState {
    return { ...emptyState(), ...(readJsonFile<Partial<FleetState>>(this.paths.state) ?? {}) };
  }

  hasState(): boolean {
    return existsSync(this.paths.state);
  }

  writeState(state: FleetState): void {
    writeJsonFile(this.paths.state, state);
  }

  readBinary(): BinaryState | undefined {
    const b = readJsonFile<Partial<BinaryState>>(this.paths.binary);
    return b ? { ...emptyBinaryState(), ...b } : undefined;
  }

  writeBinary(state: BinaryState): void {
    writeJsonFile(this.paths.binary, state);
  }

  readConfigText(): string | undefined {
    return readTextFile(this.paths.config);
  }

  /**
   * Makes `text` the fleet config; the one it replaces becomes config.yaml.prev (none: the local file is
   * what a revert goes back to). At every moment config.yaml is either the old or the new file.
   */
  installConfig(text: string): { hadPrevious: boolean } {
    const { config, configPrev, dir } = this.paths;
    const next = `${config}.next`;
    writeFileAtomic(next, text, 0o640);
    const hadPrevious = existsSync(config);
    if (hadPrevious) {
      // A hard link, then a rename over .prev: config.yaml stays in place until the new one replaces it.
      const tmp = `${configPrev}.tmp`;
      rmSync(tmp, { force: true });
      linkSync(config, tmp);
      renameSync(tmp, configPrev);
    } else {
      rmSync(configPrev, { force: true });
    }
    renameSync(next, config);
    fsyncDir(dir);
    return { hadPrevious };
  }

  /** Puts config.yaml.prev back (or removes config.yaml: the local file runs again); returns the restored text. */
  revertConfig(): string | undefined {
    const { config, configPrev, dir } = this.paths;
    let restored: string | undefined;
    if (existsSync(configPrev)) {
      renameSync(configPrev, config);
      restored = readTextFile(config);
    } else {
      rmSync(config, { force: true });
    }
    fsyncDir(dir);
    return restored;
  }

  /** Reverts a pending config in the files and the state; returns the message that says so. */
  revertPending(state: FleetState, reason: string, nowMs = Date.now()): string {
    const failed = state.config;
    const restored = this.revertConfig();
    const to = restored !== undefined && failed?.previous_serial != null ? `serial ${failed.previous_serial}` : 'the local config file';
    state.config =
      restored !== undefined && failed?.previous_serial != null
        ? { serial: failed.previous_serial, sha256: sha256Hex(restored), state: 'committed', starts: 0, applied_ms: nowMs, previous_serial: null }
        : null;
    const message = `config of serial ${failed?.serial ?? '?'} reverted to ${to}: ${reason}`;
    state.last_error = message;
    state.last_error_ms = nowMs;
    state.last_change = message;
    state.last_change_ms = nowMs;
    return message;
  }
}

/** What identifies an installed binary cheaply (hashing 90 MB at every start would cost seconds on a Pi). */
export function fingerprint(path: string): BinaryState['installed'] {
  try {
    const s = statSync(path);
    return { path, size: s.size, mtime_ms: Math.trunc(s.mtimeMs), ino: s.ino };
  } catch {
    return null;
  }
}

export interface FleetStatusFiles {
  config?: { source: 'fleet' | 'file'; serial: number | null; last_error: string | null; errors: string[] };
  fleet?: {
    serial: number | null;
    config_serial: number | null;
    config_state: AppliedConfig['state'] | null;
    binary: Record<string, unknown>;
    last_error: string | null;
    last_error_ms: number | null;
    last_change: string | null;
    last_change_ms: number | null;
  };
}

/** The fleet part of `sluice status --json`, read from the files (the agent need not run). */
export function readFleetStatusFiles(dataDir: string): FleetStatusFiles {
  const files = new FleetFiles(dataDir);
  let state: FleetState | undefined;
  let binary: BinaryState | undefined;
  try {
    state = files.hasState() ? files.readState() : undefined;
    binary = files.readBinary();
  } catch (err) {
    state = { ...emptyState(), last_error: (err as Error).message };
  }
  if (!state && !binary) return {};
  const out: FleetStatusFiles = {};
  if (state) {
    out.config = {
      source: state.config ? 'fleet' : 'file',
      serial: state.config?.serial ?? null,
      last_error: state.local_error?.message ?? null,
      errors: state.local_error?.errors ?? [],
    };
  }
  out.fleet = {
    serial: state?.serial ?? null,
    config_serial: state?.config?.serial ?? null,
    config_state: state?.config?.state ?? null,
    binary: binaryStatus(binary),
    last_error: state?.last_error ?? null,
    last_error_ms: state?.last_error_ms ?? null,
    last_change: state?.last_change ?? null,
    last_change_ms: state?.last_change_ms ?? null,
  };
  // A rollback the launcher did after the agent last wrote its state is the newer news.
  const rb = binary?.rollback;
  if (rb && (state?.last_error_ms ?? 0) < rb.time_ms) {
    out.fleet.last_error = `binary of serial ${rb.serial} rolled back: ${rb.reason}`;
    out.fleet.last_error_ms = rb.time_ms;
  }
  return out;
}

export function binaryStatus(binary: BinaryState | undefined, runningSerial: number | null = null): Record<string, unknown> {
  return {
    running: runningSerial ?? binary?.current?.serial ?? 'installed',
    current_serial: binary?.current?.serial ?? null,
    candidate: binary?.candidate ? { serial: binary.candidate.serial, starts: binary.candidate.starts, last_exit: binary.candidate.last_exit ?? null } : null,
    last_rollback: binary?.rollback ?? null,
  };
}
