// Redelivered copies: which QoS 1/2 messages are already stored, so that a copy the broker sends again
// (DUP flag, same packet id) after a crash or a lost connection is acknowledged, not stored twice.
//
// What is recorded. For each QoS 1/2 message: its packet id → its QoS and a hash of its topic and
// payload, written by the group commit in the same transaction as the message's points (a commit mark,
// src/store/marks.ts). A message is acknowledged only after that commit, so every acknowledgement the
// broker may not have received has its record. A PUBLISH with the DUP flag whose id is recorded with the
// same hash is such a copy. A record without its points can never exist: both are in one transaction.
//
// When a record goes. It must outlive every chance of a redelivery, and should be gone before the
// broker gives its packet id to another message:
// - QoS 2: the broker's PUBREL says it has our PUBREC and will never re-send the PUBLISH. The record is
//   deleted by the next commit, and the PUBCOMP waits for that commit; the broker reuses the id only
//   after the PUBCOMP, so a recorded id is never another message's (exactly once).
// - QoS 1: the broker lets go of a message when it reads our PUBACK, and says nothing. A broker reads a
//   connection's packets in order, so its answer to a PINGREQ sent after a PUBACK proves it read the
//   PUBACK: after acknowledgements leave, the input sends a PINGREQ, and the PINGRESP deletes the records
//   of the acknowledgements sent before it. After a (re)connection the broker re-sends the messages it
//   is owed at once, before it reads our packets; the PINGRESP to a PINGREQ sent after the CONNACK
//   deletes the records nothing was re-sent for (their PUBACK had arrived before a crash).
// - A new PUBLISH (no DUP) with a recorded id replaces the record; a session the broker did not keep
//   takes every record with it.
// So the table holds about one commit's messages and the in-flight window, whatever the traffic, and
// never more than the 65,535 packet ids: while a probe's answer waits behind a large backlog the broker
// is sending (seconds, when it drains a persistent session), each new message with a reused id replaces
// the record its id held.
//
// How it is held. A draining backlog keeps all 65,535 ids recorded for seconds; as objects (record,
// hash string, map entry) that was ~8 MB of heap that V8 had to trace and keep headroom for. So a
// record lives in typed arrays indexed by packet id (state, hash, probe, generation: 1.1 MB, fixed).
// A message carries a handle (Recorded: its id, hash and generation) while it waits for its commit;
// the handles of records whose commit has not returned are kept (`unsettled`) so that a copy arriving
// meanwhile shares its original's handle and learns when that commit is done.
import { createHash } from 'node:crypto';
import type { CommitMark } from '../../src/core/component.js';

/** A recorded message as its message carries it to the store: stored (or about to be) with its points. */
export interface Recorded {
  readonly messageId: number;
  readonly qos: 1 | 2;
  readonly hash: string;
  /** Which record of its packet id this is: a newer message with the same id is another generation. */
  readonly generation: number;
  /** The commit that holds its points returned (or the record was read from the store). */
  stored: boolean;
  /** That commit was refused: the message is not stored, the broker still has it. */
  refused: boolean;
}

/** A key no packet id uses (ids are 1..65535): the broker session the records belong to. */
const SESSION_KEY = 0;
const IDS = 65_536;

// state bits
const PRESENT = 1;
const QOS2 = 2;
const STORED = 4;

// probe values: where a QoS 1 record's PUBACK is
/** It has not left (since receipt, or on this connection). */
const NOT_ACKED = 0;
/** It left and no probe covers it yet. */
const ACKED = 1;
/** Covered by probe p: stored as p + PROBE_BASE. */
const PROBE_BASE = 2;

export function messageHash(topic: string, payload: Uint8Array): string {
  // MQTT topics cannot hold U+0000, so the separator keeps topic and payload apart.
  // Eight bytes as 16 hex digits, a string of its own: a slice of the 40-digit digest would keep the
  // whole digest alive for as long as the record lives.
  return createHash('sha1').update(topic).update('\0').update(payload).digest().toString('hex', 0, 8);
}

const hashHigh = (hash: string) => Number.parseInt(hash.slice(0, 8), 16) >>> 0;
const hashLow = (hash: string) => Number.parseInt(hash.slice(8, 16), 16) >>> 0;
const hexOf = (high: number, low: number) => high.toString(16).padStart(8, '0') + low.toString(16).padStart(8, '0');

export class Redeliveries {
  private readonly state = new Uint8Array(IDS);
  private readonly high = new Uint32Array(IDS);
  private readonly low = new Uint32Array(IDS);
  private readonly probes = new Uint32Array(IDS);
  private readonly generations = new Uint32Array(IDS);
  /** Handles of records whose commit has not returned, by packet id. */
  private readonly unsettled = new Map<number, Recorded>();
  private count = 0;
  private ops: CommitMark[] = [];
  /** Deletions handed to the store and not yet committed, by packet id (a PUBCOMP waits for them). */
  private readonly deleting = new Map<number, number>();
  /** How many records wait for a probe (one is sent only when some do). */
  private unprobed = 0;
  private probeCount = 0;
  /**
   * Ids acknowledged since the last probe (some since replaced), so a probe costs what was
   * acknowledged, not a pass over every id; null once that list would pass the ids: scan them all.
   */
  private ackedIds: number[] | null = [];
  /** Probes sent and not answered, oldest first, with the ids each covers (null: scan them all). */
  private outstanding: { id: number; ids: number[] | null }[] = [];

  constructor(
    private readonly scope: string,
    /** The broker session, e.g. url and client id: records of another session are dropped. */
    session: string,
    stored: ReadonlyMap<number, string>,
  ) {
    if (stored.get(SESSION_KEY) !== session) {
      for (const key of stored.keys()) if (key !== SESSION_KEY) this.removeMark(key);
      this.ops.push({ scope, key: SESSION_KEY, value: session });
      return;
    }
    for (const [key, value] of stored) {
      if (key === SESSION_KEY) continue;
      const m = /^([12]):([0-9a-f]{16})$/.exec(value);
      if (!m || key < 1 || key >= IDS) this.removeMark(key);
      else this.put(key, m[1] === '2' ? 2 : 1, m[2], true);
    }
  }

  get size(): number {
    return this.count;
  }

  /**
   * A QoS 1/2 PUBLISH arrived. Returns the record of the stored copy it duplicates, or a new record
   * that must travel to the store with the message's points (takeMarks).
   */
  receive(messageId: number, dup: boolean, qos: 1 | 2, hash: string): { copyOf: Recorded } | { record: Recorded } {
    const st = this.state[messageId];
    if (dup && st & PRESENT && this.high[messageId] === hashHigh(hash) && this.low[messageId] === hashLow(hash)) {
      // The broker still waits for a PUBACK of it: the one that goes out again must be confirmed again,
      // and no probe sent before it may take the record.
      this.setProbe(messageId, NOT_ACKED);
      return { copyOf: this.unsettled.get(messageId) ?? this.handle(messageId) };
    }
    const record = this.put(messageId, qos, hash, false);
    this.ops.push({ scope: this.scope, key: messageId, value: `${qos}:${hash}` });
    return { record };
  }

  /** The marks to hand to the store with the next write (in order), and forgets them. */
  takeMarks(): CommitMark[] {
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  hasMarks(): boolean {
    return this.ops.length > 0;
  }

  /** The write that carried `marks` (and the records' points) was committed. */
  committed(records: readonly Recorded[], marks: readonly CommitMark[]): void {
    for (const r of records) {
      r.stored = true;
      if (this.isCurrent(r)) this.state[r.messageId] |= STORED;
      if (this.unsettled.get(r.messageId) === r) this.unsettled.delete(r.messageId);
    }
    this.settleDeletes(marks);
  }

  /** The write was refused: none of it is stored. */
  refused(records: readonly Recorded[], marks: readonly CommitMark[]): void {
    for (const r of records) {
      r.refused = true;
      if (this.unsettled.get(r.messageId) === r) this.unsettled.delete(r.messageId);
      if (this.isCurrent(r)) this.clear(r.messageId);
    }
    this.settleDeletes(marks);
    // The store still holds what those marks would have replaced or deleted: delete it again, unless a
    // newer record has taken the id meanwhile.
    for (const m of marks) {
      if (m.key === SESSION_KEY) {
        if (m.value !== null) this.ops.push(m);
      } else if (!(this.state[m.key] & PRESENT)) this.removeMark(m.key);
    }
  }

  /** The acknowledgement of `record` left on the current connection. */
  acknowledged(record: Recorded): void {
    if (record.qos !== 1 || !this.isCurrent(record)) return; // QoS 2 records go with the PUBREL
    this.setProbe(record.messageId, ACKED);
  }

  /** The probe a PINGREQ sent now makes: it covers every acknowledgement that left before it; undefined when none waits. */
  probe(): number | undefined {
    if (this.unprobed === 0) return undefined;
    const id = ++this.probeCount;
    const covered = id + PROBE_BASE;
    const ids = this.ackedIds;
    if (ids) {
      for (const i of ids) if (this.probes[i] === ACKED) this.probes[i] = covered;
    } else {
      for (let i = 1; i < IDS; i++) if (this.probes[i] === ACKED) this.probes[i] = covered;
    }
    this.outstanding.push({ id, ids });
    this.ackedIds = [];
    this.unprobed = 0;
    return id;
  }

  /** The PINGRESP to probe `id` came: the broker has read those acknowledgements. */
  confirmed(probe: number): void {
    // Probes are answered in order, so an earlier probe's records (none, normally) go too.
    while (this.outstanding.length > 0 && this.outstanding[0].id <= probe) {
      const { id, ids } = this.outstanding.shift()!;
      const covered = id + PROBE_BASE;
      if (ids) {
        for (const i of ids) if (this.probes[i] === covered && this.state[i] & PRESENT) this.remove(i);
      } else {
        for (let i = 1; i < IDS; i++) if (this.probes[i] === covered && this.state[i] & PRESENT) this.remove(i);
      }
    }
  }

  /**
   * A CONNACK. Without the session every record goes (nothing will be re-sent). With it, the stored
   * QoS 1 records wait for the first probe: the broker re-sends the messages it is owed before it
   * answers, and each re-sent copy takes its record out of the probe (receive).
   */
  connected(sessionPresent: boolean): void {
    this.resetProbes();
    for (let i = 1; i < IDS; i++) {
      const st = this.state[i];
      if (!(st & PRESENT)) continue;
      if (!sessionPresent) this.remove(i);
      else if (st & STORED && !(st & QOS2)) this.setProbe(i, ACKED);
    }
  }

  /** The connection closed: acknowledgements not yet confirmed may not have arrived. */
  disconnected(): void {
    this.resetProbes();
  }

  /**
   * A PUBREL (QoS 2): the broker will not re-send that PUBLISH. Returns whether the PUBCOMP must wait
   * for the next commit (the record's deletion); the broker reuses the id only after the PUBCOMP.
   */
  released(messageId: number): boolean {
    if (this.state[messageId] & STORED) this.remove(messageId);
    return this.deleting.has(messageId);
  }

  private isCurrent(r: Recorded): boolean {
    return (this.state[r.messageId] & PRESENT) !== 0 && this.generations[r.messageId] === r.generation;
  }

  /** A new record for `messageId`, replacing what the id held. */
  private put(messageId: number, qos: 1 | 2, hash: string, stored: boolean): Recorded {
    if (!(this.state[messageId] & PRESENT)) this.count++;
    this.setProbe(messageId, NOT_ACKED);
    this.state[messageId] = PRESENT | (qos === 2 ? QOS2 : 0) | (stored ? STORED : 0);
    this.high[messageId] = hashHigh(hash);
    this.low[messageId] = hashLow(hash);
    const generation = (this.generations[messageId] = (this.generations[messageId] + 1) >>> 0);
    const record: Recorded = { messageId, qos, hash, generation, stored, refused: false };
    if (stored) this.unsettled.delete(messageId);
    else this.unsettled.set(messageId, record);
    return record;
  }

  /** A handle of the current (stored) record of `messageId`. */
  private handle(messageId: number): Recorded {
    const st = this.state[messageId];
    return { messageId, qos: st & QOS2 ? 2 : 1, hash: hexOf(this.high[messageId], this.low[messageId]), generation: this.generations[messageId], stored: (st & STORED) !== 0, refused: false };
  }

  private setProbe(messageId: number, value: number): void {
    if (this.probes[messageId] === ACKED) this.unprobed--;
    if (value === ACKED) {
      this.unprobed++;
      if (this.ackedIds && this.ackedIds.push(messageId) > IDS) this.ackedIds = null;
    }
    this.probes[messageId] = value;
  }

  private resetProbes(): void {
    this.probes.fill(NOT_ACKED);
    this.unprobed = 0;
    this.ackedIds = [];
    this.outstanding = [];
  }

  /** Forgets the record of `messageId` here, not in the store. */
  private clear(messageId: number): void {
    if (!(this.state[messageId] & PRESENT)) return;
    this.setProbe(messageId, NOT_ACKED);
    this.state[messageId] = 0;
    this.count--;
  }

  /** Forgets the record of `messageId` here and in the store (with the next write). */
  private remove(messageId: number): void {
    this.clear(messageId);
    this.removeMark(messageId);
  }

  private removeMark(key: number): void {
    this.ops.push({ scope: this.scope, key, value: null });
    this.deleting.set(key, (this.deleting.get(key) ?? 0) + 1);
  }

  private settleDeletes(marks: readonly CommitMark[]): void {
    for (const m of marks) {
      if (m.value !== null) continue;
      const n = (this.deleting.get(m.key) ?? 0) - 1;
      if (n > 0) this.deleting.set(m.key, n);
      else this.deleting.delete(m.key);
    }
  }
}
