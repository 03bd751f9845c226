// Prometheus metrics of the rules engine, read from RulesEngine.stats() when scraped (as the endpoint's
// other metrics are), so the sink's hot path only bumps plain counters. The HTTP endpoint registers
// them on its registry with one call: registerRulesMetrics(registry, () => agent.rules?.stats()).
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RulesStats } from './engine.js';

const REASONS = ['below_min', 'above_max', 'not_a_number'] as const;

/** Counters are set from cumulative values the engine keeps: reset, then add the total. */
function add<L extends string>(c: Counter<L>, labels: Record<L, string>, value: number): void {
  c.inc(labels, Number.isFinite(value) && value > 0 ? value : 0);
}

/** Registers the sluice_rules_* metrics; `stats` returns undefined when the agent has no rules. */
export function registerRulesMetrics(registry: Registry, stats: () => RulesStats | undefined): void {
  const registers = [registry];
  // One stats() per scrape, shared by the metrics collected in it.
  let cached: { atMs: number; stats: RulesStats | undefined } | undefined;
  const snap = (): RulesStats | undefined => {
    const now = Date.now();
    if (!cached || now - cached.atMs > 100) cached = { atMs: now, stats: stats() };
    return cached.stats;
  };
  const validate = () => Object.entries(snap()?.validate ?? {});
  const alerts = () => Object.entries(snap()?.alerts ?? {});
  const notify = () => Object.entries(snap()?.notify ?? {}).flatMap(([channel, s]) => (s ? [[channel, s] as const] : []));

  new Counter({
    name: 'sluice_rules_values_checked_total',
    help: 'Values a validation rule checked.',
    labelNames: ['rule'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of validate()) add(this, { rule }, s.checked);
    },
  });
  new Counter({
    name: 'sluice_rules_values_invalid_total',
    help: 'Values that failed a validation rule, by reason (below_min, above_max, not_a_number).',
    labelNames: ['rule', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of validate()) for (const reason of REASONS) add(this, { rule, reason }, s[reason]);
    },
  });
  new Counter({
    name: 'sluice_rules_values_dropped_total',
    help: 'Values a validation rule removed before the store (drop: the invalid value; drop_point: every value of the point).',
    labelNames: ['rule'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of validate()) add(this, { rule }, s.dropped_values);
    },
  });
  new Counter({
    name: 'sluice_rules_points_dropped_total',
    help: 'Points a validation rule removed before the store.',
    labelNames: ['rule'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of validate()) add(this, { rule }, s.dropped_points);
    },
  });
  new Counter({
    name: 'sluice_rules_points_flagged_total',
    help: 'Points a validation rule tagged with rules.flag_tag.',
    labelNames: ['rule'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of validate()) add(this, { rule }, s.flagged_points);
    },
  });

  new Counter({
    name: 'sluice_rules_alerts_total',
    help: 'Alert events emitted, by state (firing, resolved).',
    labelNames: ['rule', 'severity', 'state'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of alerts()) {
        add(this, { rule, severity: s.severity, state: 'firing' }, s.fired);
        add(this, { rule, severity: s.severity, state: 'resolved' }, s.resolved);
      }
    },
  });
  new Counter({
    name: 'sluice_rules_alerts_suppressed_total',
    help: 'Times a condition became true again within its cooldown, so no alert was emitted.',
    labelNames: ['rule'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of alerts()) add(this, { rule }, s.suppressed);
    },
  });
  new Gauge({
    name: 'sluice_rules_alerts_active',
    help: 'Series for which an alert condition holds now.',
    labelNames: ['rule', 'severity'],
    registers,
    collect() {
      this.reset();
      for (const [rule, s] of alerts()) this.set({ rule, severity: s.severity }, s.active);
    },
  });

  const channelCounter = (name: string, help: string, key: 'sent' | 'failed' | 'retries' | 'dropped') =>
    new Counter({
      name,
      help,
      labelNames: ['channel'],
      registers,
      collect() {
        this.reset();
        for (const [channel, s] of notify()) add(this, { channel }, s[key]);
      },
    });
  channelCounter('sluice_rules_notify_sent_total', 'Alerts delivered to a destination (mqtt, webhook).', 'sent');
  channelCounter('sluice_rules_notify_failed_total', 'Alerts given up on after their retries.', 'failed');
  channelCounter('sluice_rules_notify_retries_total', 'Delivery attempts that failed and were tried again.', 'retries');
  channelCounter('sluice_rules_notify_dropped_total', 'Alerts discarded unsent: queue full, or the agent stopped.', 'dropped');
  new Gauge({
    name: 'sluice_rules_notify_queued',
    help: 'Alerts waiting for a destination.',
    labelNames: ['channel'],
    registers,
    collect() {
      this.reset();
      for (const [channel, s] of notify()) this.set({ channel }, s.queued);
    },
  });
  new Counter({
    name: 'sluice_rules_alert_points_refused_total',
    help: 'sluice_alert points the store refused (full under drop_newest, or stopping).',
    registers,
    collect() {
      this.reset();
      const s = snap();
      if (s) this.inc(s.alert_points.refused);
    },
  });
}
