// The agent: owns the ring and the components' lifecycles. Inputs write through a sink that applies
// the agent's tags; the ring's group commit decides when their points are durable.
import type { Config, InputConfig, OutputConfig } from '../config/index.js';
import type { CommitMark, Input, Logger, Sink } from '../core/component.js';
import { ByteBudget, memoryBudgets, type MemoryBudgets } from '../core/memory.js';
import type { Point } from '../core/point.js';
import { SqliteRing, type RingOptions } from '../store/ring.js';
import { createInput, createOutput } from './registry.js';
import { OutputSync } from '../sync/engine.js';
import { syncSettings } from '../sync/settings.js';
import { sourceFor } from '../sync/source.js';
import cron, { type ScheduledTask } from 'node-cron';
import { parseDuration } from '../config/index.js';
import { startHttp, type HttpEndpoint } from '../http/server.js';
import { MaintenanceLoop } from './maintenance.js';
import { RulesEngine } from '../rules/engine.js';
import type { ReloadPlan } from './reload.js';
import type { AgentProbe } from '../http/probe.js';
import type { AgentView, ControlView } from '../http/view.js';

/** How often level-0 chunks are merged into compressed level-1 chunks. */
const COMPACT_EVERY_MS = 1_000;
/** How often closed windows are rolled up; queries fill in newer windows from raw data meanwhile. */
const ROLLUP_EVERY_MS = 1_000;
/** Series compacted or rolled up per pass: bounds what one pass loads however many series there are. */
const MAINTENANCE_SERIES_PER_PASS = 200;
/**
 * Time one compaction pass may take. The store is synchronous (better-sqlite3) and shares the event
 * loop with the inputs: a long pass delays polls and timestamps, so passes are short and frequent.
 */
const COMPACT_BUDGET_MS = 40;
/** Time one rollup pass may take, for the same reason (an hour closing recomputes an hour of raw data per series). */
const ROLLUP_BUDGET_MS = 40;
/** When retention runs (node-cron): every five minutes. */
const RETENTION_SCHEDULE = '*/5 * * * *';

export interface AgentOptions {
  config: Config;
  ring: RingOptions;
  log: Logger;
}

export class Agent {
  readonly ring: SqliteRing;
  readonly inputs = new Map<string, Input>();
  readonly outputs = new Map<string, OutputSync>();
  /** Validation and alert rules (`rules`); undefined when there are none. `rules.stats()` feeds status and metrics. */
  rules: RulesEngine | undefined;
  /** Config reloads and fleet state (src/fleet/controller.ts), for /api/status; set by whoever runs the agent. */
  control: ControlView | undefined;
  private readonly compaction = new MaintenanceLoop((budgetMs) => this.compact(budgetMs), COMPACT_EVERY_MS, COMPACT_BUDGET_MS);
  private readonly rollups = new MaintenanceLoop((budgetMs) => this.rollUp(budgetMs), ROLLUP_EVERY_MS, ROLLUP_BUDGET_MS);
  private retentionTask: ScheduledTask | undefined;
  private http: HttpEndpoint | undefined;
  private readonly log: Logger;
  /**
   * The budgets derived from agent.memory_limit (src/core/memory.ts); the heap limits were applied
   * when the process started (src/cli/limits.ts). The ring's pending points and the sync engine's
   * prepared batches may take their shares from here.
   */
  readonly memory: MemoryBudgets;
  /** What all inputs together hold between receipt and commit. */
  readonly intake: ByteBudget;

  constructor(private readonly options: AgentOptions) {
    this.log = options.log;
    this.memory = memoryBudgets(options.config.agent.memory_limit);
    this.intake = new ByteBudget(this.memory.intakeBytes);
    this.ring = SqliteRing.open({
      ...options.ring,
      onWarning: (message, details) => this.log.warn({ ...details }, message),
    });
  }

  async start(): Promise<void> {
    const { config } = this.options;
    // Before the inputs: their first points already pass the rules.
    this.rules = this.createRules(config);
    await this.rules?.start();
    for (const [id, inputConfig] of Object.entries(config.inputs)) this.inputs.set(id, await this.createInputFor(id, inputConfig));
    for (const [id, input] of this.inputs) {
      await input.start();
      this.log.debug({ input: id }, 'input started');
    }
    for (const [id, outputConfig] of Object.entries(config.outputs)) await this.startOutput(id, outputConfig);
    this.compaction.start();
    this.rollups.start();
    if (Object.keys(config.retention).length > 0) {
      this.applyRetention();
      this.retentionTask = cron.schedule(RETENTION_SCHEDULE, () => this.applyRetention());
    }
    // Last, so a health check that answers means the agent is fully up (the unit's ExecStartPost).
    this.http = await startHttp(this.view(), this.log.child({ component: 'http' }));
    this.log.info(
      { data_dir: this.options.ring.dataDir, inputs: [...this.inputs.keys()], outputs: [...this.outputs.keys()], max_size: this.options.ring.maxBytes, when_full: this.options.ring.whenFull },
      'sluice started',
    );
  }

  private createRules(config: Config): RulesEngine | undefined {
    return RulesEngine.create(config.rules, {
      agentId: config.agent.id,
      agentTags: config.agent.tags,
      log: this.log.child({ component: 'rules' }),
      store: (points) => this.ring.write(points),
    });
  }

  private createInputFor(id: string, inputConfig: InputConfig): Promise<Input> {
    const log = this.log.child({ input: id, type: inputConfig.type });
    return createInput(id, inputConfig, { id, log, sink: this.sinkFor(), agentId: this.options.config.agent.id, dataDir: this.options.ring.dataDir, intake: this.intake });
  }

  private async startOutput(id: string, outputConfig: OutputConfig): Promise<void> {
    const { config } = this.options;
    const log = this.log.child({ output: id, type: outputConfig.type });
    const output = await createOutput(id, outputConfig, { id, log, agentId: config.agent.id });
    const source = sourceFor(this.ring, id, outputConfig.resolution, config.aggregate.functions);
    const sync = new OutputSync({ id, output, source, log, settings: syncSettings(outputConfig) });
    this.outputs.set(id, sync);
    await sync.start();
  }

  /** What the endpoint reads; `config` and `control` are read through, so a reload shows at once. */
  private view(): AgentView {
    const options = this.options;
    const control = () => this.control;
    const rules = () => this.rules;
    return {
      get config() {
        return options.config;
      },
      ring: this.ring,
      inputs: this.inputs,
      outputs: this.outputs,
      get control() {
        return control();
      },
      get rules() {
        return rules();
      },
    };
  }

  /** The config in effect; apply() replaces it. */
  get config(): Config {
    return this.options.config;
  }

  /** The endpoint's probe (health, the last commit error); undefined with `http.listen: off`. */
  get probe(): AgentProbe | undefined {
    return this.http?.probe;
  }

  /**
   * Moves to `next` by the steps of `plan` (planReload in ./reload.ts): only the components it
   * names stop or start, and the ring stays open throughout, so buffered points and output cursors are
   * untouched. Keys that need a new process (plan.restartKeys) are the caller's business.
   */
  async apply(next: Config, plan: ReloadPlan): Promise<void> {
    for (const id of plan.inputs.stop) {
      const input = this.inputs.get(id);
      this.inputs.delete(id);
      await input?.stop().catch((err: unknown) => this.log.error({ err, input: id }, 'input did not stop cleanly'));
    }
    for (const id of plan.outputs.stop) {
      const output = this.outputs.get(id);
      this.outputs.delete(id);
      await output?.stop().catch((err: unknown) => this.log.error({ err, output: id }, 'output did not stop cleanly'));
    }
    this.options.config = next;
    if (plan.rules) {
      await this.rules?.stop();
      this.rules = this.createRules(next);
      await this.rules?.start();
    }
    for (const id of plan.inputs.start) {
      const input = await this.createInputFor(id, next.inputs[id]);
      this.inputs.set(id, input);
      await input.start();
    }
    for (const id of plan.outputs.start) await this.startOutput(id, next.outputs[id]);
    if (plan.retention) {
      await this.retentionTask?.stop();
      this.retentionTask = undefined;
      if (Object.keys(next.retention).length > 0) {
        this.applyRetention();
        this.retentionTask = cron.schedule(RETENTION_SCHEDULE, () => this.applyRetention());
      }
    }
    if (plan.http) {
      await this.http?.close();
      this.http = await startHttp(this.view(), this.log.child({ component: 'http' }));
    }
  }

  /** Computes rollup windows that closed since the last pass (and late data's windows). */
  /** A rollup pass of at most `budgetMs`. */
  private rollUp(budgetMs: number): void {
    try {
      // A bounded share of the series per pass keeps each pass short and its garbage small.
      this.ring.rollUp({ maxSeries: MAINTENANCE_SERIES_PER_PASS, budgetMs });
    } catch (err) {
      this.log.error({ err }, 'rollup failed; will retry');
    }
  }

  /** Deletes what each tier keeps no longer (`retention`); raw data is rolled up first. */
  private applyRetention(): void {
    const nowUs = Date.now() * 1000;
    for (const [tierName, keepMs] of Object.entries(this.options.config.retention)) {
      const tier = tierName === 'raw' ? 0 : parseDuration(tierName);
      if (tier === null) continue;
      try {
        const removed = this.ring.expire(tier, nowUs - keepMs * 1000);
        if (removed > 0) this.log.info({ tier: tierName, points: removed }, 'retention removed old data');
      } catch (err) {
        this.log.error({ err, tier: tierName }, 'retention failed; will retry');
      }
    }
  }

  /** A compaction pass of at most `budgetMs`. */
  private compact(budgetMs: number): void {
    try {
      this.ring.compact({ maxSeries: MAINTENANCE_SERIES_PER_PASS, budgetMs });
    } catch (err) {
      this.log.error({ err }, 'compaction failed; will retry');
    }
  }

  /** A sink that adds the agent's tags (a point's own tags win) and writes to the ring. */
  private sinkFor(): Sink {
    const agentTags = this.options.config.agent.tags;
    const hasAgentTags = Object.keys(agentTags).length > 0;
    return {
      write: (points: Point[], marks?: readonly CommitMark[]) => {
        if (hasAgentTags) for (const p of points) p.tags = { ...agentTags, ...p.tags };
        // Validation drops invalid values here, so they never reach the ring.
        return this.ring.write(this.rules ? this.rules.process(points) : points, marks);
      },
      commitNow: () => this.ring.commit(),
      readMarks: (scope: string) => this.ring.readMarks(scope),
    };
  }

  /** Stops inputs first (nothing new arrives), then commits and closes the ring. */
  async stop(): Promise<void> {
    this.compaction.stop();
    this.rollups.stop();
    await this.retentionTask?.stop();
    await this.http?.close();
    for (const [id, input] of this.inputs) {
      try {
        await input.stop();
      } catch (err) {
        this.log.error({ err, input: id }, 'input did not stop cleanly');
      }
    }
    // After the inputs (no new alerts), before the commit (its last alert points are made durable).
    await this.rules?.stop();
    this.ring.commit();
    // After inputs (nothing new arrives), before the ring closes: requests in flight get a grace period.
    for (const [id, output] of this.outputs) {
      try {
        await output.stop();
      } catch (err) {
        this.log.error({ err, output: id }, 'output did not stop cleanly');
      }
    }
    this.rollUp(ROLLUP_BUDGET_MS);
    this.compact(COMPACT_BUDGET_MS);
    this.ring.close();
    this.log.info({}, 'sluice stopped');
  }
}
