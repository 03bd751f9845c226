// The redelivery records on their own: when a QoS 1 record may go (its PUBACK proven to have reached
// the broker) and what it costs while a probe's answer waits behind a broker's backlog. The broker's
// side of these rules is tested end to end against mosquitto in mqtt.test.ts and crash.test.ts.
import { describe, expect, it } from 'vitest';
import { messageHash, Redeliveries, type Recorded } from './redelivery.js';

const SESSION = 'mqtt://broker|client';

function stored(r: Redeliveries, messageId: number, payload: string): Recorded {
  const seen = r.receive(messageId, false, 1, messageHash('t', Buffer.from(payload)));
  if (!('record' in seen)) throw new Error('expected a new record');
  r.committed([seen.record], r.takeMarks());
  return seen.record;
}

describe('Redeliveries (QoS 1)', () => {
  it('a probe confirms the acknowledgements that left before it, not those after', () => {
    const r = new Redeliveries('in', SESSION, new Map());
    r.takeMarks();
    const a = stored(r, 1, 'a');
    r.acknowledged(a);
    const probe = r.probe();
    expect(probe).toBeDefined();
    const b = stored(r, 2, 'b');
    r.acknowledged(b);
    r.confirmed(probe!);
    expect(r.size).toBe(1);
    // b is still owed a confirmation: a copy of it is recognised.
    expect('copyOf' in r.receive(2, true, 1, messageHash('t', Buffer.from('b')))).toBe(true);
  });

  it('a copy the broker re-sends after the CONNACK keeps its record until its own acknowledgement is confirmed', () => {
    const r = new Redeliveries('in', SESSION, new Map());
    r.takeMarks();
    const a = stored(r, 7, 'a');
    r.acknowledged(a);
    r.disconnected();
    r.connected(true);
    // The broker re-sends 7 (its PUBACK was lost) ...
    const copy = r.receive(7, true, 1, messageHash('t', Buffer.from('a')));
    expect('copyOf' in copy).toBe(true);
    // ... and before that copy's PUBACK leaves, another acknowledgement sends a probe.
    const c = stored(r, 8, 'c');
    r.acknowledged(c);
    const probe = r.probe()!;
    r.confirmed(probe);
    // The broker still waits for 7's PUBACK: if the connection drops now it re-sends 7 again, and that
    // copy must still be known, or it would be stored twice.
    expect('copyOf' in r.receive(7, true, 1, messageHash('t', Buffer.from('a')))).toBe(true);
  });

  it("a copy that arrives before its original's commit returns learns of that commit; a refused original is no original", () => {
    const r = new Redeliveries('in', SESSION, new Map());
    r.takeMarks();
    const hash = messageHash('t', Buffer.from('a'));
    const seen = r.receive(3, false, 1, hash);
    if (!('record' in seen)) throw new Error('expected a new record');
    const marks = r.takeMarks();
    const copy = r.receive(3, true, 1, hash);
    if (!('copyOf' in copy)) throw new Error('expected a copy');
    // The intake acknowledges the copy only once its original is stored.
    expect(copy.copyOf.stored).toBe(false);
    r.committed([seen.record], marks);
    expect(copy.copyOf.stored).toBe(true);

    const other = r.receive(4, false, 1, messageHash('t', Buffer.from('b')));
    if (!('record' in other)) throw new Error('expected a new record');
    r.refused([other.record], r.takeMarks());
    // Not stored: a redelivered copy of it is a message to store, not a duplicate.
    expect('record' in r.receive(4, true, 1, messageHash('t', Buffer.from('b')))).toBe(true);
  });

  it('records read back from the store (after a restart) recognise their copies; another session starts empty', () => {
    const first = new Redeliveries('in', SESSION, new Map());
    const qos1 = first.receive(9, false, 1, messageHash('t', Buffer.from('x')));
    const qos2 = first.receive(10, false, 2, messageHash('t', Buffer.from('y')));
    if (!('record' in qos1) || !('record' in qos2)) throw new Error('expected new records');
    // What the store holds after the commit: the marks (the session's among them), applied in order.
    const marks = first.takeMarks();
    first.committed([qos1.record, qos2.record], marks);
    const table = new Map<number, string>();
    for (const m of marks) {
      if (m.value === null) table.delete(m.key);
      else table.set(m.key, m.value);
    }
    expect(table.get(9)).toMatch(/^1:[0-9a-f]{16}$/);
    expect(table.get(10)).toMatch(/^2:[0-9a-f]{16}$/);

    const again = new Redeliveries('in', SESSION, table);
    expect(again.size).toBe(2);
    const copy = again.receive(9, true, 1, messageHash('t', Buffer.from('x')));
    expect('copyOf' in copy && copy.copyOf.stored).toBe(true);
    expect('copyOf' in again.receive(10, true, 2, messageHash('t', Buffer.from('y')))).toBe(true);
    // Same id, other payload: another message.
    expect('record' in again.receive(9, true, 1, messageHash('t', Buffer.from('z')))).toBe(true);

    const elsewhere = new Redeliveries('in', 'mqtt://other|client', table);
    expect(elsewhere.size).toBe(0);
    expect('record' in elsewhere.receive(9, true, 1, messageHash('t', Buffer.from('x')))).toBe(true);
  });

  it('while a probe waits behind a long backlog, the records stay within the 65,535 packet ids', () => {
    const r = new Redeliveries('in', SESSION, new Map());
    let first = true;
    let probe: number | undefined;
    // 300,000 messages acknowledged while the probe sent after the first is not answered: ids are reused.
    for (let n = 0; n < 300_000; n++) {
      const rec = stored(r, (n % 65_535) + 1, `m${n}`);
      r.acknowledged(rec);
      if (first) {
        probe = r.probe();
        first = false;
      }
    }
    expect(r.size).toBe(65_535);
    r.confirmed(probe!);
    // Only the records the first probe covered (replaced long since) go; the rest wait for the next probe.
    expect(r.size).toBe(65_535);
    r.confirmed(r.probe()!);
    expect(r.size).toBe(0);
  });
});
