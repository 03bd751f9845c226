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
// the record its id held, and a record's probe is a field of its own, so no list keeps replaced
// records alive.
import { createHash } from 'node:crypto';
import type { CommitMark } from '../../src/core/component.js';

/** A recorded message: stored (or about to be) with its points. */
export interface Recorded {
  readonly messageId: number;
  readonly qos: 1 | 2;
  readonly hash: string;
  /** The commit that holds its points returned (or the record was read from the store). */
  stored: boolean;
  /** That commit was refused: the message is not stored, the broker still has it. */
  refused: boolean;
  /**
   * QoS 1, where its PUBACK is: undefined while it has not left (since receipt, or on this
   * connection); ACKED once it left and no probe covers it yet; then the probe (PINGREQ) whose answer
   * confirms it arrived.
   */
  probe: number | undefined;
}

/** Recorded.probe of a record whose PUBACK left and that waits for a probe. */
const ACKED = 0;

/** A key no packet id uses (ids are 1..65535): the broker session the records belong to. */
const SESSION_KEY = 0;

export function messageHash(topic: string, payload: Uint8Array): string {
  // MQTT topics cannot hold U+0000, so the separator keeps topic and payload apart.
  // Eight bytes as 16 hex digits, a string of its own: a slice of the 40-digit digest would keep the
  // whole digest alive for as long as the record lives.
  return createHash('sha1').update(topic).update('\0').update(payload).digest().toString('hex', 0, 8);
}

export class Redeliveries {
  private readonly records = new Map<number, Recorded>();
  private ops: CommitMark[] = [];
  /** Deletions handed to the store and not yet committed, by packet id (a PUBCOMP waits for them). */
  private readonly deleting = new Map<number, number>();
  /** About how many records have probe === ACKED (a probe is sent only when some may). */
  private unprobed = 0;
  private probes = 0;

  constructor(
    private readonly scope: string,
    /** The broker session, e.g. url and client id: records of another session are dropped. */
    session: string,
    stored: ReadonlyMap<number, string>,
  ) {
    if (stored.get(SESSION_KEY) !== session) {
      for (const key of stored.keys()) if (key !== SESSION_KEY) this.remove(key);
      this.ops.push({ scope, key: SESSION_KEY, value: session });
      return;
    }
    for (const [key, value] of stored) {
      const m = /^([12]):([0-9a-f]+)$/.exec(value);
      if (key === SESSION_KEY) continue;
      if (!m) this.remove(key);
      else this.records.set(key, { messageId: key, qos: m[1] === '2' ? 2 : 1, hash: m[2], stored: true, refused: false, probe: undefined });
    }
  }

  get size(): number {
    return this.records.size;
  }

  /**
   * A QoS 1/2 PUBLISH arrived. Returns the record of the stored copy it duplicates, or a new record
   * that must travel to the store with the message's points (takeMarks).
   */
  receive(messageId: number, dup: boolean, qos: 1 | 2, hash: string): { copyOf: Recorded } | { record: Recorded } {
    const known = this.records.get(messageId);
    if (dup && known && !known.refused && known.hash === hash) {
      // The broker still waits for a PUBACK of it: the one that goes out again must be confirmed again,
      // and no probe sent before it may take the record.
      known.probe = undefined;
      return { copyOf: known };
    }
    const record: Recorded = { messageId, qos, hash, stored: false, refused: false, probe: undefined };
    this.records.set(messageId, record);
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
    for (const r of records) r.stored = true;
    this.settleDeletes(marks);
  }

  /** The write was refused: none of it is stored. */
  refused(records: readonly Recorded[], marks: readonly CommitMark[]): void {
    for (const r of records) {
      r.refused = true;
      if (this.records.get(r.messageId) === r) this.records.delete(r.messageId);
    }
    this.settleDeletes(marks);
    // The store still holds what those marks would have replaced or deleted: delete it again, unless a
    // newer record has taken the id meanwhile.
    for (const m of marks) {
      if (m.key === SESSION_KEY) {
        if (m.value !== null) this.ops.push(m);
      } else if (!this.records.has(m.key)) this.remove(m.key);
    }
  }

  /** The acknowledgement of `record` left on the current connection. */
  acknowledged(record: Recorded): void {
    if (record.qos !== 1 || this.records.get(record.messageId) !== record) return; // QoS 2 records go with the PUBREL
    record.probe = ACKED;
    this.unprobed++;
  }

  /** The probe a PINGREQ sent now makes: it covers every acknowledgement that left before it; undefined when none waits. */
  probe(): number | undefined {
    if (this.unprobed === 0) return undefined;
    const id = ++this.probes;
    for (const r of this.records.values()) if (r.probe === ACKED) r.probe = id;
    this.unprobed = 0;
    return id;
  }

  /** The PINGRESP to probe `id` came: the broker has read those acknowledgements. */
  confirmed(probe: number): void {
    // Probes are answered in order, so an earlier probe's records (none, normally) go too.
    // (Deleting the entry a Map iteration is at is safe.)
    for (const r of this.records.values()) if (r.probe !== undefined && r.probe !== ACKED && r.probe <= probe) this.remove(r.messageId);
  }

  /**
   * A CONNACK. Without the session every record goes (nothing will be re-sent). With it, the stored
   * QoS 1 records wait for the first probe: the broker re-sends the messages it is owed before it
   * answers, and each re-sent copy takes its record out of the probe (receive).
   */
  connected(sessionPresent: boolean): void {
    this.unprobed = 0;
    for (const r of [...this.records.values()]) {
      if (!sessionPresent) this.remove(r.messageId);
      else if (r.stored && r.qos === 1) {
        r.probe = ACKED;
        this.unprobed++;
      }
    }
  }

  /** The connection closed: acknowledgements not yet confirmed may not have arrived. */
  disconnected(): void {
    this.unprobed = 0;
    for (const r of this.records.values()) r.probe = undefined;
  }

  /**
   * A PUBREL (QoS 2): the broker will not re-send that PUBLISH. Returns whether the PUBCOMP must wait
   * for the next commit (the record's deletion); the broker reuses the id only after the PUBCOMP.
   */
  released(messageId: number): boolean {
    const r = this.records.get(messageId);
    if (r?.stored) this.remove(messageId);
    return this.deleting.has(messageId);
  }

  private remove(key: number): void {
    this.records.delete(key);
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
