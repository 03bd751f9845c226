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
