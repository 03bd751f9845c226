// The binary transaction: a manifest's binary for this architecture is downloaded, checked against its
// sha256, staged in the data directory and run by a restart (launcher.ts starts the staged one). Once
// it has run healthy for fleet.commit_after it commits itself; an unhealthy one is abandoned and the
// launcher rolls back. A failed download is tried again at later polls, MAX_DOWNLOAD_ATTEMPTS in all.
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { VERSION } from '../version.js';
import type { FleetContext } from './context.js';
import { healthyInputs, type WatchResult } from './health.js';
import { downloadVerified } from './http.js';
import { pruneStaged, runningSerial } from './launcher.js';
import { emptyBinaryState, fingerprint, type BinaryOrder, type BinaryState } from './state.js';

/** Download attempts of one binary (one per poll) before it is given up; a new serial starts over. */
const MAX_DOWNLOAD_ATTEMPTS = 3;

export class BinaryTransaction {
  private installedSha: Promise<string> | undefined;

  constructor(private readonly fleet: FleetContext) {}

  /** The binary state on disk, or an empty one. */
  read(): BinaryState {
    return this.fleet.files.readBinary() ?? emptyBinaryState();
  }

  /** A binary whose download failed is tried again at the polls that bring nothing newer. */
  async retry(): Promise<void> {
    if (this.fleet.state.binary_pending) await this.stage(this.fleet.state.binary_pending);
  }

  /** sha256 of the binary this process runs (staged ones are known; the installed one is hashed once). */
  private async runningSha(b: BinaryState): Promise<string> {
    const serial = runningSerial();
    if (serial !== null) {
      const known = [b.current, b.candidate].find((x) => x?.serial === serial);
      if (known) return known.sha256;
    }
    this.installedSha ??= new Promise<string>((resolve, reject) => {
      const h = createHash('sha256');
      createReadStream(process.execPath)
        .on('data', (chunk) => h.update(chunk))
        .on('end', () => resolve(h.digest('hex')))
        .on('error', reject);
    });
    return this.installedSha;
  }

  async stage(ref: BinaryOrder): Promise<void> {
    const { state, files, agent, log } = this.fleet;
    const failures = state.binary_pending?.serial === ref.serial ? state.binary_pending.failures : 0;
    state.binary_pending = null;
    const b = this.read();
    const running = await this.runningSha(b);
    if (ref.sha256 === running) {
      this.fleet.persist();
      log.info({ serial: ref.serial }, `binary of serial ${ref.serial} is the one running`);
      return;
    }
    if (b.abandoned.includes(ref.sha256)) {
      this.fleet.setError(`binary of serial ${ref.serial} not installed: this build (sha256 ${ref.sha256.slice(0, 12)}…) was rolled back before`);
      return;
    }
    const path = join(files.paths.bin, `sluice-${ref.serial}`);
    mkdirSync(files.paths.bin, { recursive: true });
    // Only the binary running now (and the installed one, which is outside the data directory) is kept.
    pruneStaged(files.paths.bin, [b.current]);
    log.info({ serial: ref.serial, url: ref.url }, `downloading the binary of serial ${ref.serial}`);
    let bytes: number;
    try {
      ({ bytes } = await downloadVerified(ref.url, ref.sha256, path, agent.config.agent.id, this.fleet.aborter.signal));
    } catch (err) {
      const stopped = this.fleet.stopped;
      const attempt = failures + 1;
      // Kept for the next start when the agent stopped mid-download.
      if (stopped || attempt < MAX_DOWNLOAD_ATTEMPTS) state.binary_pending = { ...ref, failures: stopped ? failures : attempt };
      if (stopped) return this.fleet.persist();
      const then = attempt < MAX_DOWNLOAD_ATTEMPTS ? `attempt ${attempt} of ${MAX_DOWNLOAD_ATTEMPTS}; tried again at the next poll` : `gave up after ${MAX_DOWNLOAD_ATTEMPTS} attempts; publish it with a higher serial`;
      const message = `binary of serial ${ref.serial} not installed (${then}): ${(err as Error).message}`;
      log.error({ serial: ref.serial, url: ref.url }, message);
      this.fleet.setError(message);
      return;
    }
    const after = this.read();
    if (runningSerial() === null) after.installed = fingerprint(process.execPath);
    after.candidate = {
      serial: ref.serial,
      path,
      sha256: ref.sha256,
      staged_ms: Date.now(),
      starts: 0,
      healthy_inputs: healthyInputs(agent, this.fleet.loadedMs, this.fleet.health),
    };
    files.writeBinary(after);
    this.fleet.setChange(`binary of serial ${ref.serial} staged (${bytes} bytes)`);
    this.fleet.persist();
    log.info({ serial: ref.serial, path, bytes }, `binary of serial ${ref.serial} staged; restarting into it (kept after ${agent.config.fleet.commit_after / 1000}s healthy, else rolled back)`);
    this.fleet.restart(`binary of serial ${ref.serial} staged`);
  }

  /** In a staged binary that is not committed yet: watch its health, then commit or give up. */
  resume(): void {
    const { state, agent, log } = this.fleet;
    let b: BinaryState;
    try {
      b = this.read();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'staged binary state unreadable');
      return;
    }
    // A rollback the launcher did before this process started is news for status.
    if (b.rollback && (state.last_error_ms ?? 0) < b.rollback.time_ms) {
      state.last_error = `binary of serial ${b.rollback.serial} rolled back: ${b.rollback.reason}`;
      state.last_error_ms = b.rollback.time_ms;
      this.fleet.persist();
    }
    const serial = runningSerial();
    const c = b.candidate;
    if (serial === null || c?.serial !== serial) return;
    const inputs = new Map(c.healthy_inputs.filter((id) => agent.inputs.has(id)).map((id) => [id, this.fleet.loadedMs]));
    log.info({ serial, start: c.starts }, `running the staged binary of serial ${serial}; committing it after ${agent.config.fleet.commit_after / 1000}s healthy`);
    const spec = { what: `binary serial ${serial}`, durationMs: agent.config.fleet.commit_after, inputs, outputs: [] };
    this.fleet.watch(spec, 'binary commit', (result) => Promise.resolve(this.finish(serial, result)));
  }

  private finish(serial: number, result: WatchResult): void {
    const { files, agent, log } = this.fleet;
    const b = this.read();
    const c = b.candidate;
    if (c?.serial !== serial) return;
    if (result.ok) {
      b.current = { serial: c.serial, path: c.path, sha256: c.sha256, staged_ms: c.staged_ms };
      b.candidate = null;
      files.writeBinary(b);
      pruneStaged(files.paths.bin, [b.current]);
      this.fleet.setChange(`binary of serial ${serial} committed (version ${VERSION})`);
      this.fleet.persist();
      log.info({ serial, version: VERSION }, `binary of serial ${serial} committed: healthy for ${agent.config.fleet.commit_after / 1000}s`);
      return;
    }
    // Tell the launcher to abandon it now rather than after its remaining starts.
    c.abandon = `unhealthy: ${result.reason}`;
    files.writeBinary(b);
    log.error({ serial, reason: result.reason }, `binary of serial ${serial} is unhealthy (${result.reason}); rolling back`);
    this.fleet.restart(`binary of serial ${serial} unhealthy`);
  }
}
