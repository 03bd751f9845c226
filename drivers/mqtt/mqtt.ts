// The mqtt input: subscribes to topics on one broker and acknowledges QoS 1/2 messages only once their
// points are committed to the ring, so a message is either in the store or still with the broker.
//
// Acknowledgements. mqtt.js acknowledges a message as soon as its handlers return; its hooks for
// doing it later (`handleMessage`, and `customHandleAcks`, which it honours only for MQTT 5) stall its
// whole packet pipeline until the callback, i.e. one message per group commit. So this input lets
// mqtt.js run its handlers at full speed and holds back the PUBACK (QoS 1) or PUBREC (QoS 2) packets it
// sends, by wrapping the client's packet writer, until the commit that holds the message's points
// returns. Messages are decoded when their PUBLISH arrives (for QoS 2 mqtt.js surfaces them only at
// PUBREL, which the broker sends only after our PUBREC). Acknowledgements go out in arrival order and
// only on the connection the message came on: after a reconnect the broker re-sends every
// unacknowledged message itself.
//
// The in-flight window. A broker sends at most a window of unacknowledged QoS 1/2 messages (mosquitto
// max_inflight_messages for 3.1.1, the client's Receive Maximum for MQTT 5), then waits. When that many
// wait for the group commit, the input asks for the commit at once (`sink.commitNow`), otherwise a busy
// topic would be throttled to one window per commit interval.
//
// Refusals. When the ring refuses points (when_full: drop_newest), their messages are not acknowledged
// and the input stops taking new ones. After a backoff (5 s, doubling to 5 min) it disconnects and
// reconnects: the broker re-sends the unacknowledged messages (MQTT re-sends only on a new connection)
// and keeps the rest queued; the first batch that commits resumes normal work.
//
// Copies. A message committed whose acknowledgement the broker never read (a crash, a lost connection)
// comes again with the DUP flag; redelivery.ts records each message's packet id with its points and
// recognises the copy, which is acknowledged and not stored again. QoS 2 PUBCOMPs are held like the
// acknowledgements, until the commit that forgets the record.
import { ValueError } from '../../src/core/text-values.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type IClientOptions, type IConnackPacket, type ISubscriptionMap, type MqttClient, type Packet } from 'mqtt';
import { sinkRefusal, type CommitMark, type Input, type InputContext, type InputStats, type Logger } from '../../src/core/component.js';
import type { Point } from '../../src/core/point.js';
import { createDecoder, type MessageDecoder } from './payload.js';
import { Backoff } from '../../src/core/backoff.js';
import { RateLimitedWarning } from './pacing.js';
import { messageHash, Redeliveries, type Recorded } from './redelivery.js';
import type { MqttInputConfig } from './schema.js';

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

/** An acknowledgement held until the message's points are committed. */
interface HeldAck {
  messageId: number;
  /** The PUBACK/PUBREC (or PUBCOMP) mqtt.js wanted to send, once it asked. */
  packet?: Packet;
  released: boolean;
  /** The message's record, stored with its points. */
  record?: Recorded;
  /** A redelivered copy: the record of the stored message it repeats. */
  copyOf?: Recorded;
}

interface Batch {
  points: Point[];
  acks: HeldAck[];
  messages: number;
  records: Recorded[];
  /** PUBCOMPs that wait for this batch's commit (it deletes their records). */
  completions: HeldAck[];
}

/** What of a batch waits for its commit. */
interface Settled {
  acks: HeldAck[];
  points: number;
  messages: number;
  records: Recorded[];
  completions: HeldAck[];
  marks: CommitMark[];
}

type Probe = NonNullable<ReturnType<Redeliveries['probe']>>;

type SendPacket = (packet: Packet, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

export class MqttInput implements Input {
  private client: MqttClient | undefined;
  private readonly tuning: MqttTuning;
  private readonly decode: MessageDecoder;
  private readonly log: Logger;
  private readonly clientId: string;
  private readonly maxInflight: number;
  private readonly reconnectBackoff: Backoff;
  private readonly refusalBackoff: Backoff;
  private readonly malformedWarning: RateLimitedWarning;
  private readonly unmatchedWarning: RateLimitedWarning;
  private readonly totals: InputStats & { counters: Record<string, number> };

  /** Held acknowledgements of the current connection, by packet id. Cleared when it closes. */
  private acks = new Map<number, HeldAck>();
  /** Held PUBCOMPs of the current connection, by packet id. */
  private completions = new Map<number, HeldAck>();
  private unacked = 0;
  private batch: Batch = emptyBatch();
  private redeliveries: Redeliveries | undefined;
  /** PINGREQs in flight, oldest first: ours carry a probe, mqtt.js's keepalive pings none. */
  private pings: (Probe | null)[] = [];
  private flushHandle: NodeJS.Immediate | undefined;
  /** Settles batches in arrival order, so acknowledgements leave in the order messages came. */
  private ackTail: Promise<void> = Promise.resolve();
  private lastReceiptMs = 0;
  private receiptSeq = 0;

  private connected = false;
  private connectedAtMs = 0;
  private everConnected = false;
  private subscribed = false;
  private downSinceMs = 0;
  private downLogged = false;
  private lastError: Error | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  /** The ring refused points: new messages are left unacknowledged until the redelivery cycle. */
  private paused = false;
  private refusing = false;
  private refusalTimer: NodeJS.Timeout | undefined;
  /** A deliberate disconnect to make the broker redeliver; its close is not a lost connection. */
  private cycling = false;

  constructor(
    private readonly config: MqttInputConfig,
    private readonly ctx: InputContext,
    tuning: Partial<MqttTuning> = {},
  ) {
    this.tuning = { ...DEFAULT_TUNING, ...tuning };
    this.log = ctx.log;
    this.clientId = config.client_id ?? `sluice-${ctx.agentId}-${ctx.id}`;
    this.maxInflight = config.max_inflight;
    this.reconnectBackoff = new Backoff({ minMs: this.tuning.reconnectMinMs, maxMs: this.tuning.reconnectMaxMs });
    this.refusalBackoff = new Backoff({ minMs: this.tuning.refusalMinMs, maxMs: this.tuning.refusalMaxMs });
    this.malformedWarning = new RateLimitedWarning(this.log, 'malformed MQTT payload skipped (acknowledged: it would never parse)', this.tuning.warnIntervalMs);
    this.unmatchedWarning = new RateLimitedWarning(this.log, 'topic does not fit topic_tags: stored without topic tags', this.tuning.warnIntervalMs);
    this.decode = createDecoder({
      format: config.format,
      measurement: config.measurement,
      tags: config.tags,
      topicTags: config.topic_tags,
      json: config.json,
      influxPrecision: config.influx?.precision,
    });
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
        redelivery_records: 0,
      },
    };
  }

  async start(): Promise<void> {
    const options = await this.clientOptions();
    this.stopping = false;
    this.redeliveries ??= new Redeliveries(`mqtt:${this.ctx.id}`, `${this.config.url} ${this.clientId}`, this.ctx.sink.readMarks?.(`mqtt:${this.ctx.id}`) ?? new Map());
    const client = connect(this.config.url, options);
    this.client = client;
    this.holdAcknowledgements(client);
    client.on('packetreceive', (packet) => this.onPacket(packet));
    client.on('connect', (connack) => this.onConnect(connack));
    client.on('close', () => this.onClose());
    client.on('error', (err) => this.onError(err));
  }

  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.refusalTimer) clearTimeout(this.refusalTimer);
    this.reconnectTimer = this.refusalTimer = undefined;
    // What arrived before stop is committed and acknowledged now, so a clean restart re-reads nothing.
    this.flush();
    this.ctx.sink.commitNow?.();
    await withTimeout(this.ackTail, this.tuning.stopTimeoutMs);
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => client.end(true, () => resolve()), this.tuning.stopTimeoutMs);
      client.end(false, () => {
        clearTimeout(force);
        resolve();
      });
    });
    this.malformedWarning.close();
    this.unmatchedWarning.close();
    this.client = undefined;
    this.connected = false;
  }

  stats(): InputStats {
    return { ...this.totals, counters: { ...this.totals.counters, inflight: this.unacked, redelivery_records: this.redeliveries?.size ?? 0 } };
  }

  // ------------------------------------------------------------------------------- connection

  private async clientOptions(): Promise<IClientOptions> {
    const c = this.config;
    const options: IClientOptions = {
      clientId: this.clientId,
      protocolVersion: c.protocol_version,
      // A persistent session: the broker keeps our subscriptions and QoS 1/2 messages while we are away.
      clean: false,
      // Reconnection is ours (bounded exponential backoff); mqtt.js only knows a fixed period.
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      keepalive: 60,
      resubscribe: false,
      queueQoSZero: false,
    };
    if (c.protocol_version === 5) {
      options.properties = { sessionExpiryInterval: Math.floor(c.session_expiry / 1000), receiveMaximum: this.maxInflight };
    }
    if (c.username !== undefined) options.username = c.username;
    if (c.password !== undefined) options.password = c.password;
    if (c.password_file !== undefined) options.password = (await readFile(c.password_file, 'utf8')).replace(/\r?\n$/, '');
    if (c.tls) {
      if (c.tls.ca !== undefined) options.ca = await readFile(c.tls.ca);
      if (c.tls.cert !== undefined) options.cert = await readFile(c.tls.cert);
      if (c.tls.key !== undefined) options.key = await readFile(c.tls.key);
      options.rejectUnauthorized = !c.tls.insecure_skip_verify;
    }
    return options;
  }

  private onConnect(connack: IConnackPacket): void {
    const client = this.client;
    if (!client) return;
    this.connected = true;
    this.connectedAtMs = Date.now();
    this.totals.counters.connects++;
    const sessionPresent = connack.sessionPresent;
    const details: Record<string, unknown> = { url: this.config.url, client_id: this.clientId, session_present: sessionPresent };
    if (this.downLogged) details.down_ms = Date.now() - this.downSinceMs;
    if (!this.cycling && (this.downLogged || !this.everConnected)) this.log.info(details, 'connected to the MQTT broker');
    else this.log.debug(details, 'reconnected to the MQTT broker');
    if (!sessionPresent && this.config.qos > 0 && this.hadSessionBefore()) {
      this.log.warn(
        { client_id: this.clientId },
        'the broker kept no session for this client: QoS 1/2 messages published while sluice was disconnected were not kept (broker restarted without persistence, or the session expired)',
      );
    }
    this.downLogged = false;
    this.lastError = undefined;
    this.everConnected = true;
    // Subscribe on the first connection of this process (the config may have changed since the
    // session was made) and whenever the broker lost the session; otherwise the session has them.
    if (!this.subscribed || !sessionPresent) this.subscribe(client);
    // Answered after the broker's redeliveries: forgets the records nothing was re-sent for.
    this.probeAcknowledgements();
  }

  private subscribe(client: MqttClient): void {
    const map: ISubscriptionMap = {};
    // MQTT 5 retain handling 1: retained messages only for a new subscription, not on every restart.
    for (const t of this.config.topics) map[t] = this.config.protocol_version === 5 ? { qos: this.config.qos, rh: 1 } : { qos: this.config.qos };
    client.subscribe(map, (err, granted) => {
      if (err) {
        if (!this.stopping) this.log.error({ err, topics: this.config.topics }, 'subscribing failed; retrying on the next connection');
        return;
      }
      this.subscribed = true;
      this.rememberSession();
      for (const g of granted ?? []) {
        if (g.qos === 128) this.log.error({ topic: g.topic }, 'the broker refused the subscription (not authorised, or an invalid filter)');
        else if (g.qos < this.config.qos) this.log.warn({ topic: g.topic, qos: g.qos, wanted: this.config.qos }, 'the broker granted a lower QoS than configured');
      }
    });
  }

  private onClose(): void {
    const wasConnected = this.connected;
    this.connected = false;
    // Packet ids belong to a connection: what is still unacknowledged the broker re-sends on the next.
    this.acks = new Map();
    this.completions = new Map();
    this.unacked = 0;
    this.pings = [];
    this.redeliveries?.disconnected();
    if (this.stopping || this.cycling) return;
    if (wasConnected) {
      this.totals.counters.connection_losses++;
      if (Date.now() - this.connectedAtMs >= this.tuning.stableAfterMs) this.reconnectBackoff.reset();
      if (!this.downLogged) {
        this.log.warn({ url: this.config.url, err: this.lastError }, 'connection to the MQTT broker lost; reconnecting with backoff');
        this.downLogged = true;
        this.downSinceMs = Date.now();
      }
    }
    this.scheduleReconnect(this.reconnectBackoff.nextDelayMs());
  }

  private onError(err: Error): void {
    this.lastError = err;
    if (this.stopping) return;
    if (!this.connected && !this.downLogged) {
      this.log.warn({ url: this.config.url, err }, 'cannot connect to the MQTT broker; retrying with backoff');
      this.downLogged = true;
      this.downSinceMs = Date.now();
    } else if (this.connected) {
      this.log.warn({ err }, 'MQTT client error');
    }
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.reconnectTimer || this.stopping) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopping) this.client?.reconnect();
    }, delayMs);
  }

  /** A marker in the data dir, so a broker that forgot the session can be told from a first run. */
  private sessionFile(): string {
    return join(this.ctx.dataDir, `mqtt-${this.ctx.id}.session`);
  }

  private hadSessionBefore(): boolean {
    try {
      return existsSync(this.sessionFile()) && readFileSync(this.sessionFile(), 'utf8').trim() === `${this.config.url} ${this.clientId}`;
    } catch {
      return false;
    }
  }

  private rememberSession(): void {
    if (this.config.qos === 0) return;
    try {
      writeFileSync(this.sessionFile(), `${this.config.url} ${this.clientId}\n`);
    } catch (err) {
      this.log.debug({ err }, 'cannot write the session marker');
    }
  }

  // ------------------------------------------------------------------------- acknowledgements

  /** Wraps the client's packet writer so PUBACK/PUBREC wait for the commit (see the file comment). */
  private holdAcknowledgements(client: MqttClient): void {
    const internals = client as unknown as { _sendPacket: SendPacket };
    const send: SendPacket = internals._sendPacket.bind(client);
    this.sendPacket = send;
    internals._sendPacket = (packet, cb, ...rest) => {
      const gate = packet.cmd === 'puback' || packet.cmd === 'pubrec' ? this.acks : packet.cmd === 'pubcomp' ? this.completions : undefined;
      if (gate && packet.messageId !== undefined) {
        const held = gate.get(packet.messageId);
        if (held && !held.released) {
          held.packet = packet;
          // mqtt.js's pipeline waits for this callback; the real send comes with the commit.
          cb?.();
          return;
        }
        if (held) {
          gate.delete(packet.messageId);
          this.sent(held);
        }
      }
      if (packet.cmd === 'pingreq') this.pings.push(null);
      send(packet, cb, ...rest);
    };
  }

  private sendPacket: SendPacket | undefined;

  private release(held: HeldAck, gate: Map<number, HeldAck>): void {
    held.released = true;
    // From an earlier connection: the broker re-sends that message (or PUBREL), which is then a copy.
    if (gate.get(held.messageId) !== held) return;
    this.unacked--;
    if (held.packet && this.sendPacket && this.connected) {
      gate.delete(held.messageId);
      this.sendPacket(held.packet);
      this.sent(held);
    }
  }

  /** A held packet left: acknowledgements count, and wait for a probe to confirm them. */
  private sent(held: HeldAck): void {
    if (held.packet?.cmd === 'pubcomp') return;
    this.totals.counters.messages_acked++;
    const record = held.record ?? held.copyOf;
    if (record) this.redeliveries?.acknowledged(record);
  }

  /** Sends a PINGREQ behind the acknowledgements that left, unless one is on its way (see redelivery.ts). */
  private probeAcknowledgements(): void {
    if (!this.connected || !this.sendPacket || this.pings.some((p) => p !== null)) return;
    const probe = this.redeliveries?.probe();
    if (!probe) return;
    this.pings.push(probe);
    this.sendPacket({ cmd: 'pingreq' });
  }

  private onPingresp(): void {
    const probe = this.pings.shift();
    if (!probe) return;
    this.redeliveries?.confirmed(probe);
    this.scheduleFlush();
    this.probeAcknowledgements();
  }

  /** QoS 2: the broker has our PUBREC. The PUBCOMP waits for the commit that forgets the record. */
  private onPubrel(messageId: number | undefined): void {
    if (messageId === undefined || !this.redeliveries?.released(messageId)) return;
    const held: HeldAck = { messageId, released: false };
    this.completions.set(messageId, held);
    this.unacked++;
    this.batch.completions.push(held);
    this.scheduleFlush();
  }

  // ---------------------------------------------------------------------------------- intake

  private onPacket(packet: Packet): void {
    if (packet.cmd === 'connack') {
      // Before any PUBLISH that follows it (mqtt.js emits 'connect' later).
      if ((packet.returnCode ?? packet.reasonCode ?? 0) === 0) {
        this.connected = true;
        this.redeliveries?.connected(packet.sessionPresent);
      }
      return;
    }
    if (packet.cmd === 'pingresp') return this.onPingresp();
    if (packet.cmd === 'pubrel') return this.onPubrel(packet.messageId);
    if (packet.cmd !== 'publish') return;
    const c = this.totals.counters;
    c.messages_received++;
    if (packet.dup) c.messages_redelivered++;
    let held: HeldAck | undefined;
    if (packet.qos > 0 && packet.messageId !== undefined) {
      held = { messageId: packet.messageId, released: false };
      this.acks.set(packet.messageId, held);
      this.unacked++;
    }
    // Left unacknowledged: the broker keeps it and re-sends it on the next connection.
    if (this.stopping || this.paused) return;

    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (held && this.redeliveries) {
      const seen = this.redeliveries.receive(held.messageId, packet.dup, packet.qos === 2 ? 2 : 1, messageHash(packet.topic, payload));
      if ('copyOf' in seen) {
        // Stored already: acknowledged (after the commit of the original, if that is still to come).
        c.messages_duplicate++;
        held.copyOf = seen.copyOf;
        this.batch.acks.push(held);
        this.batch.messages++;
        this.scheduleFlush();
        return;
      }
      held.record = seen.record;
      this.batch.records.push(seen.record);
    }
    if (payload.length === 0) {
      // An empty payload is how MQTT clears a retained message: nothing to store, nothing wrong.
      c.messages_empty++;
    } else {
      this.decodeInto(packet.topic, payload);
    }
    this.batch.messages++;
    if (held) this.batch.acks.push(held);
    if (this.batch.points.length >= this.tuning.maxBatchPoints) this.flush();
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    this.flushHandle ??= setImmediate(() => this.flush());
  }

  private decodeInto(topic: string, payload: Uint8Array): void {
    const c = this.totals.counters;
    const receivedUs = this.receiptUs();
    try {
      const decoded = this.decode(topic, payload, receivedUs);
      for (const p of decoded.points) this.batch.points.push(p);
      this.totals.points += decoded.points.length;
      this.totals.lastPointMs = Math.floor(receivedUs / 1000);
      if (decoded.rejectedLines.length > 0) {
        c.lines_rejected += decoded.rejectedLines.length;
        this.totals.errors += decoded.rejectedLines.length;
        const first = decoded.rejectedLines[0];
        this.malformedWarning.report({ topic, line: first.line, reason: first.error, rejected_lines: decoded.rejectedLines.length, stored_points: decoded.points.length });
      }
      if (!decoded.topicMatched) {
        c.topic_unmatched++;
        this.unmatchedWarning.report({ topic, topic_tags: this.config.topic_tags });
      }
    } catch (err) {
      c.messages_malformed++;
      this.totals.errors++;
      const reason = err instanceof ValueError ? err.message : `decoder failed: ${String(err)}`;
      // The start of the payload, as text: enough to recognise the device, never a flood.
      const text = Buffer.from(payload.buffer, payload.byteOffset, Math.min(payload.length, 120)).toString('utf8');
      this.malformedWarning.report({ topic, reason, payload: payload.length > 120 ? `${text}…` : text, format: this.config.format });
    }
  }

  /**
   * The time of receipt in µs: the wall clock's ms, with the µs digits counting messages within one
   * ms, so two readings of one series received in the same ms are not stored as one.
   */
  private receiptUs(): number {
    const ms = Date.now();
    if (ms === this.lastReceiptMs) this.receiptSeq = Math.min(this.receiptSeq + 1, 999);
    else {
      this.lastReceiptMs = ms;
      this.receiptSeq = 0;
    }
    return ms * 1000 + this.receiptSeq;
  }

  /** Hands the gathered points to the ring and queues the batch's acknowledgements behind its commit. */
  private flush(): void {
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    const batch = this.batch;
    const marks = this.redeliveries?.takeMarks() ?? [];
    if (batch.messages === 0 && marks.length === 0 && batch.completions.length === 0) return;
    this.batch = emptyBatch();
    const write = batch.points.length > 0 || marks.length > 0 ? this.ctx.sink.write(batch.points, marks) : Promise.resolve();
    const outcome = write.then(
      () => undefined,
      (err: unknown) => err ?? new Error('refused'),
    );
    // Only counts and acknowledgements wait for the commit: the ring has copied the points, and
    // holding them here would keep a commit interval's worth of objects alive for nothing.
    const settled: Settled = { acks: batch.acks, points: batch.points.length, messages: batch.messages, records: batch.records, completions: batch.completions, marks };
    this.ackTail = Promise.all([this.ackTail, outcome]).then(([, err]) => this.settle(settled, err));
    if (this.unacked >= this.maxInflight && this.ctx.sink.commitNow) {
      this.totals.counters.early_commits++;
      this.ctx.sink.commitNow();
    }
  }

  private settle(batch: Settled, err: unknown): void {
    try {
      if (err === undefined) {
        this.redeliveries?.committed(batch.records, batch.marks);
        // A copy's original refused by the store: the copy stays unacknowledged, the broker keeps it.
        for (const held of batch.acks) if (!held.copyOf || held.copyOf.stored) this.release(held, this.acks);
        for (const held of batch.completions) this.release(held, this.completions);
        this.probeAcknowledgements();
        if (this.refusing) {
          this.refusing = false;
          this.refusalBackoff.reset();
          this.log.info({}, 'the store accepts points again; acknowledging messages');
        }
        return;
      }
      this.redeliveries?.refused(batch.records, batch.marks);
      this.totals.refused += batch.points;
      this.totals.counters.messages_refused += batch.messages;
      // Shutting down: the messages stay unacknowledged and the broker re-sends them after the restart.
      if (this.stopping || sinkRefusal(err) === 'closed') return;
      this.onRefused(err);
    } catch (e) {
      this.log.error({ err: e }, 'settling a batch failed');
    }
  }

  private onRefused(err: unknown): void {
    if (this.config.qos === 0) {
      if (!this.refusing) this.log.warn({ err }, 'the store refused points; QoS 0 messages cannot be re-read, they are lost (counted as refused)');
      this.refusing = true;
      return;
    }
    if (this.paused) return;
    this.paused = true;
    const delayMs = this.refusalBackoff.nextDelayMs();
    if (!this.refusing) {
      this.log.warn(
        { err, retry_ms: delayMs, full: sinkRefusal(err) === 'full' },
        'the store refused points: messages are not acknowledged and stay with the broker; retrying by reconnecting',
      );
    } else {
      this.log.debug({ retry_ms: delayMs }, 'the store still refuses points');
    }
    this.refusing = true;
    this.refusalTimer = setTimeout(() => {
      this.refusalTimer = undefined;
      this.paused = false;
      this.cycleConnection();
    }, delayMs);
  }

  /** Disconnects and reconnects at once: the broker then re-sends every unacknowledged message. */
  private cycleConnection(): void {
    const client = this.client;
    if (!client || this.stopping || !this.connected) return;
    this.cycling = true;
    client.end(false, () => {
      this.cycling = false;
      if (!this.stopping) client.reconnect();
    });
  }
}

function emptyBatch(): Batch {
  return { points: [], acks: [], messages: 0, records: [], completions: [] };
}

async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
