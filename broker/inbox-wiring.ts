import type { Aedes, Client, PublishPacket } from 'aedes'
import memoryPersistence from 'aedes-persistence'
import type { Logger } from 'pino'
import type { Settings } from '../config/schema.ts'
import { clientIdOf, topics } from '../services/auth/topic-acl.ts'
import { hiddenFrom } from '../services/blocks/hidden.ts'
import type { MembershipIndex } from '../services/chats/membership-index.ts'
import { type InboxClient, InboxDelivery, type InboxNotice } from '../services/delivery/inbox-delivery.ts'
import { toEvent } from '../services/messages/events.ts'
import type { InboxSink } from '../services/messages/message-service.ts'
import type { StoredMessage } from '../services/messages/message-store.ts'
import type { ClusterLink } from './cluster.ts'
import { type AedesPersistenceLike, sessionPersistence } from './session-persistence.ts'
import type { Sessions } from './sessions.ts'
import type { Stores } from './stores.ts'

// Cluster: inbox events (a message stored, edited, a receipt) are announced to every node here
// (clients cannot subscribe to $ topics).
const INBOX_TOPIC = '$natter/inbox'
// A lost announcement (Redis restarting) delays a delivery at most this long: every node then
// compares its devices' feeds with the store.
const INBOX_RECHECK_MS = 10_000
// Inactive sessions are removed, and connected devices' last-seen refreshed, this often.
const SESSION_SWEEP_MS = 3_600_000

/** Whether a topic is a user's inbox, `u/<userId>/inbox` (user ids hold no `/`). */
function isInboxTopic(topic: string): boolean {
  return topic.startsWith('u/') && topic.endsWith('/inbox') && topic.indexOf('/', 2) === topic.length - 6
}

/**
 * Inbox subscriptions stay out of aedes' emitter. Nothing is ever published to an inbox topic
 * through aedes: the delivery writes inbox packets to the socket itself, and no device may
 * publish there (services/auth/topic-acl.ts; only a device's own inbox passes authorizeSubscribe
 * to get here). Registered, each device's inbox took two levels of the emitter's topic trie,
 * about 500 bytes on every idle connection (bench/, idle). aedes
 * still records the subscription on the client and in its persistence (SUBACK, sessions
 * restored, the `subscribe` event); only the emitter's listener is skipped, its callback
 * called as the emitter would (aedes 1.2: Aedes#subscribe and #unsubscribe wrap mq.on and
 * mq.removeListener, which both call back in a later turn).
 */
function keepInboxOutOfEmitter(broker: Aedes): void {
  type Listen = (topic: string, func: unknown, done?: () => void) => void
  const b = broker as unknown as { subscribe: Listen; unsubscribe: Listen }
  const subscribe = b.subscribe.bind(b)
  const unsubscribe = b.unsubscribe.bind(b)
  b.subscribe = (topic, func, done) => {
    if (!isInboxTopic(topic)) return subscribe(topic, func, done)
    if (done) setImmediate(done)
  }
  b.unsubscribe = (topic, func, done) => {
    if (!isInboxTopic(topic)) return unsubscribe(topic, func, done)
    if (done) setImmediate(done)
  }
}

/** A subscription as aedes hands it to its persistence and gets it back (aedes 1.2). */
interface StoredSubscription {
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
  subscriptionIdentifier?: number
}

/** The subscription calls of aedes-persistence that aedes makes (promise style, aedes 1.2). */
interface SubscriptionStore {
  addSubscriptions(client: { id: string }, subs: StoredSubscription[]): Promise<unknown>
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<unknown>
  subscriptionsByClient(client: { id: string }): Promise<StoredSubscription[]>
  cleanSubscriptions(client: { id: string }): Promise<unknown>
}

/** The user id of a client id `<userId>/<deviceId>`. */
const userOf = (clientId: string) => clientId.slice(0, clientId.indexOf('/'))

/**
 * The embedded default's in-memory persistence keeps each device's subscription to its own inbox
 * in one entry of a map of its own (client id to a record shared by every device subscribed
 * alike), not in aedes-persistence's per-client map and topic trie: those cost about 1.1 KB per
 * device, idle or offline (bench/, idle), for a trie that is never matched (nothing is
 * published to an inbox through aedes, see keepInboxOutOfEmitter). aedes sees the same
 * subscriptions: `subscriptionsByClient` (a resumed session's restore, and its CONNACK's
 * session-present flag) returns the inbox with the rest, and `cleanSubscriptions` forgets it.
 * Other topics, and another user's inbox in the same SUBSCRIBE (aedes stores the whole packet's
 * list, refused filters included), go to aedes-persistence as before.
 */
function compactInboxSubscriptions(p: SubscriptionStore): void {
  const inbox = new Map<string, Readonly<Omit<StoredSubscription, 'topic'>>>()
  // Records shared by every device that subscribed with the same options (MQTT 3.1.1: one per QoS).
  const shared = new Map<string, Readonly<Omit<StoredSubscription, 'topic'>>>()
  // The record aedes-persistence keeps: { qos, rh, rap, nl }, and the subscription identifier if any.
  const recordOf = (sub: StoredSubscription): Readonly<Omit<StoredSubscription, 'topic'>> => {
    const { qos, rh, rap, nl, subscriptionIdentifier } = sub
    if (subscriptionIdentifier !== undefined)
      return Object.freeze({ qos, rh, rap, nl, subscriptionIdentifier })
    const key = `${qos}|${rh}|${rap}|${nl}`
    let record = shared.get(key)
    if (!record) {
      record = Object.freeze({ qos, rh, rap, nl })
      shared.set(key, record)
    }
    return record
  }
  const own = (clientId: string, topic: string) => topic === topics.inbox(userOf(clientId))
  const add = p.addSubscriptions.bind(p)
  const remove = p.removeSubscriptions.bind(p)
  const byClient = p.subscriptionsByClient.bind(p)
  const clean = p.cleanSubscriptions.bind(p)
  p.addSubscriptions = async (client, subs) => {
    const rest = subs.filter((sub) => !own(client.id, sub.topic))
    // The last of the packet's filters wins, as in the per-client map it replaces.
    for (const sub of subs) if (own(client.id, sub.topic)) inbox.set(client.id, recordOf(sub))
    if (rest.length > 0) await add(client, rest)
  }
  p.removeSubscriptions = async (client, filters) => {
    const rest = filters.filter((topic) => !own(client.id, topic))
    if (rest.length < filters.length) inbox.delete(client.id)
    if (rest.length > 0) await remove(client, rest)
  }
  p.subscriptionsByClient = async (client) => {
    const subs = await byClient(client)
    const record = inbox.get(client.id)
    return record ? [...subs, { topic: topics.inbox(userOf(client.id)), ...record }] : subs
  }
  p.cleanSubscriptions = async (client) => {
    inbox.delete(client.id)
    await clean(client)
  }
}

/** The part of aedes-persistence's (callback and promise) API that stores retained messages. */
interface RetainedStore {
  storeRetained(packet: PublishPacket, ...rest: unknown[]): unknown
}

/**
 * A retained message lives as long as its topic does (a user's presence: for good), and its
 * payload is often a slice of Node's shared 8 KB Buffer pool, where one slice still referenced
 * keeps the whole slab alive: the retained presence messages kept about 500 bytes of slabs per
 * user (bench/, idle). The in-memory persistence gets a copy whose payload owns its bytes.
 */
function ownRetainedPayloads(p: RetainedStore): void {
  const store = p.storeRetained.bind(p)
  p.storeRetained = (packet, ...rest) => store(withOwnPayload(packet), ...rest)
}

/** The packet itself when its payload owns its memory; else a copy with a payload that does. */
function withOwnPayload(packet: PublishPacket): PublishPacket {
  const payload = packet.payload
  if (!Buffer.isBuffer(payload) || payload.byteLength === payload.buffer.byteLength) return packet
  const own = Buffer.allocUnsafeSlow(payload.byteLength)
  payload.copy(own)
  return { ...packet, payload: own }
}

/** What Natter reads of aedes' Client beyond its declarations (aedes 1.2, lib/client.js). */
type AedesClient = Client & {
  subscriptions: Record<string, { qos: number }>
  deliverQoS(packet: PublishPacket, done: () => void): void
}

const asInboxClient = (c: Client) => c as unknown as InboxClient

export interface InboxWiring {
  inbox: InboxDelivery
  /** Where the message and chat services send inbox events. */
  sink: InboxSink
  /**
   * Sends an event about a user (a profile change) to the inbox of every device of `to` that is
   * connected now, on every node; ephemeral like receipts.
   */
  toUsers(event: object, to: string[]): void
  /** aedes' persistence, wrapped so that it queues no inbox, presence or self message. */
  persistence: object
  /** Follows the broker's clients and subscriptions (call once the broker exists). */
  attach(broker: Aedes): void
  /** For a node that stops, after its broker closed; bounded by ms. */
  close(ms: number): Promise<void>
}

/**
 * Wires inbox delivery from the message store into a node: the delivery itself, the sink the
 * services publish to, aedes' persistence without per-session inbox queues, the broker's
 * events, and in a cluster the announcements between nodes and the recheck after lost ones.
 */
export function wireInbox(d: {
  settings: Settings
  stores: Stores
  index: MembershipIndex
  sessions: Sessions
  cluster: ClusterLink | undefined
  log: Logger
  onDelivered: (userId: string, chatId: string, seq: number, at: number) => void
  onWritten: () => void
}): InboxWiring {
  const { cluster, log, sessions } = d
  // aedes-persistence is ESM, but its declarations read as CommonJS: its default export is the factory.
  const memory = memoryPersistence as unknown as () => object
  const persistence = sessionPersistence(cluster ? (cluster.persistence as object) : memory(), {
    liveOnly: (topic) =>
      topic.startsWith('u/') &&
      (topic.endsWith('/inbox') || topic.endsWith('/presence') || topic.endsWith('/self')),
    puback: (client, messageId) => inbox.puback(asInboxClient(client), messageId),
  })
  if (!cluster) {
    ownRetainedPayloads(persistence as unknown as RetainedStore)
    compactInboxSubscriptions(persistence as unknown as SubscriptionStore)
  }
  const aedesPersistence = persistence as unknown as AedesPersistenceLike
  const inbox: InboxDelivery = new InboxDelivery({
    messages: d.stores.messages,
    store: d.stores.delivery,
    index: d.index,
    log,
    maxInflight: d.settings.maxInflight,
    sessionExpiryDays: d.settings.sessionExpiryDays,
    onDelivered: d.onDelivered,
    onWritten: d.onWritten,
    onExpired: async (devices) => {
      for (const dev of devices)
        await aedesPersistence.cleanSubscriptions({ id: clientIdOf(dev.userId, dev.deviceId) })
    },
  })

  // Inbox events go to this node's devices at once and, in a cluster, to every other node.
  const mq = cluster?.mq as
    | {
        emit(m: { topic: string; payload: string }, cb?: (err?: Error) => void): void
        on(topic: string, fn: (m: { payload: string }, done: () => void) => void): void
      }
    | undefined
  const announce = (n: InboxNotice) => {
    inbox.notify(n)
    if (!cluster || !mq) return
    mq.emit({ topic: INBOX_TOPIC, payload: JSON.stringify({ from: cluster.nodeId, n }) }, (err) => {
      if (err) log.warn({ err: err.message }, 'could not announce an inbox event; the recheck delivers it')
    })
  }
  // The event is serialized once, for every device on every node.
  const announceMessage = (m: StoredMessage, payload: string, alsoTo?: string[]) =>
    announce({
      kind: 'message',
      chatId: m.chatId,
      seq: m.seq,
      senderId: m.senderId,
      at: m.at,
      payload,
      ...(alsoTo?.length ? { alsoTo } : {}),
      ...(hiddenFrom(m) ? { hiddenFrom: hiddenFrom(m) } : {}),
    })
  const sink: InboxSink = {
    message: (m, alsoTo) => announceMessage(m, JSON.stringify(toEvent(m)), alsoTo),
    retried: (m, clientId) => {
      const payload = JSON.stringify(toEvent(m))
      announceMessage(m, payload)
      inbox.echo(clientId, m.chatId, m.seq, payload)
    },
    update: (m, type) =>
      announce({
        kind: 'update',
        chatId: m.chatId,
        seq: m.seq,
        payload: JSON.stringify(toEvent(m, type)),
        ...(hiddenFrom(m) ? { hiddenFrom: hiddenFrom(m) } : {}),
      }),
    receipt: (e, to) => announce({ kind: 'receipt', chatId: e.chatId, to, payload: JSON.stringify(e) }),
    recentSenders: (chatId, fromSeq, toSeq) => inbox.recentSenders(chatId, fromSeq, toSeq),
  }

  const timers: NodeJS.Timeout[] = []
  const every = (ms: number, fn: () => void) => {
    const timer = setInterval(fn, ms)
    timer.unref()
    timers.push(timer)
  }
  every(SESSION_SWEEP_MS, () => {
    inbox.expireSessions().catch((err: unknown) => log.error({ err }, 'session expiry failed'))
  })
  if (cluster && mq) {
    // Pub/sub loses what is published while a node's subscriber connection is down: when it is
    // back, and every INBOX_RECHECK_MS anyway, each device's feed is compared with the store.
    mq.on(INBOX_TOPIC, (m, done) => {
      done()
      const { from, n } = JSON.parse(m.payload) as { from: string; n: InboxNotice }
      if (from !== cluster.nodeId) inbox.notify(n)
    })
    const recheck = () => inbox.recheck().catch((err: unknown) => log.warn({ err }, 'inbox recheck failed'))
    cluster.onResubscribed(() => {
      log.info({ event: 'inbox_recheck' }, 'pub/sub back: devices catch up from the store')
      recheck()
    })
    every(INBOX_RECHECK_MS, recheck)
  }

  /**
   * Presence is retained and not queued per session: a resumed session gets the current
   * presence of every user it follows, as a new subscription would [MQTT-3.3.1-6].
   */
  const resendPresence = (client: AedesClient) => {
    const filters = Object.keys(client.subscriptions).filter(
      (t) => t.startsWith('u/') && t.endsWith('/presence'),
    )
    if (!filters.length) return
    const stream = aedesPersistence.createRetainedStreamCombi(filters)
    stream.on('data', (packet: PublishPacket) => {
      const { topic, payload, qos } = packet
      client.deliverQoS({ cmd: 'publish', topic, payload, qos, retain: true, dup: false }, () => {})
    })
    stream.on('error', (err: Error) => log.warn({ err: err.message }, 'could not read retained presence'))
  }

  return {
    inbox,
    sink,
    toUsers: (event, to) => announce({ kind: 'user', to, payload: JSON.stringify(event) }),
    persistence,
    attach(broker) {
      keepInboxOutOfEmitter(broker)
      broker.on('clientReady', (client) => {
        const who = sessions.get(client)?.who
        if (!who) return
        inbox.connected(asInboxClient(client), who, client.clean)
        // A resumed session's subscriptions were restored before it was ready.
        const sub = (client as AedesClient).subscriptions[topics.inbox(who.userId)]
        if (sub) inbox.subscribed(asInboxClient(client), sub.qos)
        if (!client.clean) resendPresence(client as AedesClient)
      })
      broker.on('clientDisconnect', (client) => inbox.disconnected(asInboxClient(client)))
      broker.on('subscribe', (subs, client) => {
        const who = sessions.get(client)?.who
        const mine =
          who && subs.find((s) => s.topic === topics.inbox(who.userId) && (s.qos as number) !== 128)
        if (mine) inbox.subscribed(asInboxClient(client), mine.qos)
      })
      broker.on('unsubscribe', (unsubs, client) => {
        const who = sessions.get(client)?.who
        if (who && unsubs.includes(topics.inbox(who.userId))) inbox.unsubscribed(asInboxClient(client))
      })
    },
    async close(ms) {
      for (const t of timers) clearInterval(t)
      await Promise.race([inbox.close(), new Promise((resolve) => setTimeout(resolve, ms).unref())])
    },
  }
}
