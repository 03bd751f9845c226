// The rules engine the agent runs: validation and alert evaluation in the sink (synchronous, before
// the ring write), alert points written to the ring, notifications queued per destination, and the
// timer that checks silence. Created from `rules` at start, stopped after the inputs.
//
// Lifecycle: the constructor does no I/O; start() connects the notifiers in the background and starts
// the silence timer; process() may be called before start() and after stop() (it then only validates);
// stop() resolves once the timer is gone and every destination has flushed (within its grace period)
// and closed.
import type { Logger } from '../core/component.js';
import type { Point, Tags } from '../core/point.js';
import { AlertEvaluator, alertPoint, silenceTickMs, type AlertEvent, type AlertRuleStats } from './alerts.js';
import { alertPayload, createChannels, type Channel, type ChannelName, type ChannelStats } from './notify.js';
import { ALERT_MEASUREMENT, type RulesConfig } from './schema.js';
import { Validator, type ValidateRuleStats } from './validate.js';

/** Without silence rules the timer only forgets cleared alert states, so it can be slow. */
const SWEEP_EVERY_MS = 60_000;

export interface RulesStats {
  /** Per validation rule (by name). */
  validate: Record<string, ValidateRuleStats>;
  /** Per alert rule (by name). */
  alerts: Record<string, AlertRuleStats>;
  /** Per destination (mqtt, webhook). */
  notify: Partial<Record<ChannelName, ChannelStats>>;
  /** sluice_alert points the ring made durable, and those it refused (buffer full under drop_newest, stopping). */
  alert_points: { stored: number; refused: number };
}

export interface RulesEngineOptions {
  agentId: string;
  /** agent.tags: added to alert points that carry no series tags (a measurement-wide silence). */
  agentTags: Tags;
  log: Logger;
  /** Writes alert points to the ring; resolves when they are durable. */
  store(points: Point[]): Promise<void>;
  /** Destinations; default: those of config.notify. Tests pass their own. */
  channels?: Channel[];
}

export class RulesEngine {
  private readonly validator: Validator;
  private readonly alerts: AlertEvaluator;
  private readonly channels: Channel[];
  private readonly tickMs: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly stored = { stored: 0, refused: 0 };
  private stopped = false;

  /** An engine when the config has rules, else undefined (the sink then costs nothing). */
  static create(config: RulesConfig | undefined, options: RulesEngineOptions): RulesEngine | undefined {
    if (!config || (config.validate.length === 0 && config.alerts.length === 0)) return undefined;
    return new RulesEngine(config, options);
  }

  constructor(
    config: RulesConfig,
    private readonly options: RulesEngineOptions,
  ) {
    this.validator = new Validator(config.validate, config.flag_tag);
    this.alerts = new AlertEvaluator(config.alerts, Date.now());
    this.channels = options.channels ?? createChannels(config.notify, options.agentId, options.log);
    this.tickMs = silenceTickMs(config.alerts) ?? SWEEP_EVERY_MS;
  }

  start(): Promise<void> {
    for (const c of this.channels) c.start();
    if (this.alerts.size > 0) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
    return Promise.resolve();
  }

  /**
   * Validates points and evaluates alert rules on the valid ones; returns the points to store.
   * Synchronous and cheap: notification happens later, on the destinations' queues.
   */
  process(points: Point[]): Point[] {
    const { points: kept, flagged } = this.validator.size > 0 ? this.validator.apply(points) : { points, flagged: undefined };
    if (this.alerts.size > 0 && !this.stopped && kept.length > 0) {
      try {
        const events = this.alerts.observe(kept, Date.now(), flagged);
        if (events.length > 0) this.emit(events);
      } catch (err) {
        // A bug in alerting must not cost data: the points are stored all the same.
        this.options.log.error({ err }, 'alert evaluation failed');
      }
    }
    return kept;
  }

  /** Silence checks; exposed for tests that drive the clock. */
  tick(nowMs = Date.now()): void {
    if (this.stopped) return;
    const events = this.alerts.tick(nowMs);
    if (events.length > 0) this.emit(events);
  }

  private emit(events: AlertEvent[]): void {
    const agentTags = this.options.agentTags;
    // Series tags already hold the agent's tags; a measurement-wide alert gets them here, so the
    // point and the payload name the same tags.
    for (const e of events) e.tags = { ...agentTags, ...e.tags };
    const points = events.map((e) => alertPoint(e, ALERT_MEASUREMENT));
    this.options.store(points).then(
      () => {
        this.stored.stored += points.length;
      },
      (err: unknown) => {
        this.stored.refused += points.length;
        this.options.log.debug({ err }, 'alert points refused by the store');
      },
    );
    for (const e of events) {
      this.options.log.info({ rule: e.rule, severity: e.severity, state: e.state, tags: e.tags }, e.message);
      if (this.channels.length === 0) continue;
      const payload = alertPayload(e, this.options.agentId);
      for (const c of this.channels) c.enqueue(payload);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all(this.channels.map((c) => c.stop()));
  }

  stats(): RulesStats {
    const notify: RulesStats['notify'] = {};
    for (const c of this.channels) notify[c.name] = c.stats();
    return { validate: this.validator.stats(), alerts: this.alerts.stats(), notify, alert_points: { ...this.stored } };
  }
}
