import type { Aedes, Client, PublishPacket } from 'aedes'
import memoryPersistence from 'aedes-persistence'
import type { Logger } from 'pino'
import type { Settings } from '../config/schema.ts'
import { clientIdOf, topics } from '../services/auth/topic-acl.ts'
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
    })
  const sink: InboxSink = {
    message: (m, alsoTo) => announceMessage(m, JSON.stringify(toEvent(m)), alsoTo),
    retried: (m, clientId) => {
      const payload = JSON.stringify(toEvent(m))
      announceMessage(m, payload)
      inbox.echo(clientId, m.chatId, m.seq, payload)
    },
    update: (m, type) =>
      announce({ kind: 'update', chatId: m.chatId, seq: m.seq, payload: JSON.stringify(toEvent(m, type)) }),
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
    persistence,
    attach(broker) {
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
