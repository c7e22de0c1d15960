import type { Client } from 'aedes'

/** The part of an aedes 1.x persistence (promise style) that Natter's delivery reaches into. */
export interface AedesPersistenceLike {
  outgoingEnqueue(sub: { clientId: string }, packet: { topic: string }): Promise<void>
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: { topic: string }): Promise<void>
  /** A PUBLISH being delivered, or the PUBREL aedes answers a client's PUBREC with (no topic). */
  outgoingUpdate(client: Client, packet: { topic?: string }): Promise<void>
  outgoingClearMessageId(client: Client, packet: { messageId?: number }): Promise<unknown>
  cleanSubscriptions(client: { id: string }): Promise<unknown>
  createRetainedStreamCombi(patterns: string[]): NodeJS.ReadableStream
}

export interface SessionPersistenceHooks {
  /**
   * Topics whose QoS 1 deliveries aedes must not queue per session: the inbox (Natter delivers it
   * from the message store), presence (retained: the current value is sent again when a session
   * resumes) and a user's `self` relay (live, like typing).
   */
  liveOnly(topic: string): boolean
  /**
   * A PUBACK arrived; true when it acknowledged one of Natter's own inbox deliveries (the
   * persistence then has nothing to clear for it).
   */
  puback(client: Client, messageId: number): boolean
}

/**
 * Wraps aedes' persistence (memory on the embedded default, Redis in a cluster) so that it keeps
 * what aedes does well (sessions, subscriptions, wills, retained messages, queued replies on
 * `d/<clientId>/…`) and no longer queues a copy of every inbox message per session: those
 * queues lost messages in crashes, stalled after Redis restarts and grew without bound
 * (docs/decisions.md, "The store is the queue").
 */
export function sessionPersistence<P extends object>(base: P, hooks: SessionPersistenceHooks): P {
  const p = base as unknown as AedesPersistenceLike
  const enqueue = p.outgoingEnqueue.bind(p)
  const enqueueCombi = p.outgoingEnqueueCombi.bind(p)
  const update = p.outgoingUpdate.bind(p)
  const clear = p.outgoingClearMessageId.bind(p)
  p.outgoingEnqueue = (sub, packet) =>
    hooks.liveOnly(packet.topic) ? Promise.resolve() : enqueue(sub, packet)
  p.outgoingEnqueueCombi = (subs, packet) =>
    hooks.liveOnly(packet.topic) ? Promise.resolve() : enqueueCombi(subs, packet)
  // aedes records each QoS 1 delivery to a persistent session against its queued copy; without
  // a copy the base persistence fails ("no such packet") and aedes drops the client.
  // A PUBREL has no topic: the base looks its packet id up, and refuses one it never sent ("no
  // such packet": aedes closes that client). Reading its topic threw inside aedes' packet
  // handler, and one PUBREC (50 02 00 01) on a persistent session stopped the node.
  p.outgoingUpdate = (client, packet) =>
    packet.topic !== undefined && hooks.liveOnly(packet.topic) ? Promise.resolve() : update(client, packet)
  p.outgoingClearMessageId = (client, packet) =>
    packet.messageId !== undefined && hooks.puback(client, packet.messageId)
      ? Promise.resolve(undefined)
      : clear(client, packet)
  return base
}
