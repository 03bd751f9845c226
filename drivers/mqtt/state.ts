// The mqtt input's state: one record, two unions. `link` is where the connection to the broker is,
// `store` what the ring said last. Every decision of the input reads them (mqtt.ts), and every
// transition is one assignment there, so no combination can exist that the input does not know.
//
//   idle ──start──► down ──CONNACK──► up ──close──► down (reconnect after a backoff)
//                                      │
//                                      ├─ store refused, QoS 1/2 ─► (store: refusing, holding) ──after a backoff──► cycling ──► down ──► up
//                                      └─ stop ─► stopping ──► idle
//
// A connection that is `open` can carry our acknowledgements: `up` always, `cycling` and `stopping`
// until the socket closes (stop acknowledges what was committed before it, over the open connection).

export type Link =
  /** Constructed, or stopped. */
  | { kind: 'idle' }
  /**
   * Connecting, or waiting to reconnect. `outageSinceMs` is set once the outage was logged (one line
   * per outage); `everUp` tells the first connection of this process from a reconnection.
   */
  | { kind: 'down'; outageSinceMs: number | null; everUp: boolean }
  /** Connected (from the CONNACK on). `announce` is what the 'connect' handler logs, then cleared. */
  | { kind: 'up'; sinceMs: number; announce: { first: boolean; outageSinceMs: number | null } | null }
  /** A deliberate disconnect so the broker re-sends what we left unacknowledged; its close is no outage. */
  | { kind: 'cycling'; open: boolean }
  /** stop() runs: last acknowledgements, then a clean DISCONNECT. */
  | { kind: 'stopping'; open: boolean };

export type StoreStatus =
  | { kind: 'accepting' }
  /**
   * The ring refused points. `holding`: new messages are left unacknowledged (the broker keeps them)
   * until the redelivery cycle; QoS 0 messages cannot be held and are counted as refused.
   */
  | { kind: 'refusing'; holding: boolean };

export interface MqttState {
  link: Link;
  store: StoreStatus;
}

/** Whether the connection can carry packets we send now. */
export function isOpen(link: Link): boolean {
  return link.kind === 'up' || ((link.kind === 'cycling' || link.kind === 'stopping') && link.open);
}

/** Whether new messages are taken in (decoded and stored) or left with the broker. */
export function takesMessages(state: MqttState): boolean {
  return state.link.kind !== 'stopping' && !(state.store.kind === 'refusing' && state.store.holding);
}
