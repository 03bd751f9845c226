// Intake: PUBLISH packets become points in batches handed to the ring, and each batch's
// acknowledgements wait for the commit that holds it (ack-gate.ts).
//
// Messages are decoded when their PUBLISH arrives (for QoS 2 mqtt.js surfaces them only at PUBREL,
// which the broker sends only after our PUBREC). Batches settle in arrival order, so acknowledgements
// leave in the order messages came.
//
// The in-flight window. A broker sends at most a window of unacknowledged QoS 1/2 messages (mosquitto
// max_inflight_messages for 3.1.1, the client's Receive Maximum for MQTT 5), then waits. When that many
// wait for the group commit, intake asks for the commit at once (`sink.commitNow`), otherwise a busy
// topic would be throttled to one window per commit interval.
//
// The byte budget. What intake holds between receipt and commit (the messages, their decoded points
// in the ring's pending group commit, their records) is counted against the agent's intake budget
// (src/core/memory.ts), shared by all inputs. When it is used up, intake holds back: it asks for the
// commit at once and does not hand mqtt.js's packet pipeline back (`handleMessage`'s callback) until
// commits have freed a quarter of the budget. mqtt.js then reads no further packet, the socket's
// buffers fill, and TCP flow control leaves the rest of the backlog with the broker. So memory
// follows the budget, not the arrival rate or the size of the broker's queue, for any QoS and either
// protocol version.
import type { MqttClient, Packet } from 'mqtt';
import { sinkRefusal, type CommitMark, type InputContext, type InputStats } from '../../src/core/component.js';
import { ThrottledWarning } from '../../src/core/log-throttle.js';
import type { Point } from '../../src/core/point.js';
import { ReceiptClock } from '../../src/core/time.js';
import { ValueError } from '../../src/core/text-values.js';
import type { AckGate, HeldAck } from './ack-gate.js';
import { createDecoder, type MessageDecoder } from './payload.js';
import { messageHash, type Recorded, type Redeliveries } from './redelivery.js';
import type { MqttInputConfig } from './schema.js';

/**
 * What a message costs between receipt and commit beyond its payload: the packet object, the held
 * acknowledgement, the record with its hash; and what a decoded point costs once it waits in the
 * ring's group commit (src/store/builder.ts: its time, and per field value a row index, a slot and the
 * number). Measured (heap after GC, points written to a ring that does not commit, the backlog bench's
 * payloads): 97 bytes per line-protocol point of two fields, the write's own promise included. The
 * decoded Point objects (~420 bytes each) are not counted: they are garbage once a batch is handed to
 * the ring, and a batch holds at most maxBatchPoints of them. Rough, on the safe side: the budget is a
 * bound, not an account.
 */
const MESSAGE_OVERHEAD_BYTES = 400;
const POINT_BYTES = 48;
const FIELD_VALUE_BYTES = 40;

interface Batch {
  points: Point[];
  acks: HeldAck[];
  messages: number;
  records: Recorded[];
  /** PUBCOMPs that wait for this batch's commit (it deletes their records). */
  completions: HeldAck[];
  /** Counted against the intake budget until the batch settles. */
  bytes: number;
}

/** What of a batch waits for its commit. */
interface Settled {
  acks: HeldAck[];
  points: number;
  messages: number;
  records: Recorded[];
  completions: HeldAck[];
  marks: CommitMark[];
  bytes: number;
}

export type Totals = InputStats & { counters: Record<string, number> };

export interface IntakeOptions {
  config: MqttInputConfig;
  ctx: InputContext;
  totals: Totals;
  gate: AckGate;
  redeliveries(): Redeliveries | undefined;
  /** Whether a new message is taken in now, or left with the broker (state.ts takesMessages). */
  takesMessages(): boolean;
  /** The input is stopping: refusals are expected and not retried. */
  stopping(): boolean;
  /** A batch committed: the store accepts points (again). */
  committed(): void;
  /** A batch was refused by the store. */
  refused(err: unknown): void;
  maxBatchPoints: number;
  warnIntervalMs: number;
}

export class Intake {
  private readonly decode: MessageDecoder;
  private readonly malformedWarning: ThrottledWarning;
  private readonly unmatchedWarning: ThrottledWarning;
  private batch: Batch = emptyBatch();
  private flushHandle: NodeJS.Immediate | undefined;
  /** Settles batches in arrival order, so acknowledgements leave in the order messages came. */
  private tail: Promise<void> = Promise.resolve();
  private readonly receipts = new ReceiptClock();
  /** Bytes this input holds against the intake budget. */
  private heldBytes = 0;
  /** mqtt.js's pipeline, held while the budget is used up: its callback, and since when. */
  private holdBack: { resume: () => void; sinceMs: number; cancel: () => void } | undefined;

  constructor(private readonly o: IntakeOptions) {
    const c = o.config;
    this.decode = createDecoder({ format: c.format, measurement: c.measurement, tags: c.tags, topicTags: c.topic_tags, json: c.json, influxPrecision: c.influx?.precision });
    this.malformedWarning = new ThrottledWarning(o.ctx.log, 'malformed MQTT payload skipped (acknowledged: it would never parse)', o.warnIntervalMs);
    this.unmatchedWarning = new ThrottledWarning(o.ctx.log, 'topic does not fit topic_tags: stored without topic tags', o.warnIntervalMs);
  }

  /** The settling of every batch handed to the ring so far. */
  get settled(): Promise<void> {
    return this.tail;
  }

  get inflightBytes(): number {
    return this.heldBytes;
  }

  /** Makes mqtt.js wait, after a message, while the intake budget is used up (see the file comment). */
  install(client: MqttClient): void {
    client.handleMessage = (_packet, callback) => {
      const budget = this.o.ctx.intake;
      if (!budget?.exhausted || this.o.stopping()) return callback();
      this.holdBackUntilFreed(callback);
    };
  }

  onPublish(packet: Packet & { cmd: 'publish' }): void {
    const c = this.o.totals.counters;
    c.messages_received++;
    if (packet.dup) c.messages_redelivered++;
    const held = packet.qos > 0 && packet.messageId !== undefined ? this.o.gate.holdAck(packet.messageId) : undefined;
    // Left unacknowledged: the broker keeps it and re-sends it on the next connection.
    if (!this.o.takesMessages()) return;

    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const redeliveries = this.o.redeliveries();
    this.take(MESSAGE_OVERHEAD_BYTES + payload.length);
    if (held && redeliveries) {
      const seen = redeliveries.receive(held.messageId, packet.dup, packet.qos === 2 ? 2 : 1, messageHash(packet.topic, payload));
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
    if (this.batch.points.length >= this.o.maxBatchPoints) this.flush();
    else this.scheduleFlush();
  }

  /** QoS 2: the broker has our PUBREC. The PUBCOMP waits for the commit that forgets the record. */
  onPubrel(messageId: number | undefined): void {
    if (messageId === undefined || !this.o.redeliveries()?.released(messageId)) return;
    this.batch.completions.push(this.o.gate.holdCompletion(messageId));
    this.scheduleFlush();
  }

  scheduleFlush(): void {
    this.flushHandle ??= setImmediate(() => this.flush());
  }

  /** Hands the gathered points to the ring and queues the batch's acknowledgements behind its commit. */
  flush(): void {
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    const batch = this.batch;
    const marks = this.o.redeliveries()?.takeMarks() ?? [];
    if (batch.messages === 0 && marks.length === 0 && batch.completions.length === 0) return;
    this.batch = emptyBatch();
    const write = batch.points.length > 0 || marks.length > 0 ? this.o.ctx.sink.write(batch.points, marks) : Promise.resolve();
    const outcome = write.then(
      () => undefined,
      (err: unknown) => err ?? new Error('refused'),
    );
    // Only counts and acknowledgements wait for the commit: the ring has copied the points, and
    // holding them here would keep a commit interval's worth of objects alive for nothing.
    const settled: Settled = { acks: batch.acks, points: batch.points.length, messages: batch.messages, records: batch.records, completions: batch.completions, marks, bytes: batch.bytes };
    this.tail = Promise.all([this.tail, outcome]).then(([, err]) => this.settle(settled, err));
    if (this.o.gate.unacked >= this.o.config.max_inflight && this.o.ctx.sink.commitNow) {
      this.o.totals.counters.early_commits++;
      this.o.ctx.sink.commitNow();
    }
  }

  /** stop(): hands mqtt.js its pipeline back (what it reads now is left with the broker) and says what the warnings held back. */
  close(): void {
    this.resume();
    this.malformedWarning.close();
    this.unmatchedWarning.close();
  }

  private take(bytes: number): void {
    this.batch.bytes += bytes;
    this.heldBytes += bytes;
    const c = this.o.totals.counters;
    if (this.heldBytes > c.inflight_bytes_max) c.inflight_bytes_max = this.heldBytes;
    this.o.ctx.intake?.take(bytes);
  }

  private holdBackUntilFreed(callback: () => void): void {
    const budget = this.o.ctx.intake;
    if (!budget) return callback();
    this.o.totals.counters.intake_holdbacks++;
    const cancel = budget.onFreed(() => this.resume());
    this.holdBack = { resume: callback, sinceMs: Date.now(), cancel };
    // The budget frees only when commits return: ask for one now rather than at commit_interval.
    this.flush();
    this.o.ctx.sink.commitNow?.();
  }

  private resume(): void {
    const held = this.holdBack;
    if (!held) return;
    this.holdBack = undefined;
    held.cancel();
    this.o.totals.counters.intake_held_ms += Date.now() - held.sinceMs;
    held.resume();
  }

  private decodeInto(topic: string, payload: Uint8Array): void {
    const t = this.o.totals;
    const c = t.counters;
    const receivedUs = this.receipts.nowUs();
    try {
      const decoded = this.decode(topic, payload, receivedUs);
      let values = 0;
      for (const p of decoded.points) {
        this.batch.points.push(p);
        // Counted without an array per point: this runs for every point received.
        for (const _field in p.fields) values++;
      }
      this.take(POINT_BYTES * decoded.points.length + FIELD_VALUE_BYTES * values);
      t.points += decoded.points.length;
      t.lastPointMs = Math.floor(receivedUs / 1000);
      if (decoded.rejectedLines.length > 0) {
        c.lines_rejected += decoded.rejectedLines.length;
        t.errors += decoded.rejectedLines.length;
        const first = decoded.rejectedLines[0];
        this.malformedWarning.report({ topic, line: first.line, reason: first.error, rejected_lines: decoded.rejectedLines.length, stored_points: decoded.points.length });
      }
      if (!decoded.topicMatched) {
        c.topic_unmatched++;
        this.unmatchedWarning.report({ topic, topic_tags: this.o.config.topic_tags });
      }
    } catch (err) {
      c.messages_malformed++;
      t.errors++;
      const reason = err instanceof ValueError ? err.message : `decoder failed: ${String(err)}`;
      // The start of the payload, as text: enough to recognise the device, never a flood.
      const text = Buffer.from(payload.buffer, payload.byteOffset, Math.min(payload.length, 120)).toString('utf8');
      this.malformedWarning.report({ topic, reason, payload: payload.length > 120 ? `${text}…` : text, format: this.o.config.format });
    }
  }

  private settle(batch: Settled, err: unknown): void {
    try {
      this.heldBytes -= batch.bytes;
      // Freed after the acknowledgements below are on their way: a resumed pipeline then finds them sent.
      const free = () => this.o.ctx.intake?.release(batch.bytes);
      const redeliveries = this.o.redeliveries();
      if (err === undefined) {
        redeliveries?.committed(batch.records, batch.marks);
        // A copy's original refused by the store: the copy stays unacknowledged, the broker keeps it.
        for (const held of batch.acks) if (!held.copyOf || held.copyOf.stored) this.o.gate.release(held);
        for (const held of batch.completions) this.o.gate.release(held);
        this.o.gate.probe();
        free();
        this.o.committed();
        return;
      }
      redeliveries?.refused(batch.records, batch.marks);
      this.o.totals.refused += batch.points;
      this.o.totals.counters.messages_refused += batch.messages;
      free();
      // Shutting down: the messages stay unacknowledged and the broker re-sends them after the restart.
      if (this.o.stopping() || sinkRefusal(err) === 'closed') return;
      this.o.refused(err);
    } catch (e) {
      this.o.ctx.log.error({ err: e }, 'settling a batch failed');
    }
  }
}

function emptyBatch(): Batch {
  return { points: [], acks: [], messages: 0, records: [], completions: [], bytes: 0 };
}
