// The acknowledgement gate: mqtt.js acknowledges a message as soon as its handlers return; its own
// hooks for doing it later (`handleMessage`, and `customHandleAcks`, which it honours only for MQTT 5)
// stall its whole packet pipeline until the callback, i.e. one message per group commit. So the gate
// lets mqtt.js run at full speed and holds back the PUBACK (QoS 1) or PUBREC (QoS 2) it sends, by
// wrapping the client's packet writer (`_sendPacket`, a private method: pinned by the mqtt version in
// the lock file and covered by the tests), until the commit that holds the message's points returns.
// QoS 2 PUBCOMPs are held the same way, until the commit that forgets the message's record.
//
// Held packets belong to the connection the message came on: when it closes they are dropped (the
// broker re-sends every unacknowledged message on the next one). The gate also sends the PINGREQ
// probes that confirm acknowledgements arrived (redelivery.ts).
//
// A commit releases thousands of acknowledgements at once, and they leave as one buffer. Sent one by
// one through mqtt.js, each PUBACK is three stream writes of 1–2 bytes (mqtt-packet's writeToStream);
// the socket gathers what is written meanwhile into one writev, and the kernel takes at most 1,024
// pieces per call (IOV_MAX), i.e. 341 PUBACKs per event-loop turn. At 40,000 JSON messages/s that was
// measured as 1,700 acknowledgements/s leaving, 600,000 pieces queued in the socket and the agent out
// of heap within 10 s (MQTT bench, default memory limit). So the released packets are encoded here
// (mqtt-packet's generate, the encoder mqtt.js itself uses) and written with one write.
import type { MqttClient, Packet } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { Recorded, Redeliveries } from './redelivery.js';

/** An acknowledgement held until the message's points are committed. */
export interface HeldAck {
  messageId: number;
  /** Which packet: the PUBACK/PUBREC of a PUBLISH, or the PUBCOMP of a PUBREL. */
  gate: 'ack' | 'completion';
  /** The packet mqtt.js wanted to send, once it asked. */
  packet?: Packet;
  released: boolean;
  /** The message's record, stored with its points. */
  record?: Recorded;
  /** A redelivered copy: the record of the stored message it repeats. */
  copyOf?: Recorded;
}

type SendPacket = (packet: Packet, cb?: (err?: Error) => void, ...rest: unknown[]) => void;
type Probe = NonNullable<ReturnType<Redeliveries['probe']>>;

export interface AckGateHooks {
  /** Whether the connection can carry packets now (state.ts isOpen). */
  isOpen(): boolean;
  redeliveries(): Redeliveries | undefined;
  /** An acknowledgement (not a PUBCOMP) left. */
  acknowledged(): void;
  /** A probe was answered: records were forgotten, their deletions wait for the next write. */
  confirmed(): void;
}

export class AckGate {
  /** Held packets of the current connection, by packet id. */
  private acks = new Map<number, HeldAck>();
  private completions = new Map<number, HeldAck>();
  private unreleased = 0;
  /** PINGREQs in flight, oldest first: ours carry a probe, mqtt.js's keepalive pings none. */
  private pings: (Probe | null)[] = [];
  private send: SendPacket | undefined;
  private client: MqttClient | undefined;
  /** Released packets not yet written (flush). */
  private outbox: Packet[] = [];

  constructor(private readonly hooks: AckGateHooks) {}

  /** Messages (and PUBRELs) of this connection whose acknowledgement is still held. */
  get unacked(): number {
    return this.unreleased;
  }

  install(client: MqttClient): void {
    const internals = client as unknown as { _sendPacket: SendPacket };
    const send: SendPacket = internals._sendPacket.bind(client);
    this.send = send;
    this.client = client;
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
          // Behind the acknowledgements released before it: a broker expects them in arrival order.
          this.flush();
        } else if (gate === this.acks) {
          // Every QoS 1/2 PUBLISH of this connection is held from its arrival: an acknowledgement
          // nothing holds is mqtt.js finishing a message of a closed connection (intake.ts held its
          // pipeline back). On this connection that id may be another message, not yet stored.
          cb?.();
          return;
        }
      }
      if (packet.cmd === 'pingreq') this.pings.push(null);
      send(packet, cb, ...rest);
    };
  }

  /** Holds the acknowledgement of a QoS 1/2 PUBLISH. */
  holdAck(messageId: number): HeldAck {
    const held: HeldAck = { messageId, gate: 'ack', released: false };
    this.acks.set(messageId, held);
    this.unreleased++;
    return held;
  }

  /** Holds the PUBCOMP answering a PUBREL. */
  holdCompletion(messageId: number): HeldAck {
    const held: HeldAck = { messageId, gate: 'completion', released: false };
    this.completions.set(messageId, held);
    this.unreleased++;
    return held;
  }

  /** The commit came: the packet may leave (now, if mqtt.js already asked to send it). */
  release(held: HeldAck): void {
    held.released = true;
    const gate = held.gate === 'ack' ? this.acks : this.completions;
    // From an earlier connection: the broker re-sends that message (or PUBREL), which is then a copy.
    if (gate.get(held.messageId) !== held) return;
    this.unreleased--;
    if (held.packet && this.send && this.hooks.isOpen()) {
      gate.delete(held.messageId);
      this.outbox.push(held.packet);
      this.sent(held);
    }
  }

  /** Writes the released packets, in the order they were released, as one buffer. */
  flush(): void {
    const packets = this.outbox;
    if (packets.length === 0) return;
    this.outbox = [];
    const client = this.client;
    // Closed meanwhile: the broker re-sends those messages, which are then copies (redelivery.ts).
    if (!client || !this.hooks.isOpen()) return;
    const options = { protocolVersion: client.options.protocolVersion ?? 4 };
    const encoded = packets.map((packet) => {
      client.emit('packetsend', packet);
      return mqttPacket.generate(packet, options);
    });
    client.stream.write(encoded.length === 1 ? encoded[0] : Buffer.concat(encoded));
  }

  /** Sends a PINGREQ behind the acknowledgements that left, unless one is on its way (see redelivery.ts). */
  probe(): void {
    // The PINGREQ confirms what was written before it.
    this.flush();
    if (!this.hooks.isOpen() || !this.send || this.pings.some((p) => p !== null)) return;
    const probe = this.hooks.redeliveries()?.probe();
    if (probe === undefined) return;
    this.pings.push(probe);
    this.send({ cmd: 'pingreq' });
  }

  onPingresp(): void {
    const probe = this.pings.shift();
    if (probe === undefined || probe === null) return;
    this.hooks.redeliveries()?.confirmed(probe);
    this.hooks.confirmed();
    this.probe();
  }

  /** The connection closed: packet ids belong to it. */
  reset(): void {
    this.outbox = [];
    this.acks = new Map();
    this.completions = new Map();
    this.unreleased = 0;
    this.pings = [];
  }

  /** A held packet left: acknowledgements count, and wait for a probe to confirm them. */
  private sent(held: HeldAck): void {
    if (held.packet?.cmd === 'pubcomp') return;
    this.hooks.acknowledged();
    const record = held.record ?? held.copyOf;
    if (record) this.hooks.redeliveries()?.acknowledged(record);
  }
}
