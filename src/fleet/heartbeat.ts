// The heartbeat: every fleet.interval a gateway says how it is (version, config serial, health,
// backlog), so a fleet can be watched from one place.
//   MQTT: retained on `sluice/<agent id>/status` (fleet.heartbeat.mqtt.topic), QoS 1. The broker holds
//         the last report for late subscribers; the will message ({"online":false}, retained) replaces
//         it when the gateway drops off without saying goodbye, and a clean stop publishes the same.
//   HTTP: POST of the same JSON to fleet.heartbeat.url.
// Quiet in steady state: a failure is logged when it starts and when it ends, not at every beat.
import type { Logger } from '../core/component.js';
import type { FleetConfig } from '../config/fleet.js';
import { MqttPublisher } from '../net/mqtt-publisher.js';
import { postJson } from '../net/webhook.js';

const POST_TIMEOUT_MS = 10_000;
const MQTT_CLOSE_TIMEOUT_MS = 2_000;

export interface HeartbeatStatus {
  last_ms: number | null;
  error: string | null;
}

export class Heartbeat {
  readonly status: HeartbeatStatus = { last_ms: null, error: null };
  /** Made only when the heartbeat uses MQTT (mqtt.js is then loaded). */
  private publisher: MqttPublisher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly topic: string | undefined;
  private failing = new Set<string>();
  private stopped = false;

  constructor(
    private readonly cfg: FleetConfig,
    private readonly agentId: string,
    private readonly report: () => Record<string, unknown>,
    private readonly log: Logger,
  ) {
    this.topic = cfg.heartbeat.mqtt?.topic.replaceAll('{agent}', agentId);
  }

  get enabled(): boolean {
    return this.cfg.heartbeat.mqtt !== undefined || this.cfg.heartbeat.url !== undefined;
  }

  start(): void {
    if (!this.enabled) return;
    const m = this.cfg.heartbeat.mqtt;
    const topic = this.topic;
    if (m && topic) {
      this.publisher = new MqttPublisher({
        url: m.url,
        clientId: `sluice-${this.agentId}-status`,
        username: m.username,
        password: m.password,
        connectTimeoutMs: 10_000,
        will: { topic, payload: JSON.stringify({ agent_id: this.agentId, online: false }), qos: 1, retain: true },
        onError: (err) => this.failed('mqtt', err),
        // The first report goes out as soon as the broker is there, not one interval later.
        onConnect: () => this.publishMqtt(),
      });
      this.publisher.start();
    }
    this.beat();
    this.timer = setInterval(() => this.beat(), this.cfg.interval);
    this.timer.unref();
  }

  /** Sends one report now (also used by tests and after a change worth reporting at once). */
  beat(): void {
    if (this.stopped) return;
    this.publishMqtt();
    const url = this.cfg.heartbeat.url;
    if (url) {
      postJson(url, this.report(), { timeoutMs: POST_TIMEOUT_MS })
        .then((res) => {
          if (!res.ok) throw new Error(`HTTP ${res.status} from ${url}`);
          this.succeeded('http');
        })
        .catch((err: unknown) => this.failed('http', err));
    }
  }

  private publishMqtt(): void {
    const publisher = this.publisher;
    if (!publisher?.connected || !this.topic) return;
    publisher.publish(this.topic, JSON.stringify(this.report()), { qos: 1, retain: true }, POST_TIMEOUT_MS).then(
      () => this.succeeded('mqtt'),
      (err: unknown) => this.failed('mqtt', err),
    );
  }

  private succeeded(via: string): void {
    this.status.last_ms = Date.now();
    if (this.failing.delete(via)) this.log.info({ via }, 'heartbeat delivered again');
    if (this.failing.size === 0) this.status.error = null;
  }

  private failed(via: string, err: unknown): void {
    const message = `${via}: ${(err as Error).message ?? String(err)}`;
    this.status.error = message;
    if (!this.failing.has(via)) this.log.warn({ via, err: message }, 'heartbeat not delivered; retrying every interval');
    this.failing.add(via);
  }

  /** Says goodbye (retained offline report) and disconnects. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const publisher = this.publisher;
    this.publisher = undefined;
    if (!publisher) return;
    const goodbye = this.topic ? { topic: this.topic, payload: JSON.stringify({ ...this.report(), online: false }), options: { qos: 1 as const, retain: true }, timeoutMs: MQTT_CLOSE_TIMEOUT_MS } : undefined;
    await publisher.close(goodbye);
  }
}
