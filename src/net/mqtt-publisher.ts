// One MQTT publisher for everything the agent publishes about itself (alerts, fleet heartbeats): the
// mqtt.js client loaded only when a config asks for it (it costs a few MB a gateway may not spare),
// a clean session that mqtt.js reconnects on its own, no offline queue (callers keep and retry what
// they send), and a close that can leave a last message (a retained "offline" report) within a bound.
// The MQTT input is not this: it subscribes, and acknowledges only after its points are committed.
import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';

export interface MqttPublisherOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  tls?: { ca?: string; insecure_skip_verify: boolean };
  connectTimeoutMs: number;
  /** Published by the broker if the connection drops without a clean close. */
  will?: { topic: string; payload: string; qos: 0 | 1 | 2; retain: boolean };
  /** Every connection (the first and each reconnect). */
  onConnect?: () => void;
  /** A connection error, a failed load of mqtt.js, or a refused connect. */
  onError?: (err: Error) => void;
}

export interface PublishOptions {
  qos: 0 | 1 | 2;
  retain: boolean;
}

/** Rejects when `signal` aborts or `ms` pass first; `what` names the step in the message. */
export function within<T>(promise: Promise<T>, ms: number, signal: AbortSignal | undefined, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => finish(() => reject(new Error(`${what}: stopped`)));
    const timer = setTimeout(() => finish(() => reject(new Error(`${what}: no answer within ${ms} ms`))), ms);
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort);
    promise.then(
      (v) => finish(() => resolve(v)),
      (err: unknown) => finish(() => reject(err instanceof Error ? err : new Error(String(err)))),
    );
  });
}

export class MqttPublisher {
  private client: MqttClient | undefined;
  /** Settles once mqtt.js is loaded and the client made (or not, when closed first). */
  private opening: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: MqttPublisherOptions) {}

  start(): void {
    this.opening = import('mqtt').then(
      ({ connect }) => {
        if (!this.closed) this.open(connect);
      },
      (err: unknown) => this.options.onError?.(err instanceof Error ? err : new Error(String(err))),
    );
  }

  private open(connect: typeof import('mqtt').connect): void {
    const o = this.options;
    const client: IClientOptions = { clientId: o.clientId, clean: true, reconnectPeriod: 5000, connectTimeout: o.connectTimeoutMs, queueQoSZero: false, writeCache: false };
    if (o.username !== undefined) client.username = o.username;
    if (o.password !== undefined) client.password = o.password;
    if (o.tls !== undefined) {
      if (o.tls.ca !== undefined) client.ca = readFileSync(o.tls.ca);
      client.rejectUnauthorized = !o.tls.insecure_skip_verify;
    }
    if (o.will) client.will = { ...o.will, payload: Buffer.from(o.will.payload) };
    this.client = connect(o.url, client);
    this.client.on('connect', () => o.onConnect?.());
    this.client.on('error', (err) => o.onError?.(err));
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Resolves once connected; rejects after `timeoutMs` or when `signal` aborts. */
  async waitConnected(timeoutMs: number, signal?: AbortSignal, what = `not connected to ${this.options.url}`): Promise<MqttClient> {
    await this.opening;
    const client = this.client;
    if (!client) throw new Error('mqtt: not started');
    if (client.connected) return client;
    let onConnect = (): void => {};
    const wait = new Promise<void>((resolve) => {
      onConnect = resolve;
      client.once('connect', onConnect);
    });
    try {
      await within(wait, timeoutMs, signal, what);
    } finally {
      client.off('connect', onConnect);
    }
    return client;
  }

  /** Publishes on a connected client; resolves when the broker acknowledged it (QoS 1 and 2). */
  async publish(topic: string, payload: string, options: PublishOptions, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const client = await this.waitConnected(timeoutMs, signal);
    await within(client.publishAsync(topic, payload, options).then(() => undefined), timeoutMs, signal, `mqtt: publish to ${topic}`);
  }

  /**
   * Disconnects. With `last`, and a connection, that message goes out first and the close waits for it
   * up to `timeoutMs`; otherwise the close is forced: nothing unacknowledged is waited for.
   */
  async close(last?: { topic: string; payload: string; options: PublishOptions; timeoutMs: number }): Promise<void> {
    this.closed = true;
    await this.opening;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    if (!last || !client.connected) return void (await client.endAsync(true));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        client.end(true);
        resolve();
      }, last.timeoutMs);
      client.publish(last.topic, last.payload, last.options, () => {
        clearTimeout(timer);
        client.end(false, {}, () => resolve());
      });
    });
  }
}
