// The mqtt input: subscribes to topics on one broker and acknowledges QoS 1/2 messages only once their
// points are committed to the ring, so a message is either in the store or still with the broker.
//
// This file is the connection and its state (state.ts: one record, every transition here); the other
// concerns have their own modules:
//   ack-gate.ts    holds PUBACK/PUBREC/PUBCOMP until the commit, over mqtt.js's packet writer
//   intake.ts      PUBLISH → points → batches for the ring; the in-flight window; the byte budget
//   redelivery.ts  recognises copies the broker re-sends of messages already stored
//   session.ts     client options (a persistent session) and the session marker file
//
// Refusals. When the ring refuses points (when_full: drop_newest), their messages are not acknowledged
// and the input stops taking new ones. After a backoff (5 s, doubling to 5 min) it disconnects and
// reconnects: the broker re-sends the unacknowledged messages (MQTT re-sends only on a new connection)
// and keeps the rest queued; the first batch that commits resumes normal work.
import { connect, type IConnackPacket, type ISubscriptionMap, type MqttClient, type Packet } from 'mqtt';
import { sinkRefusal, type Input, type InputContext, type InputStats, type Logger } from '../../src/core/component.js';
import { Backoff } from '../../src/core/backoff.js';
import { AckGate } from './ack-gate.js';
import { Intake, type Totals } from './intake.js';
import { Redeliveries } from './redelivery.js';
import type { MqttInputConfig } from './schema.js';
import { clientOptions, SessionMarker } from './session.js';
import { isOpen, takesMessages, type MqttState } from './state.js';

/** Timings, overridable by tests. */
export interface MqttTuning {
  /** Reconnect backoff: first delay, and the cap it doubles up to (±20 % jitter). */
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** A connection that lasted this long resets the reconnect backoff. */
  stableAfterMs: number;
  /** Redelivery backoff after the ring refused points. */
  refusalMinMs: number;
  refusalMaxMs: number;
  /** At most one malformed-payload log line per this interval. */
  warnIntervalMs: number;
  /** Most points gathered before they are handed to the ring without waiting for the event loop to turn. */
  maxBatchPoints: number;
  /** How long stop() waits for the last acknowledgements and a clean DISCONNECT. */
  stopTimeoutMs: number;
}

export const DEFAULT_TUNING: MqttTuning = {
  reconnectMinMs: 1000,
  reconnectMaxMs: 30_000,
  stableAfterMs: 10_000,
  refusalMinMs: 5000,
  refusalMaxMs: 300_000,
  warnIntervalMs: 60_000,
  maxBatchPoints: 5000,
  stopTimeoutMs: 3000,
};

export class MqttInput implements Input {
  private client: MqttClient | undefined;
  private readonly tuning: MqttTuning;
  private readonly log: Logger;
  private readonly clientId: string;
  private readonly reconnectBackoff: Backoff;
  private readonly refusalBackoff: Backoff;
  private readonly session: SessionMarker;
  private readonly totals: Totals;
  private readonly gate: AckGate;
  private readonly intake: Intake;
  private redeliveries: Redeliveries | undefined;

  private state: MqttState = { link: { kind: 'idle' }, store: { kind: 'accepting' } };
  /** Subscribed in this process: later connections that kept the session have the subscriptions. */
  private subscribed = false;
  private lastError: Error | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private refusalTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: MqttInputConfig,
    private readonly ctx: InputContext,
    tuning: Partial<MqttTuning> = {},
  ) {
    this.tuning = { ...DEFAULT_TUNING, ...tuning };
    this.log = ctx.log;
    this.clientId = config.client_id ?? `sluice-${ctx.agentId}-${ctx.id}`;
    this.reconnectBackoff = new Backoff({ minMs: this.tuning.reconnectMinMs, maxMs: this.tuning.reconnectMaxMs });
    this.refusalBackoff = new Backoff({ minMs: this.tuning.refusalMinMs, maxMs: this.tuning.refusalMaxMs });
    this.session = new SessionMarker(ctx.dataDir, ctx.id, config.url, this.clientId, this.log);
    this.totals = {
      points: 0,
      errors: 0,
      refused: 0,
      lastPointMs: null,
      counters: {
        messages_received: 0,
        messages_redelivered: 0,
        messages_duplicate: 0,
        messages_empty: 0,
        messages_malformed: 0,
        lines_rejected: 0,
        messages_acked: 0,
        messages_refused: 0,
        topic_unmatched: 0,
        connects: 0,
        connection_losses: 0,
        early_commits: 0,
        inflight: 0,
        inflight_bytes: 0,
        inflight_bytes_max: 0,
        intake_holdbacks: 0,
        intake_held_ms: 0,
        redelivery_records: 0,
      },
    };
    this.gate = new AckGate({
      isOpen: () => isOpen(this.state.link),
      redeliveries: () => this.redeliveries,
      acknowledged: () => this.totals.counters.messages_acked++,
      confirmed: () => this.intake.scheduleFlush(),
    });
    this.intake = new Intake({
      config,
      ctx,
      totals: this.totals,
      gate: this.gate,
      redeliveries: () => this.redeliveries,
      takesMessages: () => takesMessages(this.state),
      stopping: () => this.state.link.kind === 'stopping',
      committed: () => this.onCommitted(),
      refused: (err) => this.onRefused(err),
      maxBatchPoints: this.tuning.maxBatchPoints,
      warnIntervalMs: this.tuning.warnIntervalMs,
    });
  }

  async start(): Promise<void> {
    const options = await clientOptions(this.config, this.clientId);
    // After a stop and start (a reload) this process has been connected before: that is a reconnection.
    this.state.link = { kind: 'down', outageSinceMs: null, everUp: this.subscribed };
    this.redeliveries ??= new Redeliveries(`mqtt:${this.ctx.id}`, `${this.config.url} ${this.clientId}`, this.ctx.sink.readMarks?.(`mqtt:${this.ctx.id}`) ?? new Map());
    const client = connect(this.config.url, options);
    this.client = client;
    this.gate.install(client);
    this.intake.install(client);
    client.on('packetreceive', (packet) => this.onPacket(packet));
    client.on('connect', (connack) => this.onConnect(connack));
    client.on('close', () => this.onClose());
    client.on('error', (err) => this.onError(err));
  }

  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.state.link = { kind: 'stopping', open: isOpen(this.state.link) };
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.refusalTimer) clearTimeout(this.refusalTimer);
    this.reconnectTimer = this.refusalTimer = undefined;
    // What arrived before stop is committed and acknowledged now, so a clean restart re-reads nothing.
    this.intake.flush();
    this.ctx.sink.commitNow?.();
    await withTimeout(this.intake.settled, this.tuning.stopTimeoutMs);
    this.intake.close();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => client.end(true, () => resolve()), this.tuning.stopTimeoutMs);
      client.end(false, () => {
        clearTimeout(force);
        resolve();
      });
    });
    this.client = undefined;
    this.state.link = { kind: 'idle' };
  }

  stats(): InputStats {
    const counters = { ...this.totals.counters, inflight: this.gate.unacked, inflight_bytes: this.intake.inflightBytes, redelivery_records: this.redeliveries?.size ?? 0 };
    return { ...this.totals, counters };
  }

  // ------------------------------------------------------------------------------- connection

  private onPacket(packet: Packet): void {
    if (packet.cmd === 'connack') {
      // Before any PUBLISH that follows it (mqtt.js emits 'connect' later).
      if ((packet.returnCode ?? packet.reasonCode ?? 0) !== 0) return;
      const link = this.state.link;
      if (link.kind === 'stopping') link.open = true;
      else {
        const announce = link.kind === 'down' ? { first: !link.everUp, outageSinceMs: link.outageSinceMs } : null;
        this.state.link = { kind: 'up', sinceMs: Date.now(), announce };
      }
      this.redeliveries?.connected(packet.sessionPresent);
      return;
    }
    if (packet.cmd === 'pingresp') return this.gate.onPingresp();
    if (packet.cmd === 'pubrel') return this.intake.onPubrel(packet.messageId);
    if (packet.cmd === 'publish') this.intake.onPublish(packet);
  }

  private onConnect(connack: IConnackPacket): void {
    const client = this.client;
    const link = this.state.link;
    if (!client || link.kind !== 'up') return;
    this.totals.counters.connects++;
    const sessionPresent = connack.sessionPresent;
    const details: Record<string, unknown> = { url: this.config.url, client_id: this.clientId, session_present: sessionPresent };
    const announce = link.announce;
    link.announce = null;
    if (announce?.outageSinceMs != null) details.down_ms = Date.now() - announce.outageSinceMs;
    if (announce && (announce.first || announce.outageSinceMs !== null)) this.log.info(details, 'connected to the MQTT broker');
    else this.log.debug(details, 'reconnected to the MQTT broker');
    if (!sessionPresent && this.config.qos > 0 && this.session.existedBefore()) {
      this.log.warn(
        { client_id: this.clientId },
        'the broker kept no session for this client: QoS 1/2 messages published while sluice was disconnected were not kept (broker restarted without persistence, or the session expired)',
      );
    }
    this.lastError = undefined;
    // Subscribe on the first connection of this process (the config may have changed since the
    // session was made) and whenever the broker lost the session; otherwise the session has them.
    if (!this.subscribed || !sessionPresent) this.subscribe(client);
    // Answered after the broker's redeliveries: forgets the records nothing was re-sent for.
    this.gate.probe();
  }

  private subscribe(client: MqttClient): void {
    const map: ISubscriptionMap = {};
    // MQTT 5 retain handling 1: retained messages only for a new subscription, not on every restart.
    for (const t of this.config.topics) map[t] = this.config.protocol_version === 5 ? { qos: this.config.qos, rh: 1 } : { qos: this.config.qos };
    client.subscribe(map, (err, granted) => {
      if (err) {
        if (this.state.link.kind !== 'stopping') this.log.error({ err, topics: this.config.topics }, 'subscribing failed; retrying on the next connection');
        return;
      }
      this.subscribed = true;
      if (this.config.qos > 0) this.session.remember();
      for (const g of granted ?? []) {
        if (g.qos === 128) this.log.error({ topic: g.topic }, 'the broker refused the subscription (not authorised, or an invalid filter)');
        else if (g.qos < this.config.qos) this.log.warn({ topic: g.topic, qos: g.qos, wanted: this.config.qos }, 'the broker granted a lower QoS than configured');
      }
    });
  }

  private onClose(): void {
    const link = this.state.link;
    // Packet ids belong to a connection: what is still unacknowledged the broker re-sends on the next.
    this.gate.reset();
    this.redeliveries?.disconnected();
    if (link.kind === 'stopping' || link.kind === 'cycling') {
      link.open = false;
      return;
    }
    if (link.kind === 'idle') return;
    let outageSinceMs = link.kind === 'down' ? link.outageSinceMs : null;
    if (link.kind === 'up') {
      this.totals.counters.connection_losses++;
      if (Date.now() - link.sinceMs >= this.tuning.stableAfterMs) this.reconnectBackoff.reset();
      this.log.warn({ url: this.config.url, err: this.lastError }, 'connection to the MQTT broker lost; reconnecting with backoff');
      outageSinceMs = Date.now();
    }
    this.state.link = { kind: 'down', outageSinceMs, everUp: link.kind === 'up' || (link.kind === 'down' && link.everUp) };
    this.scheduleReconnect(this.reconnectBackoff.nextDelayMs());
  }

  private onError(err: Error): void {
    this.lastError = err;
    const link = this.state.link;
    if (link.kind === 'down' && link.outageSinceMs === null) {
      this.log.warn({ url: this.config.url, err }, 'cannot connect to the MQTT broker; retrying with backoff');
      link.outageSinceMs = Date.now();
    } else if (link.kind === 'up') {
      this.log.warn({ err }, 'MQTT client error');
    }
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.state.link.kind === 'down') this.client?.reconnect();
    }, delayMs);
  }

  // ---------------------------------------------------------------------------------- refusals

  /** A commit returned: the store accepts points, so intake takes messages again (those left with the broker come back on the cycle). */
  private onCommitted(): void {
    if (this.state.store.kind !== 'refusing') return;
    this.state.store = { kind: 'accepting' };
    this.refusalBackoff.reset();
    this.log.info({}, 'the store accepts points again; acknowledging messages');
  }

  private onRefused(err: unknown): void {
    const store = this.state.store;
    if (this.config.qos === 0) {
      if (store.kind !== 'refusing') this.log.warn({ err }, 'the store refused points; QoS 0 messages cannot be re-read, they are lost (counted as refused)');
      this.state.store = { kind: 'refusing', holding: false };
      return;
    }
    if (store.kind === 'refusing' && store.holding) return;
    const delayMs = this.refusalBackoff.nextDelayMs();
    if (store.kind !== 'refusing') {
      this.log.warn(
        { err, retry_ms: delayMs, full: sinkRefusal(err) === 'full' },
        'the store refused points: messages are not acknowledged and stay with the broker; retrying by reconnecting',
      );
    } else {
      this.log.debug({ retry_ms: delayMs }, 'the store still refuses points');
    }
    this.state.store = { kind: 'refusing', holding: true };
    this.refusalTimer = setTimeout(() => {
      this.refusalTimer = undefined;
      // A commit may have succeeded meanwhile (onCommitted): then intake runs again already.
      if (this.state.store.kind === 'refusing') this.state.store = { kind: 'refusing', holding: false };
      this.cycleConnection();
    }, delayMs);
  }

  /** Disconnects and reconnects at once: the broker then re-sends every unacknowledged message. */
  private cycleConnection(): void {
    const client = this.client;
    if (!client || this.state.link.kind !== 'up') return;
    const cycling = { kind: 'cycling' as const, open: true };
    this.state.link = cycling;
    client.end(false, () => {
      if (this.state.link !== cycling) return; // stop() took over
      this.state.link = { kind: 'down', outageSinceMs: null, everUp: true };
      client.reconnect();
    });
  }
}

async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
