// The agent: owns the ring and the components' lifecycles. Inputs write through a sink that applies
// the agent's tags; the ring's group commit decides when their points are durable.
import type { Config } from '../config/index.js';
import type { Input, Logger, Sink } from '../core/component.js';
import type { Point } from '../core/point.js';
import { SqliteRing, type RingOptions } from '../store/ring.js';
import { createInput } from './registry.js';

/** How often level-0 chunks are merged into compressed level-1 chunks. */
const COMPACT_EVERY_MS = 10_000;

export interface AgentOptions {
  config: Config;
  ring: RingOptions;
  log: Logger;
}

export class Agent {
  readonly ring: SqliteRing;
  readonly inputs = new Map<string, Input>();
  private compactTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(private readonly options: AgentOptions) {
    this.log = options.log;
    this.ring = SqliteRing.open({
      ...options.ring,
      onWarning: (message, details) => this.log.warn({ ...details }, message),
    });
  }

  async start(): Promise<void> {
    const { config } = this.options;
    for (const [id, inputConfig] of Object.entries(config.inputs)) {
      const log = this.log.child({ input: id, type: inputConfig.type });
      const input = createInput(id, inputConfig, {
        id,
        log,
        sink: this.sinkFor(),
        agentId: config.agent.id,
        dataDir: this.options.ring.dataDir,
      });
      this.inputs.set(id, input);
    }
    for (const [id, input] of this.inputs) {
      await input.start();
      this.log.debug({ input: id }, 'input started');
    }
    this.compactTimer = setInterval(() => this.compact(), COMPACT_EVERY_MS);
    this.compactTimer.unref();
    this.log.info(
      { data_dir: this.options.ring.dataDir, inputs: [...this.inputs.keys()], max_size: this.options.ring.maxBytes, when_full: this.options.ring.whenFull },
      'sluice started',
    );
  }

  private compact(): void {
    try {
      this.ring.compact();
    } catch (err) {
      this.log.error({ err }, 'compaction failed; will retry');
    }
  }

  /** A sink that adds the agent's tags (a point's own tags win) and writes to the ring. */
  private sinkFor(): Sink {
    const agentTags = this.options.config.agent.tags;
    const hasAgentTags = Object.keys(agentTags).length > 0;
    return {
      write: (points: Point[]) => {
        if (hasAgentTags) for (const p of points) p.tags = { ...agentTags, ...p.tags };
        return this.ring.write(points);
      },
    };
  }

  /** Stops inputs first (nothing new arrives), then commits and closes the ring. */
  async stop(): Promise<void> {
    if (this.compactTimer) clearInterval(this.compactTimer);
    for (const [id, input] of this.inputs) {
      try {
        await input.stop();
      } catch (err) {
        this.log.error({ err, input: id }, 'input did not stop cleanly');
      }
    }
    this.ring.commit();
    this.compact();
    this.ring.close();
    this.log.info({}, 'sluice stopped');
  }
}
