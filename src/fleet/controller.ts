// The fleet controller: everything that changes a running agent's config or binary.
//
//   local reloads   SIGHUP, or a change of the config file (fs.watch on its directory, debounced, so an
//                   editor's write-and-rename is seen), re-read -c FILE: an invalid file is refused
//                   (every error logged, `config.last_error` in status) and the old config keeps
//                   running; a valid one is applied by Agent.apply, or by a restart when it changes
//                   keys that need one (RESTART_KEYS in reload.ts): exit EXIT_RESTART after a clean stop.
//   fleet polling   every fleet.interval (±10 % so a fleet does not poll in step), a conditional GET of
//                   fleet.url; a manifest is believed only once its Ed25519 signature verifies, and
//                   applied only when its serial is higher than the last one acted on.
//   config changes  a fleet config is written atomically (the previous kept as config.yaml.prev),
//                   applied, and watched for commit_after (health.ts): committed when healthy, reverted
//                   when not.
//   binaries        binary.ts: downloaded, checked, staged, run by a restart, committed when healthy.
//   heartbeat       heartbeat.ts.
// All of it runs one step at a time through the queue of a FleetContext (context.ts): a reload never
// overlaps a transaction. The composer (src/cli/run.ts) hands the controller to the agent's status view.
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Agent } from '../agent/agent.js';
import { formatConfigError, loadConfig, type Config } from '../config/index.js';
import type { Logger } from '../core/component.js';
import type { ControlView } from '../http/view.js';
import { AgentProbe } from '../http/probe.js';
import { VERSION } from '../version.js';
import { describePlan, planReload } from '../agent/reload.js';
import { BinaryTransaction } from './binary.js';
import { compose, type Boot } from './boot.js';
import { FleetContext } from './context.js';
import { Heartbeat } from './heartbeat.js';
import { DEFAULT_HEALTH_SETTINGS, healthyInputs, type HealthSettings, type WatchResult } from './health.js';
import { fetchManifest } from './http.js';
import { loadPublicKey } from './keys.js';
import { runningSerial } from './launcher.js';
import { ManifestError, hostArch, sha256Hex, verifyManifest, type Manifest } from './manifest.js';
import { FleetFiles, binaryStatus, type AppliedConfig, type BinaryState } from './state.js';

export { EXIT_RESTART } from './context.js';

const FILE_DEBOUNCE_MS = 300;
const POLL_JITTER = 0.1;

export interface ControllerOptions {
  agent: Agent;
  boot: Boot;
  log: Logger;
  /** Asks whoever runs the agent to stop it cleanly and exit EXIT_RESTART. */
  onRestart: (reason: string) => void;
  /** Health window thresholds (tests shorten them). */
  health?: Partial<HealthSettings>;
}

interface PollStatus {
  last_ms: number | null;
  last_ok_ms: number | null;
  error: string | null;
}

export class FleetController implements ControlView {
  private readonly agent: Agent;
  private readonly log: Logger;
  private readonly fleet: FleetContext;
  private readonly binary: BinaryTransaction;
  private readonly configFile: string | undefined;
  private local: Config;
  private localSha: string | undefined;
  private source: Boot['source'];
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeat: Heartbeat | undefined;
  private readonly poll: PollStatus = { last_ms: null, last_ok_ms: null, error: null };
  private lastReloadMs: number | null = null;
  private lastRefusedSha: string | undefined;
  private ownProbe: AgentProbe | undefined;

  constructor(private readonly opts: ControllerOptions) {
    this.agent = opts.agent;
    this.log = opts.log;
    this.local = opts.boot.local;
    this.source = opts.boot.source;
    this.configFile = opts.boot.configFile;
    this.fleet = new FleetContext(opts.agent, new FleetFiles(opts.boot.dataDir), opts.log, { ...DEFAULT_HEALTH_SETTINGS, ...opts.health }, opts.onRestart);
    this.binary = new BinaryTransaction(this.fleet);
    if (this.configFile !== undefined) this.localSha = this.readLocalSha();
    process.on('SIGHUP', this.onSighup);
    for (const n of opts.boot.notices) this.log[n.level]({ ...n.details }, n.msg);
  }

  private readonly onSighup = (): void => {
    void this.fleet.enqueue('SIGHUP reload', () => this.reloadLocal('SIGHUP'));
  };

  private readLocalSha(): string | undefined {
    try {
      return sha256Hex(readFileSync(this.configFile!, 'utf8'));
    } catch {
      return undefined;
    }
  }

  start(): void {
    const boot = this.opts.boot;
    // The config this process started with loaded fine: an old refusal no longer describes the file.
    if (this.fleet.state.local_error) {
      this.fleet.state.local_error = null;
      this.fleet.persist();
    }
    this.fleet.open();
    if (this.configFile !== undefined) this.watchFile(this.configFile);
    if (boot.pending && this.fleet.state.config?.state === 'pending') {
      const { serial, starts, judged } = this.fleet.state.config;
      this.log.info({ serial, start: starts }, `fleet config serial ${serial} is not committed yet; watching its health again`);
      // Everything started with this process: judged are the inputs the change was judged on before the restart.
      const inputs = (judged?.inputs ?? [...this.agent.inputs.keys()]).filter((id) => this.agent.inputs.has(id));
      this.watchConfig(serial, new Map(inputs.map((id) => [id, this.fleet.loadedMs])), judged?.outputs ?? Object.keys(this.agent.config.outputs));
    }
    this.binary.resume();
    this.startFleet();
  }

  /** Polling and the heartbeat, from the fleet section in effect (again after it changed). */
  private startFleet(): void {
    const f = this.agent.config.fleet;
    if (f.url !== undefined) {
      void this.fleet.enqueue('poll', () => this.pollOnce());
      this.schedulePoll();
    }
    this.heartbeat = new Heartbeat(f, this.agent.config.agent.id, () => this.heartbeatReport(), this.log.child({ component: 'heartbeat' }));
    this.heartbeat.start();
  }

  private async stopFleet(): Promise<void> {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    await this.heartbeat?.stop();
    this.heartbeat = undefined;
  }

  private schedulePoll(): void {
    if (this.fleet.stopped) return;
    const interval = this.agent.config.fleet.interval;
    const delay = interval * (1 - POLL_JITTER + 2 * POLL_JITTER * Math.random());
    this.pollTimer = setTimeout(() => {
      void this.fleet.enqueue('poll', () => this.pollOnce());
      this.schedulePoll();
    }, delay);
    this.pollTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.fleet.stopped) return;
    process.off('SIGHUP', this.onSighup);
    this.watcher?.close();
    if (this.debounce) clearTimeout(this.debounce);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    // Whatever step is running finishes before the agent stops under it.
    await this.fleet.close();
    await this.stopFleet();
  }

  /** Waits for queued work (tests, and `pollNow`). */
  idle(): Promise<void> {
    return this.fleet.idle();
  }

  /** One poll now, after whatever is queued. */
  pollNow(): Promise<void> {
    return this.fleet.enqueue('poll', () => this.pollOnce());
  }

  /** A local reload now, as SIGHUP does. */
  reload(): Promise<void> {
    return this.fleet.enqueue('reload', () => this.reloadLocal('api'));
  }

  // ----------------------------------------------------------------------------------- local reload

  private watchFile(file: string): void {
    const name = basename(file);
    try {
      // The directory, not the file: an editor or a config manager that writes a new file and renames
      // it over the old one replaces the inode a file watch would be attached to.
      this.watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== name) return;
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => {
          this.debounce = undefined;
          // Touches and rewrites with the same bytes are not changes.
          const sha = this.readLocalSha();
          if (sha === undefined || sha === this.localSha) return;
          void this.fleet.enqueue('reload', () => this.reloadLocal('file changed'));
        }, FILE_DEBOUNCE_MS);
        this.debounce.unref();
      });
      this.watcher.on('error', (err) => this.log.warn({ err: err.message, file }, 'cannot watch the config file; SIGHUP still reloads it'));
    } catch (err) {
      this.log.warn({ err: (err as Error).message, file }, 'cannot watch the config file; SIGHUP still reloads it');
    }
  }

  private async reloadLocal(reason: string): Promise<void> {
    const file = this.configFile;
    if (file === undefined) {
      this.log.info({ reason }, 'running the embedded default config: there is no file to reload');
      return;
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return this.refuseLocal(file, [`${file}: cannot read the config file: ${(err as Error).message}`]);
    }
    this.localSha = sha256Hex(text);
    const r = loadConfig({ file, text });
    if (!r.ok) return this.refuseLocal(file, r.errors.map(formatConfigError));
    this.local = r.config;
    if (this.fleet.state.local_error) {
      this.fleet.state.local_error = null;
      this.fleet.persist();
    }
    this.lastReloadMs = Date.now();
    const next = this.effectiveConfig();
    if (this.fleet.state.config !== null && this.source === 'fleet') {
      this.log.info({ reason, serial: this.fleet.state.config.serial }, `config file reloaded; the fleet config (serial ${this.fleet.state.config.serial}) stays in effect for every section but fleet and agent.data_dir`);
    }
    await this.applyConfig(next, `reload (${reason})`);
  }

  private refuseLocal(file: string, errors: string[]): void {
    for (const line of errors) this.log.error({ error: line }, 'config reload refused');
    const message = `${file}: ${errors.length} error${errors.length === 1 ? '' : 's'}; still running the previous config. First: ${errors[0]}`;
    this.log.error({ file, errors: errors.length }, `config reload refused: ${errors.length} error${errors.length === 1 ? '' : 's'}; the running config stays in effect`);
    this.fleet.state.local_error = { message, errors, time_ms: Date.now() };
    this.fleet.persist();
  }

  /** The config that should run now: the fleet's (composed with the local file) or the local file's. */
  private effectiveConfig(): Config {
    if (this.local.fleet.url === undefined || this.fleet.state.config === null) {
      this.source = this.configFile === undefined ? 'default' : 'file';
      return this.local;
    }
    const text = this.fleet.files.readConfigText();
    const r = text === undefined ? undefined : loadConfig({ file: this.fleet.files.paths.config, text });
    if (!r?.ok) {
      this.source = this.configFile === undefined ? 'default' : 'file';
      return this.local;
    }
    this.source = 'fleet';
    return compose(r.config, this.local);
  }

  /** Applies `next` in place, or restarts when it needs a new process. Returns false on restart. */
  private async applyConfig(next: Config, why: string): Promise<boolean> {
    const plan = planReload(this.agent.config, next);
    if (!plan.changed) {
      this.log.info({ why }, 'config unchanged');
      return true;
    }
    if (plan.restartKeys.length > 0) {
      this.log.warn({ keys: plan.restartKeys, why }, `config changes keys that need a restart: ${plan.restartKeys.join(', ')}`);
      this.fleet.restart(`${why}: ${plan.restartKeys.join(', ')} changed`);
      return false;
    }
    await this.agent.apply(next, plan);
    this.log.info({ why, ...describePlan(plan) }, 'config applied');
    if (plan.fleet) {
      await this.stopFleet();
      this.startFleet();
    }
    return true;
  }

  // ------------------------------------------------------------------------------------ fleet channel

  private async pollOnce(): Promise<void> {
    const f = this.agent.config.fleet;
    if (f.url === undefined || f.public_key === undefined) return;
    // One change at a time: the next manifest waits until the running window is decided.
    if (this.fleet.watches.size > 0) return;
    this.poll.last_ms = Date.now();
    let res;
    try {
      res = await fetchManifest(f.url, this.fleet.state.etag, this.agent.config.agent.id, this.fleet.aborter.signal);
    } catch (err) {
      if (this.fleet.stopped) return;
      const message = `cannot fetch ${f.url}: ${(err as Error).message}`;
      if (this.poll.error === null) this.log.warn({ url: f.url, err: (err as Error).message }, 'fleet poll failed; trying again every interval');
      this.poll.error = message;
      return;
    }
    if (this.poll.error !== null) this.log.info({ url: f.url }, 'fleet poll works again');
    this.poll.error = null;
    this.poll.last_ok_ms = Date.now();
    if (res.status === 304) return this.binary.retry();
    const bodySha = sha256Hex(res.body);
    if (res.etag !== this.fleet.state.etag) {
      this.fleet.state.etag = res.etag;
      this.fleet.persist();
    }
    // A server without ETags serves the same refused manifest at every poll: say so once.
    if (bodySha === this.lastRefusedSha) return this.binary.retry();
    let manifest: Manifest;
    try {
      manifest = verifyManifest(res.body, loadPublicKey(f.public_key));
    } catch (err) {
      const why = err instanceof ManifestError ? err.message : `fleet.public_key: ${(err as Error).message}`;
      return this.refuse(bodySha, `manifest from ${f.url} refused: ${why}`);
    }
    const applied = this.fleet.state.serial;
    if (applied !== null && manifest.serial < applied) {
      return this.refuse(bodySha, `manifest serial ${manifest.serial} refused: serial ${applied} is already applied; a manifest must carry a higher serial`);
    }
    if (applied !== null && manifest.serial === applied) {
      if (bodySha !== this.fleet.state.manifest_sha256) {
        this.refuse(bodySha, `manifest serial ${manifest.serial} ignored: that serial was already applied with other content; publish a change with a higher serial`);
      }
      return this.binary.retry();
    }
    await this.applyManifest(manifest, bodySha);
  }

  private refuse(bodySha: string, message: string): void {
    this.lastRefusedSha = bodySha;
    this.log.error({}, message);
    this.fleet.setError(message);
  }

  private async applyManifest(m: Manifest, bodySha: string): Promise<void> {
    // A newer manifest says which binary to run: one still waiting for its download is superseded.
    this.fleet.state.binary_pending = null;
    const arch = hostArch();
    const ref = arch ? m.binaries?.[arch] : undefined;
    const binary = ref && arch ? { serial: m.serial, arch, url: new URL(ref.url, this.agent.config.fleet.url).href, sha256: ref.sha256 } : undefined;
    if (m.config !== undefined && sha256Hex(m.config) !== this.fleet.state.config?.sha256) {
      const r = loadConfig({ text: m.config, file: `manifest serial ${m.serial}` });
      if (!r.ok) {
        const errors = r.errors.map(formatConfigError);
        for (const line of errors) this.log.error({ error: line }, 'fleet config refused');
        this.fleet.state.serial = m.serial;
        this.fleet.state.manifest_sha256 = bodySha;
        return this.refuse(bodySha, `manifest serial ${m.serial} refused: its config is invalid (${errors.length} error${errors.length === 1 ? '' : 's'}): ${errors.slice(0, 3).join('; ')}`);
      }
      this.fleet.state.serial = m.serial;
      this.fleet.state.manifest_sha256 = bodySha;
      return this.beginConfig(m.serial, m.config, r.config, binary);
    }
    this.fleet.state.serial = m.serial;
    this.fleet.state.manifest_sha256 = bodySha;
    this.fleet.persist();
    if (binary) return this.binary.stage(binary);
    this.log.info({ serial: m.serial }, `manifest serial ${m.serial}: nothing to change here`);
  }

  private async beginConfig(serial: number, text: string, decoded: Config, binary: AppliedConfig['then_binary']): Promise<void> {
    const next = compose(decoded, this.local);
    const previous = this.fleet.state.config;
    this.fleet.files.installConfig(text);
    this.fleet.state.config = {
      serial,
      sha256: sha256Hex(text),
      state: 'pending',
      starts: 0,
      applied_ms: Date.now(),
      previous_serial: previous?.serial ?? null,
      ...(binary ? { then_binary: binary } : {}),
    };
    const plan = planReload(this.agent.config, next);
    const before = new Set(healthyInputs(this.agent, this.fleet.loadedMs, this.fleet.health));
    const judgedInputs = [...plan.inputs.unchanged.filter((id) => before.has(id)), ...plan.inputs.start];
    this.fleet.state.config.judged = { inputs: judgedInputs, outputs: plan.outputs.start };
    this.fleet.setChange(`config serial ${serial} applied; committed after ${this.agent.config.fleet.commit_after / 1000}s healthy`);
    this.fleet.persist();
    if (plan.restartKeys.length > 0) {
      this.log.warn({ serial, keys: plan.restartKeys }, `fleet config serial ${serial} changes keys that need a restart (${plan.restartKeys.join(', ')}); its health window runs after the restart`);
      this.fleet.restart(`fleet config serial ${serial}`);
      return;
    }
    await this.agent.apply(next, plan);
    this.source = 'fleet';
    const now = Date.now();
    const judged = new Map<string, number>();
    for (const id of judgedInputs) judged.set(id, plan.inputs.start.includes(id) ? now : this.fleet.loadedMs);
    this.log.info(
      { serial, commit_after_ms: next.fleet.commit_after, ...describePlan(plan) },
      `fleet config serial ${serial} applied; committing it after ${next.fleet.commit_after / 1000}s healthy`,
    );
    if (plan.fleet) {
      await this.stopFleet();
      this.startFleet();
    }
    this.watchConfig(serial, judged, plan.outputs.start);
  }

  private watchConfig(serial: number, inputs: Map<string, number>, outputs: string[]): void {
    const spec = { what: `config serial ${serial}`, durationMs: this.agent.config.fleet.commit_after, inputs, outputs };
    this.fleet.watch(spec, 'config commit', (result) => this.finishConfig(serial, result));
  }

  private async finishConfig(serial: number, result: WatchResult): Promise<void> {
    const cfg = this.fleet.state.config;
    if (cfg?.serial !== serial || cfg.state !== 'pending') return;
    if (result.ok) {
      cfg.state = 'committed';
      cfg.starts = 0;
      const then = cfg.then_binary;
      delete cfg.then_binary;
      this.fleet.setChange(`config serial ${serial} committed`);
      this.fleet.persist();
      this.log.info({ serial }, `fleet config serial ${serial} committed: healthy for ${this.agent.config.fleet.commit_after / 1000}s`);
      if (then) await this.binary.stage(then);
      return;
    }
    const message = this.fleet.files.revertPending(this.fleet.state, result.reason);
    this.fleet.persist();
    this.log.error({ serial, reason: result.reason }, message);
    const next = this.effectiveConfig();
    await this.applyConfig(next, `revert of config serial ${serial}`);
  }

  // ------------------------------------------------------------------------------------------ status

  configStatus(): Record<string, unknown> {
    return {
      source: this.source,
      file: this.configFile ?? null,
      fleet_file: this.source === 'fleet' ? this.fleet.files.paths.config : null,
      serial: this.source === 'fleet' ? (this.fleet.state.config?.serial ?? null) : null,
      loaded_ms: this.fleet.loadedMs,
      last_reload_ms: this.lastReloadMs,
      last_error: this.fleet.state.local_error?.message ?? null,
      errors: this.fleet.state.local_error?.errors ?? [],
      restarting: this.fleet.restarting ?? null,
    };
  }

  fleetStatus(): Record<string, unknown> | null {
    const f = this.agent.config.fleet;
    if (f.url === undefined && !this.heartbeat?.enabled) return null;
    let binary: BinaryState | undefined;
    try {
      binary = this.fleet.files.readBinary();
    } catch {
      binary = undefined;
    }
    const pending = [...this.fleet.watches].map((w) => ({ what: w.spec.what, since_ms: w.startedMs, commit_at_ms: w.endsMs }));
    return {
      url: f.url ?? null,
      serial: this.fleet.state.serial,
      config_serial: this.fleet.state.config?.serial ?? null,
      config_state: this.fleet.state.config?.state ?? null,
      pending,
      binary: { ...binaryStatus(binary, runningSerial()), version: VERSION },
      poll: { ...this.poll, etag: this.fleet.state.etag },
      heartbeat: this.heartbeat?.enabled ? { ...this.heartbeat.status } : null,
      last_error: this.fleet.state.last_error,
      last_error_ms: this.fleet.state.last_error_ms,
      last_change: this.fleet.state.last_change,
      last_change_ms: this.fleet.state.last_change_ms,
    };
  }

  private probe(): AgentProbe {
    if (this.agent.probe) return this.agent.probe;
    const agent = this.agent;
    this.ownProbe ??= new AgentProbe({
      get config() {
        return agent.config;
      },
      ring: agent.ring,
      inputs: agent.inputs,
      outputs: agent.outputs,
    });
    return this.ownProbe;
  }

  private heartbeatReport(): Record<string, unknown> {
    const probe = this.probe();
    const snap = probe.snap();
    const health = probe.health();
    let backlog = 0;
    const outputs: Record<string, { backlog_points: number; last_success_ms: number | null }> = {};
    for (const [id, o] of Object.entries(snap.store.outputs)) {
      backlog += o.backlog_points;
      outputs[id] = { backlog_points: o.backlog_points, last_success_ms: o.last_success_ms };
    }
    return {
      agent_id: this.agent.config.agent.id,
      online: true,
      time_ms: Date.now(),
      version: VERSION,
      binary_serial: runningSerial(),
      config: { source: this.source, serial: this.source === 'fleet' ? (this.fleet.state.config?.serial ?? null) : null, state: this.fleet.state.config?.state ?? null },
      fleet_serial: this.fleet.state.serial,
      health: { status: health.status, reasons: health.reasons },
      backlog_points: backlog,
      outputs,
      store_bytes: snap.store.store_bytes,
      capacity_bytes: snap.store.capacity_bytes,
      last_error: this.fleet.state.last_error,
      uptime_s: Math.round((Date.now() - this.fleet.loadedMs) / 1000),
    };
  }
}

