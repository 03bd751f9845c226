// /metrics: Prometheus text (prom-client). Names follow sluice_<area>_<name>_<unit>[_total]. Values
// are read from the agent when scraped (collect callbacks), so the hot path only feeds the commit
// histogram. A registry per endpoint, not prom-client's global one: tests run several agents at once.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { registerRulesMetrics } from '../rules/metrics.js';
import { loadedJsAssets } from '../sea/js-asset.js';
import { VERSION } from '../version.js';
import type { OutputStats } from '../core/component.js';
import type { AgentProbe } from './probe.js';

/** Counters drivers report that are levels, not counts (MQTT's in-flight messages). */
const DRIVER_LEVELS = new Set(['inflight']);

/** Modbus counters that are errors, by the `code` label they get. */
function modbusErrorCode(counter: string): string | undefined {
  const m = /^exception_(\d+)$/.exec(counter);
  if (m) return m[1];
  return ({ timeouts: 'timeout', crc_errors: 'crc', protocol_errors: 'protocol', mismatched_requests: 'mismatched' } as Record<string, string>)[counter];
}

/** Counters are set from cumulative values the agent already keeps: reset, then add the total. */
function setCounter<L extends string>(c: Counter<L>, labels: Record<L, string>, value: number): void {
  c.inc(labels, Number.isFinite(value) && value > 0 ? value : 0);
}

export function createMetrics(probe: AgentProbe): Registry {
  const registers = [new Registry()];
  const registry = registers[0];
  collectDefaultMetrics({ register: registry, prefix: 'sluice_' });
  registerRulesMetrics(registry, () => probe.view.rules?.stats());

  new Gauge({
    name: 'sluice_build_info',
    help: 'Build of the running agent (value 1).',
    labelNames: ['version', 'node', 'arch'],
    registers,
    collect() {
      this.set({ version: VERSION, node: process.versions.node, arch: process.arch }, 1);
    },
  });

  new Gauge({
    name: 'sluice_binary_module_loaded_bytes',
    help: 'Modules the single binary carries apart from its main script (opcua: node-opcua and the opcua driver), by source size, once this process has evaluated them. None under plain Node.',
    labelNames: ['module'],
    registers,
    collect() {
      this.reset();
      for (const [name, m] of loadedJsAssets()) this.set({ module: name }, m.bytes);
    },
  });

  // ---- inputs
  const inputLabels = ['input', 'type'] as const;
  new Counter({
    name: 'sluice_input_points_total',
    help: 'Points an input produced.',
    labelNames: inputLabels,
    registers,
    collect() {
      this.reset();
      for (const [id, s] of Object.entries(probe.snap().inputs)) setCounter(this, { input: id, type: s.type }, s.points);
    },
  });
  new Counter({
    name: 'sluice_input_errors_total',
    help: 'Readings an input could not turn into points (malformed payloads, garbage lines, Modbus exceptions).',
    labelNames: inputLabels,
    registers,
    collect() {
      this.reset();
      for (const [id, s] of Object.entries(probe.snap().inputs)) setCounter(this, { input: id, type: s.type }, s.errors);
    },
  });
  new Counter({
    name: 'sluice_input_refused_points_total',
    help: 'Points the store refused (full under drop_newest, or shutting down).',
    labelNames: inputLabels,
    registers,
    collect() {
      this.reset();
      for (const [id, s] of Object.entries(probe.snap().inputs)) setCounter(this, { input: id, type: s.type }, s.refused);
    },
  });
  new Gauge({
    name: 'sluice_input_last_point_timestamp_seconds',
    help: 'When an input last produced a point (Unix time).',
    labelNames: inputLabels,
    registers,
    collect() {
      this.reset();
      for (const [id, s] of Object.entries(probe.snap().inputs)) if (s.lastPointMs !== null) this.set({ input: id, type: s.type }, s.lastPointMs / 1000);
    },
  });
  new Counter({
    name: 'sluice_input_driver_events_total',
    help: 'Driver-specific counters of an input (reconnects, timeouts, CRC errors, acknowledged messages...), by event.',
    labelNames: [...inputLabels, 'event'],
    registers,
    collect() {
      this.reset();
      for (const [id, s] of Object.entries(probe.snap().inputs)) {
        for (const [event, v] of Object.entries(s.counters ?? {})) if (!DRIVER_LEVELS.has(event)) setCounter(this, { input: id, type: s.type, event }, v);
      }
    },
  });
  new Gauge({
    name: 'sluice_input_driver_level',
    help: 'Driver-specific levels of an input (MQTT messages in flight), by name.',
    labelNames: [...inputLabels, 'name'],
    registers,
    collect() {
      this.reset();
      for (const [id, s] of Object.entries(probe.snap().inputs)) {
        for (const [name, v] of Object.entries(s.counters ?? {})) if (DRIVER_LEVELS.has(name)) this.set({ input: id, type: s.type, name }, v);
      }
    },
  });
  new Counter({
    name: 'sluice_modbus_errors_total',
    help: 'Modbus errors by code: an exception code (1 illegal function, 2 illegal address, 3 illegal value, 4 device failure, 6 busy, 10/11 gateway), timeout, crc or protocol.',
    labelNames: ['input', 'code'],
    registers,
    collect() {
      this.reset();
      for (const [id, s] of Object.entries(probe.snap().inputs)) {
        if (s.type !== 'modbus') continue;
        for (const [counter, v] of Object.entries(s.counters ?? {})) {
          const code = modbusErrorCode(counter);
          if (code !== undefined) setCounter(this, { input: id, code }, v);
        }
      }
    },
  });

  // ---- store
  const storeGauge = (name: string, help: string, read: (s: ReturnType<AgentProbe['snap']>['store']) => number | null) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = read(probe.snap().store);
        if (v === null) this.reset();
        else this.set(v);
      },
    });
  storeGauge('sluice_store_size_bytes', 'Store on disk: database, WAL and shared memory.', (s) => s.store_bytes);
  storeGauge('sluice_store_capacity_bytes', 'The cap on the store (buffer.max_size).', (s) => s.capacity_bytes);
  storeGauge('sluice_store_used_bytes', 'Database pages in use (the cap is enforced on these plus the WAL budget).', (s) => s.used_bytes);
  storeGauge('sluice_store_points', 'Points held.', (s) => s.points);
  storeGauge('sluice_store_values', 'Field values held.', (s) => s.values);
  storeGauge('sluice_store_series', 'Series (measurement + tag set) known.', (s) => s.series);
  storeGauge('sluice_store_oldest_timestamp_seconds', 'Time of the oldest point held (Unix time).', (s) => (s.oldest_ms === null ? null : s.oldest_ms / 1000));
  storeGauge('sluice_store_newest_timestamp_seconds', 'Time of the newest point held (Unix time).', (s) => (s.newest_ms === null ? null : s.newest_ms / 1000));
  storeGauge('sluice_store_runway_seconds', 'Time until the store reaches its cap at the ingest rate of the last 10 minutes.', (s) => s.runway_s ?? null);
  new Gauge({
    name: 'sluice_store_tier_rows',
    help: 'Rows held per tier: points for raw, windows for each rollup tier (1m, 1h, ...).',
    labelNames: ['tier'],
    registers,
    collect() {
      this.reset();
      for (const [tier, t] of Object.entries(probe.snap().store.tiers ?? {})) this.set({ tier }, t.rows);
    },
  });
  new Gauge({
    name: 'sluice_store_tier_oldest_timestamp_seconds',
    help: 'Time of the oldest row held per tier (Unix time): how far back each resolution reaches.',
    labelNames: ['tier'],
    registers,
    collect() {
      this.reset();
      for (const [tier, t] of Object.entries(probe.snap().store.tiers ?? {})) if (t.oldest_ms !== null) this.set({ tier }, t.oldest_ms / 1000);
    },
  });
  new Counter({
    name: 'sluice_store_dropped_points_total',
    help: 'Points that left the store other than by delivery, by reason (dropped_oldest, dropped_newest, rolled_up, retention, quarantine_evicted, quarantine_dropped, quarantine_full).',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, v] of Object.entries(probe.snap().store.dropped)) setCounter(this, { reason }, v);
    },
  });
  new Counter({
    name: 'sluice_store_dropped_values_total',
    help: 'Field values that left the store other than by delivery, by reason.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      for (const [reason, v] of Object.entries(probe.snap().store.dropped_values)) setCounter(this, { reason }, v);
    },
  });
  const commitSeconds = new Histogram({
    name: 'sluice_store_commit_duration_seconds',
    help: 'Time a group commit takes (encode, write, fsync): the latency of making points durable.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const committedPoints = new Counter({ name: 'sluice_store_committed_points_total', help: 'Points made durable by group commits.', registers });
  const commitFailures = new Counter({ name: 'sluice_store_commit_failures_total', help: 'Group commits that failed or were refused (drop_newest at the cap); their writers were told.', registers });
  probe.addCommitListener((e) => {
    if (e.error) commitFailures.inc();
    else {
      commitSeconds.observe(e.durationMs / 1000);
      committedPoints.inc(e.points);
    }
  });

  // ---- outputs: the ring's cursors, plus whatever numeric stats the outputs report themselves
  const outputLabels = ['output', 'type'] as const;
  const outputs = () => Object.entries(probe.snap().store.outputs).map(([id, o]) => ({ id, o, labels: { output: id, type: probe.outputType(id) } }));
  new Counter({
    name: 'sluice_output_sent_points_total',
    help: 'Points an output delivered (acknowledged by the upstream).',
    labelNames: outputLabels,
    registers,
    collect() {
      this.reset();
      for (const { o, labels } of outputs()) setCounter(this, labels, o.sent_points);
    },
  });
  new Counter({
    name: 'sluice_output_rejected_points_total',
    help: 'Points the upstream refused for good (4xx), counted and not retried.',
    labelNames: outputLabels,
    registers,
    collect() {
      this.reset();
      for (const { o, labels } of outputs()) setCounter(this, labels, o.rejected_points);
    },
  });
  new Gauge({
    name: 'sluice_output_backlog_points',
    help: 'Points stored and not yet delivered to an output.',
    labelNames: outputLabels,
    registers,
    collect() {
      this.reset();
      for (const { o, labels } of outputs()) this.set(labels, o.backlog_points);
    },
  });
  new Gauge({
    name: 'sluice_output_backlog_values',
    help: 'Field values stored and not yet delivered to an output.',
    labelNames: outputLabels,
    registers,
    collect() {
      this.reset();
      for (const { o, labels } of outputs()) this.set(labels, o.backlog_values);
    },
  });
  new Gauge({
    name: 'sluice_output_oldest_unsent_age_seconds',
    help: 'Age of the oldest point not yet delivered to an output (0 when nothing waits).',
    labelNames: outputLabels,
    registers,
    collect() {
      this.reset();
      const now = Date.now();
      for (const { o, labels } of outputs()) this.set(labels, o.oldest_unsent_ms === null ? 0 : Math.max(0, (now - o.oldest_unsent_ms) / 1000));
    },
  });
  new Gauge({
    name: 'sluice_output_last_success_timestamp_seconds',
    help: 'When an output last delivered a batch (Unix time).',
    labelNames: outputLabels,
    registers,
    collect() {
      this.reset();
      for (const { o, labels } of outputs()) if (o.last_success_ms !== null) this.set(labels, o.last_success_ms / 1000);
    },
  });
  new Counter({
    name: 'sluice_output_lost_unsent_points_total',
    help: 'Points that left the store (rolled up, dropped for space, retention) before this output received them.',
    labelNames: outputLabels,
    registers,
    collect() {
      this.reset();
      for (const { o, labels } of outputs()) setCounter(this, labels, o.lost_unsent_points ?? 0);
    },
  });
  new Gauge({
    name: 'sluice_output_quarantined_points',
    help: 'Points an output\'s upstream refused for good, held in the quarantine, by reason (sluice quarantine list).',
    labelNames: ['output', 'reason'] as const,
    registers,
    collect() {
      this.reset();
      for (const [output, q] of Object.entries(probe.snap().store.quarantine)) for (const [reason, r] of Object.entries(q.reasons)) this.set({ output, reason }, r.points);
    },
  });
  // What a running output says about itself (src/sync: requests, retries, adaptive concurrency).
  const running = () => Object.entries(probe.outputStats()).flatMap(([id, s]) => (s ? [{ s, labels: { output: id, type: probe.outputType(id) } }] : []));
  const outputCounter = (name: string, help: string, read: (s: OutputStats) => number) =>
    new Counter({
      name,
      help,
      labelNames: outputLabels,
      registers,
      collect() {
        this.reset();
        for (const { s, labels } of running()) setCounter(this, labels, read(s));
      },
    });
  const outputGauge = (name: string, help: string, read: (s: OutputStats) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: outputLabels,
      registers,
      collect() {
        this.reset();
        for (const { s, labels } of running()) {
          const v = read(s);
          if (v !== null) this.set(labels, v);
        }
      },
    });
  outputCounter('sluice_output_requests_total', 'Write requests an output made (since the agent started).', (s) => s.requests);
  outputCounter('sluice_output_sent_bytes_total', 'Payload bytes an output sent, before compression (since the agent started).', (s) => s.sentBytes);
  outputCounter('sluice_output_retries_total', 'Requests that failed and were retried (5xx, network errors).', (s) => s.retries);
  outputCounter('sluice_output_throttles_total', 'Requests the upstream throttled (429/503 with Retry-After).', (s) => s.throttles);
  outputCounter('sluice_output_splits_total', 'Batches split because the upstream found them too large (413).', (s) => s.splits);
  outputGauge('sluice_output_request_latency_seconds', 'Moving average of successful write latency.', (s) => (s.latencyMs === null ? null : s.latencyMs / 1000));
  outputGauge('sluice_output_inflight_requests', 'Write requests in flight.', (s) => s.inFlight);
  outputGauge('sluice_output_concurrency_requests', 'The adaptive limit on requests in flight.', (s) => s.concurrency);
  outputGauge('sluice_output_batch_points', 'The adaptive batch size.', (s) => s.batchPoints);
  outputGauge('sluice_output_live_lag_seconds', "Age of the live lane's oldest point not yet delivered (0 when it is drained).", (s) => s.liveLagMs / 1000);
  outputGauge('sluice_output_paused', 'Whether an output is paused for a reason waiting will not fix (auth, fatal): 1 or 0.', (s) => (s.paused ? 1 : 0));
  outputGauge('sluice_output_last_error_timestamp_seconds', 'When an output last failed (Unix time).', (s) => (s.lastErrorMs === null ? null : s.lastErrorMs / 1000));
  new Counter({
    name: 'sluice_output_driver_events_total',
    help: 'Driver-specific counters of an output, by event.',
    labelNames: [...outputLabels, 'event'],
    registers,
    collect() {
      this.reset();
      for (const { s, labels } of running()) for (const [event, v] of Object.entries(s.counters)) setCounter(this, { ...labels, event }, v);
    },
  });

  // ---- health, so alerting can use the same judgement as /healthz
  new Gauge({
    name: 'sluice_health_check_ok',
    help: 'Whether a health check passes (1) or fails (0); the checks of /healthz.',
    labelNames: ['check'],
    registers,
    collect() {
      this.reset();
      for (const c of probe.health().checks) this.set({ check: c.name }, c.ok ? 1 : 0);
    },
  });
  new Gauge({
    name: 'sluice_agent_start_timestamp_seconds',
    help: 'When the agent started (Unix time).',
    registers,
    collect() {
      this.set(probe.startedMs / 1000);
    },
  });
  return registry;
}
