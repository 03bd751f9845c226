// Sending alerts out: a JSON payload published to an MQTT broker (mqtt.js) and/or POSTed to a webhook
// (node's fetch). Each destination has its own bounded queue and sends one alert at a time, retrying
// with exponential backoff; nothing here is awaited by the sink, so a dead broker or webhook never
// slows ingestion. Delivery is at-least-once: a retry after a lost acknowledgement repeats an alert,
// and the payload's `id` lets a receiver drop the repeat.
import type { Logger } from '../core/component.js';
import { Unsigned, type FieldValue } from '../core/point.js';
import { MqttPublisher } from '../net/mqtt-publisher.js';
import { PostError, postJson } from '../net/webhook.js';
import type { AlertEvent } from './alerts.js';
import { SEVERITIES, type MqttNotifyConfig, type NotifyConfig, type Severity, type WebhookNotifyConfig } from './schema.js';

/** Longest wait between retries, whatever retry_backoff and Retry-After say. */
export const MAX_BACKOFF_MS = 60_000;
/** How long stop() lets queued alerts go out before it discards them. */
export const STOP_GRACE_MS = 2000;

export type ChannelName = 'mqtt' | 'webhook';

/** A failed attempt; `retry: false` means sending it again cannot help (a 4xx other than 408/429). */
export class NotifyError extends Error {
  override readonly name = 'NotifyError';
  constructor(
    message: string,
    readonly retry: boolean,
    readonly retryAfterMs?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The JSON body of a notification, the same on MQTT and the webhook. */
export interface AlertPayload {
  id: string;
  agent: string;
  rule: string;
  severity: Severity;
  state: AlertEvent['state'];
  measurement: string;
  field: string | null;
  tags: Record<string, string>;
  /** Numbers as numbers; integers beyond 2^53 as strings (JSON has no 64-bit integers). */
  value: number | string | boolean | null;
  condition: string;
  message: string;
  /** RFC 3339 time of detection, and the same in ms. */
  time: string;
  time_ms: number;
  since_ms: number;
  data_time_ms: number | null;
}

function jsonValue(v: FieldValue | null): AlertPayload['value'] {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  const big = v instanceof Unsigned ? v.value : v;
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big.toString();
}

export function alertPayload(e: AlertEvent, agentId: string): AlertPayload {
  return {
    id: e.id,
    agent: agentId,
    rule: e.rule,
    severity: e.severity,
    state: e.state,
    measurement: e.measurement,
    field: e.field,
    tags: e.tags,
    value: jsonValue(e.value),
    condition: e.condition,
    message: e.message,
    time: new Date(e.timeMs).toISOString(),
    time_ms: e.timeMs,
    since_ms: e.sinceMs,
    data_time_ms: e.dataTimeMs,
  };
}

/** One destination's way of sending one alert. */
export interface Transport {
  start(): void;
  /** Sends one alert; rejects with NotifyError (or any error: retried). Gives up when `signal` aborts. */
  send(payload: AlertPayload, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Counters of one destination, cumulative since the agent started. */
export interface ChannelStats {
  /** Alerts delivered (acknowledged by the broker for QoS ≥ 1, a 2xx from the webhook). */
  sent: number;
  /** Alerts given up on after their retries (or at once, for an answer a retry cannot change). */
  failed: number;
  /** Attempts that failed and were tried again. */
  retries: number;
  /** Alerts discarded unsent: the queue was full (the oldest goes) or the agent stopped. */
  dropped: number;
  /** Alerts waiting now (including the one being sent). */
  queued: number;
  last_success_ms: number | null;
  last_error: string | null;
  last_error_ms: number | null;
}

export interface ChannelOptions {
  retries: number;
  retryBackoffMs: number;
  queueSize: number;
  minSeverity: Severity;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

/** `promise`, or a rejection as soon as `signal` aborts, whichever comes first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new NotifyError('stopped', false));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/** A destination: its queue, its retry loop and its counters. */
export class Channel {
  private readonly queue: AlertPayload[] = [];
  private sending = false;
  private draining = false;
  private failing = false;
  private readonly abort = new AbortController();
  /** Cuts a backoff wait short when stopping, for one last attempt within the grace period. */
  private readonly wake = new AbortController();
  private idle: (() => void) | undefined;
  private readonly counters: Omit<ChannelStats, 'queued'> = {
    sent: 0,
    failed: 0,
    retries: 0,
    dropped: 0,
    last_success_ms: null,
    last_error: null,
    last_error_ms: null,
  };

  constructor(
    readonly name: ChannelName,
    private readonly transport: Transport,
    private readonly options: ChannelOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.transport.start();
  }

  /** Queues an alert; never waits. Alerts below min_severity are not for this destination. */
  enqueue(payload: AlertPayload): void {
    if (SEVERITIES.indexOf(payload.severity) < SEVERITIES.indexOf(this.options.minSeverity)) return;
    if (this.abort.signal.aborted) {
      this.counters.dropped++;
      return;
    }
    if (this.queue.length >= this.options.queueSize) {
      this.queue.shift();
      this.counters.dropped++;
    }
    this.queue.push(payload);
    if (!this.sending) void this.run();
  }

  private async run(): Promise<void> {
    this.sending = true;
    try {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        await this.deliver(next);
        if (this.abort.signal.aborted) break;
      }
    } finally {
      this.sending = false;
      this.idle?.();
    }
  }

  private async deliver(payload: AlertPayload): Promise<void> {
    const signal = this.abort.signal;
    for (let attempt = 0; ; attempt++) {
      try {
        // A transport that ignores the signal must not hold stop() up.
        await untilAborted(this.transport.send(payload, signal), signal);
        this.counters.sent++;
        this.counters.last_success_ms = Date.now();
        if (this.failing) {
          this.failing = false;
          this.log.info({ channel: this.name }, `alerts: ${this.name} delivers again`);
        }
        return;
      } catch (err) {
        if (signal.aborted) {
          this.counters.dropped++;
          return;
        }
        // Transports put the cause into a NotifyError's message themselves.
        const text = err instanceof NotifyError ? err.message : errorText(err);
        this.counters.last_error = text;
        this.counters.last_error_ms = Date.now();
        const retryable = !(err instanceof NotifyError) || err.retry;
        // Stopping: what is left gets one attempt each, within the grace period.
        if (!retryable || attempt >= this.options.retries || this.draining) {
          this.counters.failed++;
          if (!this.failing) {
            this.failing = true;
            // Once per outage: the counters tell the rest.
            this.log.warn({ channel: this.name, err: text, rule: payload.rule }, `alerts: ${this.name} failed; alert given up after ${attempt + 1} attempt(s)`);
          }
          return;
        }
        this.counters.retries++;
        const backoffMs = Math.min(MAX_BACKOFF_MS, this.options.retryBackoffMs * 2 ** attempt);
        const retryAfterMs = err instanceof NotifyError && err.retryAfterMs !== undefined ? Math.min(MAX_BACKOFF_MS, err.retryAfterMs) : 0;
        await pause(Math.max(backoffMs, retryAfterMs), this.wake.signal);
        if (signal.aborted) {
          this.counters.dropped++;
          return;
        }
      }
    }
  }

  /** Lets queued alerts go out for up to `graceMs` (one attempt each), then discards the rest and closes. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.draining = true;
    this.wake.abort();
    if (this.sending || this.queue.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.idle = () => {
          clearTimeout(timer);
          resolve();
        };
        if (!this.sending) void this.run();
      });
    }
    this.counters.dropped += this.queue.length;
    this.queue.length = 0;
    this.abort.abort();
    // The attempt in flight notices the abort and settles; wait for it so close() finds no user.
    if (this.sending) await new Promise<void>((resolve) => (this.idle = resolve));
    try {
      await this.transport.close();
    } catch (err) {
      // Stopping goes on regardless: the agent's data matters more than a clean disconnect.
      this.log.debug({ channel: this.name, err: errorText(err) }, 'alerts: closing the destination failed');
    }
  }

  stats(): ChannelStats {
    return { ...this.counters, queued: this.queue.length + (this.sending ? 1 : 0) };
  }
}

/** Fills the topic template. Values come from tags-free fields, so no wildcard can slip in. */
export function alertTopic(template: string, payload: AlertPayload): string {
  const vars: Record<string, string> = {
    agent: payload.agent,
    rule: payload.rule,
    severity: payload.severity,
    state: payload.state,
    measurement: payload.measurement.replace(/[+#/]/g, '_'),
  };
  return template.replace(/\{([a-z]+)\}/g, (whole, name: string) => vars[name] ?? whole);
}

/** Alerts over MQTT, through the publisher the heartbeat uses too (src/net/mqtt-publisher.ts). */
export class MqttTransport implements Transport {
  private readonly publisher: MqttPublisher;
  private lastConnectError: string | undefined;

  constructor(
    private readonly config: MqttNotifyConfig,
    agentId: string,
    private readonly log: Logger,
  ) {
    const c = config;
    this.publisher = new MqttPublisher({
      url: c.url,
      clientId: c.client_id ?? `sluice-${agentId}-alerts`,
      username: c.username,
      password: c.password,
      tls: c.tls,
      connectTimeoutMs: c.timeout,
      onConnect: () => {
        if (this.lastConnectError !== undefined) this.log.info({ url: c.url }, 'alerts: mqtt connected');
        this.lastConnectError = undefined;
      },
      onError: (err) => {
        // Reconnects are mqtt.js's job; log the first error of an outage, not every attempt.
        if (this.lastConnectError === undefined) this.log.warn({ url: c.url, err: err.message }, 'alerts: mqtt broker unreachable; retrying');
        this.lastConnectError = err.message;
      },
    });
  }

  start(): void {
    this.publisher.start();
  }

  async send(payload: AlertPayload, signal: AbortSignal): Promise<void> {
    const { url, timeout, topic, qos, retain } = this.config;
    const to = alertTopic(topic, payload);
    try {
      await this.publisher.waitConnected(timeout, signal, `mqtt: not connected to ${url}${this.lastConnectError ? ` (${this.lastConnectError})` : ''}`);
      await this.publisher.publish(to, JSON.stringify(payload), { qos, retain }, timeout, signal);
    } catch (err) {
      // A stop is final for this alert; anything else (no broker, no acknowledgement in time) is retried.
      throw new NotifyError((err as Error).message, !signal.aborted, undefined, { cause: err });
    }
  }

  close(): Promise<void> {
    // Forced: anything still unacknowledged was counted as dropped; do not wait for a dead broker.
    return this.publisher.close();
  }
}

export class WebhookTransport implements Transport {
  constructor(private readonly config: WebhookNotifyConfig) {}

  start(): void {}

  async send(payload: AlertPayload, signal: AbortSignal): Promise<void> {
    let res;
    try {
      res = await postJson(this.config.url, payload, { timeoutMs: this.config.timeout, signal, headers: this.config.headers });
    } catch (err) {
      throw new NotifyError(`webhook: ${err instanceof PostError ? err.message : errorText(err)}`, true, undefined, { cause: err });
    }
    if (res.ok) return;
    const retry = res.status >= 500 || res.status === 408 || res.status === 429;
    throw new NotifyError(`webhook: HTTP ${res.status} ${res.statusText}`, retry, res.retryAfterMs);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The destinations a config names, each with its queue. */
export function createChannels(config: NotifyConfig, agentId: string, log: Logger): Channel[] {
  const common = { retries: config.retries, retryBackoffMs: config.retry_backoff, queueSize: config.queue_size };
  const channels: Channel[] = [];
  if (config.mqtt) {
    const transport = new MqttTransport(config.mqtt, agentId, log);
    channels.push(new Channel('mqtt', transport, { ...common, minSeverity: config.mqtt.min_severity }, log));
  }
  if (config.webhook) {
    channels.push(new Channel('webhook', new WebhookTransport(config.webhook), { ...common, minSeverity: config.webhook.min_severity }, log));
  }
  return channels;
}
