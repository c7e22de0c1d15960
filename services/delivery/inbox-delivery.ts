import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { DeviceIdentity } from '../auth/identity.ts'
import { topics } from '../auth/topic-acl.ts'
import { visibleTo } from '../blocks/hidden.ts'
import type { MembershipIndex } from '../chats/membership-index.ts'
import { toEvent } from '../messages/events.ts'
import type { MessageStore } from '../messages/message-store.ts'
import { withDeadline } from '../storage/deadline.ts'
import { CursorBatch } from './cursor-batch.ts'
import type { ConnectResult, DeliveryStore, DeviceRef } from './delivery-store.ts'
import {
  type ChatFeedState,
  type Deliverable,
  DeviceFeed,
  type FeedStart,
  type InFlight,
} from './device-feed.ts'
import { encodePublish } from './publish-packet.ts'
import { RecentMessages } from './recent-messages.ts'

/** Messages read from the store per query while a device catches up. */
const PAGE = 100
/** The payload of a delivery passed over (a message hidden from the device's user): never written. */
const EMPTY = Buffer.alloc(0)
/** At QoS 0 nothing is acknowledged: a catch-up pauses while this much waits in the socket. */
const QOS0_BUFFER_BYTES = 256 * 1024
const QOS0_RESUME_MS = 20
/** A failed store read or write is tried again after this, doubling up to the maximum. */
const RETRY_MS = 250
const RETRY_MAX_MS = 5000
/**
 * A store call that has not answered after this long (ms) counts as failed and is tried again:
 * a call that never settled (a MongoDB connection that stopped answering while FerretDB was
 * stopped) left a device connected with its inbox never started, or a chat never read again
 * (test/faults, mongo-stop-5s). Longer than the stores' own bounds (MongoDeliveryStore's
 * HOLD_MS), which normally answer first.
 */
const CALL_MS = 10_000
/** Edits, deletes and receipts may pass the window by this factor before they are dropped. */
const LIVE_OVERSHOOT = 2
const DAY_MS = 86_400_000

/**
 * What one node tells every node (itself included) about an inbox event. `payload` is the
 * event's JSON, serialized once for every device.
 */
export type InboxNotice =
  | {
      kind: 'message'
      chatId: string
      seq: number
      senderId: string
      /** When the message was stored, ms. */
      at: number
      payload: string
      /** Users who get it although no longer members (the member removed, or who left). */
      alsoTo?: string[]
      /** The user it is hidden from (services/blocks/hidden.ts): their devices skip its seq. */
      hiddenFrom?: string
    }
  | { kind: 'update'; chatId: string; seq: number; payload: string; hiddenFrom?: string }
  | { kind: 'receipt'; chatId: string; to: string[]; payload: string }
  /** An event about a user rather than a chat (a profile change): live only, to `to`'s devices. */
  | { kind: 'user'; to: string[]; payload: string }

/** What the delivery needs of an aedes client (aedes' own Client satisfies it). */
export interface InboxClient {
  id: string
  connected: boolean
  closed: boolean
  conn: NodeJS.WritableStream
  /** aedes' packet identifier counter; shared so that Natter's ids never collide with aedes'. */
  _nextId: number
}

/**
 * One connection, from its CONNECT to its disconnect. Kept small: there is one per idle
 * connection (the session record is reduced to `start` and `storedQos` once it is read).
 */
interface ClientState {
  client: InboxClient
  who: DeviceIdentity
  clean: boolean
  /**
   * This connection's number on this node; its id in the delivery store (a late disconnect of
   * an older one is ignored) is the node's prefix and this number (see #connId).
   */
  conn: number
  /** The QoS of the device's inbox subscription; undefined until it has one. */
  qos: 0 | 1 | undefined
  /**
   * The inbox QoS recorded with the device's session in the delivery store (null: none);
   * undefined until the session is recorded.
   */
  storedQos: 0 | 1 | null | undefined
  /** Where a feed of this connection starts; undefined until the session is recorded. */
  start: FeedStart | undefined
  feed: DeviceFeed | undefined
  gone: boolean
}

export interface InboxDeliveryDeps {
  messages: Pick<MessageStore, 'after' | 'seqBefore' | 'lastSeq' | 'changedSince'>
  store: DeliveryStore
  index: MembershipIndex
  log: Logger
  /** Unacknowledged QoS 1 inbox deliveries per device (NATTER_MAX_INFLIGHT). */
  maxInflight: number
  /** Sessions not seen for this many days are removed (NATTER_SESSION_EXPIRY_DAYS). */
  sessionExpiryDays: number
  /** A device acknowledged a message another user sent: the delivered receipt. at in ms. */
  onDelivered: (userId: string, chatId: string, seq: number, at: number) => void
  /** An inbox PUBLISH was written (metrics). */
  onWritten?: () => void
  /** Expired sessions, for the broker to drop their MQTT state too. */
  onExpired?: (devices: DeviceRef[]) => Promise<void>
  now?: () => number
}

/** Where a connection's feeds start, from the session the delivery store recorded at its CONNECT. */
function feedStart({ session, previous, fresh }: ConnectResult): FeedStart {
  const resumed = !fresh && previous !== null
  return {
    since: session.since,
    // A connection still recorded as open was cut without a goodbye (a node died, or this is a
    // takeover): anything stored before this CONNECT may have been written to it.
    resendBefore: !resumed ? 0 : previous.connected ? session.lastSeen : previous.lastSeen,
    replaySince: resumed ? previous.lastSeen : null,
  }
}

/**
 * Inbox delivery from the message store: the store is the queue. Each connected device that
 * subscribed to `u/<userId>/inbox` gets, per chat and strictly in seq order, every message
 * after its acknowledged cursor: first what it missed (read from the store), then the live
 * stream, with no gap and no repeat at the seam, because one feed per device decides what is
 * written next. A live message is written straight away when it is the next one the device
 * needs and the in-flight window has room; otherwise the store is read. Acknowledged cursors
 * are written to the delivery store in batches; a device that reconnects anywhere resumes
 * from them, and a message that an earlier connection may have written goes out with DUP=1
 * [MQTT-3.3.1-1]. Nothing here grows with offline messages or offline sessions.
 */
export class InboxDelivery {
  readonly #d: InboxDeliveryDeps
  readonly #now: () => number
  readonly #clients = new Map<InboxClient, ClientState>()
  /** Subscriptions seen before the connection was recorded (a resumed session's restore). */
  readonly #earlyQos = new WeakMap<InboxClient, 0 | 1>()
  /**
   * Connections with an inbox feed, per user. Arrays, replaced rather than changed (a loop over
   * one is never disturbed): a user has a device or two, and a Set per user cost about 100 bytes
   * more on every idle connection.
   */
  readonly #byUser = new Map<string, readonly ClientState[]>()
  /** Makes the connection ids of this node unique across nodes and restarts. */
  readonly #connPrefix = `${randomUUID()}#`
  #connCount = 0
  readonly #cursors: CursorBatch
  readonly #recent = new RecentMessages()
  readonly #pending = new Set<Promise<unknown>>()
  #closed = false

  constructor(d: InboxDeliveryDeps) {
    this.#d = d
    this.#now = d.now ?? Date.now
    this.#cursors = new CursorBatch(d.store, d.log)
  }

  /** A client finished its CONNECT (aedes clientReady). */
  connected(client: InboxClient, who: DeviceIdentity, clean: boolean): void {
    if (this.#closed) return
    const state: ClientState = {
      client,
      who,
      clean,
      conn: ++this.#connCount,
      qos: this.#earlyQos.get(client),
      storedQos: undefined,
      start: undefined,
      feed: undefined,
      gone: false,
    }
    this.#clients.set(client, state)
    const at = this.#now()
    this.#track(
      this.#retry(
        () =>
          this.#d.store.connect({
            userId: who.userId,
            deviceId: who.deviceId,
            clean,
            conn: this.#connId(state),
            at,
          }),
        () => state.gone,
        'record a session',
      ).then((session) => {
        if (!session) return
        state.start = feedStart(session)
        state.storedQos = session.session.inboxQos
        // The broker may have lost the subscription its session had (the embedded default keeps
        // subscriptions in memory): the delivery state remembers it.
        if (state.qos === undefined && !clean && state.storedQos !== null) {
          state.qos = state.storedQos
        }
        this.#recordSubscription(state)
        this.#maybeStart(state)
      }),
    )
  }

  /** The client subscribed to its own inbox with this QoS (also when aedes restores a session). */
  subscribed(client: InboxClient, qos: number): void {
    const q: 0 | 1 = qos === 0 ? 0 : 1
    const state = this.#clients.get(client)
    if (!state) {
      this.#earlyQos.set(client, q)
      return
    }
    state.qos = q
    this.#recordSubscription(state)
    if (state.feed) state.feed.qos = q
    else this.#maybeStart(state)
  }

  /** The client unsubscribed from its inbox: nothing more is written to it. */
  unsubscribed(client: InboxClient): void {
    this.#earlyQos.delete(client)
    const state = this.#clients.get(client)
    if (!state) return
    state.qos = undefined
    this.#recordSubscription(state)
    this.#stopFeed(state)
  }

  /** This connection's id in the delivery store. */
  #connId(state: ClientState): string {
    return `${this.#connPrefix}${state.conn}`
  }

  /** Writes the device's inbox subscription with its session when it changed. */
  #recordSubscription(state: ClientState): void {
    const qos = state.qos ?? null
    if (state.storedQos === undefined || state.storedQos === qos) return
    state.storedQos = qos
    const { userId, deviceId } = state.who
    this.#track(
      this.#retry(
        () => this.#d.store.subscribe({ userId, deviceId, qos }),
        () => state.gone,
        'record an inbox subscription',
      ),
    )
  }

  /** The client's connection closed (aedes clientDisconnect). */
  disconnected(client: InboxClient): void {
    const state = this.#clients.get(client)
    if (!state) return
    state.gone = true
    this.#clients.delete(client)
    this.#stopFeed(state)
    const { userId, deviceId } = state.who
    const at = this.#now()
    this.#track(
      this.#retry(
        () => this.#d.store.disconnect({ userId, deviceId, conn: this.#connId(state), at }),
        () => false,
        'record a disconnect',
        3,
      ),
    )
  }

  /** An inbox event, from this node or another: written to every local device that needs it. */
  notify(n: InboxNotice): void {
    if (this.#closed) return
    // Serialized once for every device; each packet copies it once.
    const body = Buffer.from(n.payload)
    if (n.kind === 'receipt') {
      for (const userId of n.to) this.#live(userId, n.chatId, null, body)
      return
    }
    if (n.kind === 'user') {
      for (const userId of n.to) this.#live(userId, '', null, body)
      return
    }
    if (n.kind === 'update') {
      this.#recent.forget(n.chatId)
      for (const userId of this.#d.index.members(n.chatId))
        if (userId !== n.hiddenFrom) this.#live(userId, n.chatId, n.seq, body)
      return
    }
    let behind = false
    for (const userId of this.#d.index.members(n.chatId)) {
      for (const state of this.#byUser.get(userId) ?? []) if (!this.#offer(state, n, body)) behind = true
    }
    // Kept only while a device here is behind in the chat: held for long, every message would
    // reach V8's old generation, and at 5,000 msg/s the major collections that followed tripled
    // the chat p99 (bench/). A device that falls behind reads the store once, then the cache.
    if (behind)
      this.#recent.add(
        { chatId: n.chatId, seq: n.seq, senderId: n.senderId, at: n.at, hiddenFrom: n.hiddenFrom },
        body,
      )
    else this.#recent.forget(n.chatId)
    for (const userId of n.alsoTo ?? []) {
      if (this.#d.index.isMember(n.chatId, userId)) continue
      for (const state of this.#byUser.get(userId) ?? []) {
        if (!state.feed || state.feed.loading) continue
        // Their last message of the chat: nothing after it is theirs.
        state.feed.forgetChat(n.chatId)
        this.#write(state, body, false, { chatId: n.chatId, seq: null, senderId: n.senderId, at: n.at })
      }
    }
  }

  /**
   * Answers a device that retried a send the store already had: when its feed is past the
   * message (it may have it already, or its session began after it), the message is written to
   * it again with DUP=1, so the device learns the seq; otherwise the feed brings it in order.
   */
  echo(clientId: string, chatId: string, seq: number, payload: string): void {
    const userId = clientId.slice(0, clientId.indexOf('/'))
    for (const state of this.#byUser.get(userId) ?? []) {
      const cs = state.feed?.chat(chatId)
      if (state.feed?.clientId !== clientId || !cs || cs.loading || cs.sent < seq) continue
      this.#write(state, Buffer.from(payload), true, { chatId, seq: null, senderId: userId, at: 0 })
    }
  }

  /**
   * The distinct senders of a chat's messages after `fromSeq` up to `toSeq`, when this node
   * heard of all of them lately; null otherwise (the message store knows). For receipts.
   */
  recentSenders(chatId: string, fromSeq: number, toSeq: number): string[] | null {
    return this.#recent.senders(chatId, fromSeq, toSeq)
  }

  /** A chat's members changed on another node: local devices of new members start on it. */
  membersChanged(chatId: string): void {
    for (const userId of this.#d.index.members(chatId)) {
      for (const state of this.#byUser.get(userId) ?? []) {
        const feed = state.feed
        if (feed && !feed.loading && !feed.chat(chatId)) this.#startChat(state, chatId, undefined)
      }
    }
  }

  /**
   * A PUBACK from a client. True when it acknowledged one of these inbox deliveries: the
   * device's cursor moves and, for someone else's message, the delivered receipt follows.
   */
  puback(client: InboxClient, messageId: number): boolean {
    const state = this.#clients.get(client)
    const feed = state?.feed
    const sent = feed?.takeInflight(messageId)
    if (!state || !feed || !sent) return false
    if (sent.seq !== null) this.#acked(state, feed, sent.chatId, sent.seq, sent.senderId, sent.at)
    this.#resume(state)
    return true
  }

  /**
   * Reads the store for every chat of every local device whose feed may be behind: after a
   * cluster's notices may have been lost (Redis restarting). One lastSeq read per chat.
   */
  async recheck(): Promise<void> {
    this.#recent.clear()
    const chats = new Map<string, ClientState[]>()
    for (const state of this.#clients.values()) {
      if (!state.feed || state.feed.loading) continue
      for (const chatId of state.feed.chatIds()) {
        const list = chats.get(chatId)
        if (list) list.push(state)
        else chats.set(chatId, [state])
      }
    }
    for (const [chatId, states] of chats) {
      if (this.#closed) return
      const last = await this.#d.messages.lastSeq(chatId)
      for (const state of states) {
        const cs = state.feed?.chat(chatId)
        if (cs && cs.sent < last) this.#pump(state, chatId)
      }
    }
  }

  /** Moves lastSeen of every device connected here to now, so that connected devices never expire. */
  async touchConnected(now = this.#now()): Promise<void> {
    const devices = [...this.#clients.values()].map((s) => ({
      userId: s.who.userId,
      deviceId: s.who.deviceId,
    }))
    if (devices.length) await this.#d.store.touch(devices, now)
  }

  /**
   * Removes sessions not seen for NATTER_SESSION_EXPIRY_DAYS before `now` (ms), with their
   * delivery state, and returns them. The hourly job calls it; tests pass their own clock.
   */
  async expireSessions(now = this.#now()): Promise<DeviceRef[]> {
    await this.touchConnected(now)
    const removed = await this.#d.store.expire(now - this.#d.sessionExpiryDays * DAY_MS)
    if (removed.length) {
      this.#d.log.info({ event: 'sessions_expired', count: removed.length }, 'inactive sessions removed')
      await this.#d.onExpired?.(removed)
    }
    return removed
  }

  /** Whether a device of the user is connected here with its inbox subscribed (it will acknowledge). */
  hasFeed(userId: string): boolean {
    for (const state of this.#byUser.get(userId) ?? []) if (state.feed) return true
    return false
  }

  /**
   * Devices connected here with an inbox feed, and messages in flight to them (metrics, tests);
   * only those of one client id when given.
   */
  stats(clientId?: string): { devices: number; inflight: number } {
    let devices = 0
    let inflight = 0
    for (const s of this.#clients.values()) {
      if (!s.feed || (clientId !== undefined && s.feed.clientId !== clientId)) continue
      devices++
      inflight += s.feed.inflightCount
    }
    return { devices, inflight }
  }

  /** Writes the gathered cursor moves now; resolves when they and every earlier batch are written. */
  flush(): Promise<void> {
    return this.#cursors.flush()
  }

  /**
   * For a node that stops, after its broker closed: the session records and cursor moves
   * under way are written. Resolves within the caller's grace period or not at all.
   */
  async close(): Promise<void> {
    this.#closed = true
    for (const state of [...this.#clients.values()]) this.disconnected(state.client)
    await Promise.allSettled([...this.#pending])
    await this.#cursors
      .close()
      .catch((err: unknown) => this.#d.log.warn({ err }, 'delivery cursors left unwritten'))
  }

  #track<T>(p: Promise<T>): void {
    const tracked = p
      .catch((err: unknown) => this.#d.log.error({ err }, 'inbox delivery failed'))
      .finally(() => this.#pending.delete(tracked))
    this.#pending.add(tracked)
  }

  /**
   * Runs a store call until it succeeds, the caller gives up, or `tries` runs out; null then.
   * An attempt unanswered after CALL_MS counts as failed.
   */
  async #retry<T>(
    work: () => Promise<T>,
    giveUp: () => boolean,
    what: string,
    tries = Infinity,
  ): Promise<T | null> {
    let wait = RETRY_MS
    for (let n = 1; ; n++) {
      try {
        return await withDeadline(work(), CALL_MS, what)
      } catch (err) {
        if (giveUp() || n >= tries) {
          this.#d.log.warn({ err, what }, 'delivery store call failed; giving up')
          return null
        }
        this.#d.log.warn({ err: (err as Error).message, what, retryInMs: wait }, 'delivery store call failed')
        await new Promise((resolve) => setTimeout(resolve, wait).unref())
        wait = Math.min(wait * 2, RETRY_MAX_MS)
      }
    }
  }

  #maybeStart(state: ClientState): void {
    if (this.#closed || state.gone || state.feed || state.qos === undefined || !state.start) return
    const feed = new DeviceFeed({
      who: state.who,
      topic: topics.inbox(state.who.userId),
      qos: state.qos,
      start: state.start,
    })
    state.feed = feed
    // concat, not a spread: an array built by spreading keeps room for 17 entries.
    this.#byUser.set(feed.userId, this.#byUser.get(feed.userId)?.concat(state) ?? [state])
    this.#track(this.#load(state, feed))
  }

  async #load(state: ClientState, feed: DeviceFeed): Promise<void> {
    const ref = { userId: feed.userId, deviceId: feed.deviceId }
    // Only this session's: an earlier session's cursor move may have been written after this
    // session began, and a new session starts where its CONNECT began.
    const cursors = await this.#retry(
      () => this.#d.store.cursors({ ...ref, since: feed.since }),
      () => feed.closed,
      'read delivery cursors',
    )
    if (!cursors || feed.closed) return
    feed.loading = false
    const chats = new Set(this.#d.index.chatsOf(feed.userId))
    for (const chatId of cursors.keys()) {
      if (!chats.has(chatId)) this.#track(this.#d.store.forgetCursor({ ...ref, chatId }))
    }
    // Edits and deletes of messages the device had, made while it was away, are sent once.
    const replaySince = feed.start.replaySince
    for (const chatId of chats) {
      const cursor = cursors.get(chatId)
      this.#startChat(state, chatId, cursor)
      if (replaySince !== null && cursor !== undefined) {
        this.#track(this.#replayChanges(state, feed, chatId, cursor, replaySince))
      }
    }
  }

  /** Writes an edit or delete event for each message up to `upto` changed after `since` (ms). */
  async #replayChanges(state: ClientState, feed: DeviceFeed, chatId: string, upto: number, since: number) {
    const limit = this.#d.maxInflight
    const changed = await this.#retry(
      () => this.#d.messages.changedSince(chatId, upto, since, limit),
      () => feed.closed,
      'read changes made while away',
    )
    if (!changed || feed.closed) return
    if (changed.length === limit) {
      this.#d.log.info(
        { event: 'changes_capped', clientId: feed.clientId, chatId, limit },
        'more messages changed while the device was away than are replayed; history has them',
      )
    }
    for (const m of changed) {
      if (!visibleTo(m, feed.userId)) continue
      const payload = Buffer.from(JSON.stringify(toEvent(m, m.deletedAt !== null ? 'delete' : 'edit')))
      this.#write(state, payload, false, { chatId, seq: null, senderId: m.senderId, at: m.at })
    }
  }

  /** Starts a chat for a device at its cursor, or where its session (or membership) began. */
  #startChat(state: ClientState, chatId: string, cursor: number | undefined): void {
    const feed = state.feed
    if (!feed || feed.chat(chatId)) return
    if (cursor !== undefined) {
      feed.startChat(chatId, cursor)
      this.#pump(state, chatId)
      return
    }
    const cs = feed.startChat(chatId, 0, true)
    const from = Math.max(feed.since, this.#d.index.joinedAt(chatId, feed.userId) ?? 0)
    this.#track(
      this.#retry(
        () => this.#d.messages.seqBefore(chatId, from),
        () => feed.closed,
        'find where a chat starts',
      ).then((base) => {
        if (base === null || feed.closed || feed.chat(chatId) !== cs) return
        cs.acked = base
        cs.sent = base
        cs.loading = false
        this.#pump(state, chatId)
      }),
    )
  }

  /**
   * A new message for one device: written at once when it is next in line, else read from the
   * cache or the store. True when the device is keeping up (it has the message now), false when
   * it will catch up later.
   */
  #offer(state: ClientState, n: Extract<InboxNotice, { kind: 'message' }>, body: Buffer): boolean {
    const feed = state.feed
    if (!feed) return true
    if (feed.loading) return false
    const cs = feed.chat(n.chatId)
    if (!cs) {
      this.#startChat(state, n.chatId, undefined)
      return false
    }
    if (cs.pumping && !cs.loading && (cs.held?.length ?? 0) < PAGE) {
      cs.held ??= []
      cs.held.push({ m: n, payload: body })
      return false
    }
    if (cs.loading || cs.pumping) {
      cs.dirty = true
      return false
    }
    if (n.seq <= cs.sent) return true
    if (n.seq === cs.sent + 1 && !feed.isWaiting(n.chatId) && this.#room(state, feed) > 0) {
      this.#writeMessage(state, feed, n, body)
      return true
    }
    this.#pump(state, n.chatId)
    return false
  }

  /** An edit, delete or receipt: live only, to devices that already have what it is about. */
  #live(userId: string, chatId: string, seq: number | null, payload: Buffer): void {
    for (const state of this.#byUser.get(userId) ?? []) {
      const feed = state.feed
      if (!feed || feed.loading) continue
      if (seq !== null) {
        const cs = feed.chat(chatId)
        // A device that has not got the message yet gets it as it is now, edit included.
        if (!cs || cs.loading || cs.sent < seq) continue
      }
      if (feed.qos === 1 && feed.inflightCount >= this.#d.maxInflight * LIVE_OVERSHOOT) {
        this.#d.log.info(
          { event: 'live_event_dropped', clientId: feed.clientId, chatId },
          'device not acknowledging',
        )
        continue
      }
      this.#write(state, payload, false, { chatId, seq: null, senderId: '', at: 0 })
    }
  }

  #room(state: ClientState, feed: DeviceFeed): number {
    if (feed.qos === 1) return feed.full ? 0 : feed.room(this.#d.maxInflight)
    const buffered = (state.client.conn as unknown as { buffered?: number }).buffered ?? 0
    return buffered < QOS0_BUFFER_BYTES ? PAGE : 0
  }

  /** Reads what a device lacks of a chat from the store and writes it, page by page, while the window has room. */
  #pump(state: ClientState, chatId: string): void {
    const feed = state.feed
    const cs = feed?.chat(chatId)
    if (!feed || !cs || cs.loading || feed.closed) return
    if (cs.pumping) {
      cs.dirty = true
      return
    }
    cs.pumping = true
    this.#pumpPages(state, feed, cs, chatId).catch((err: unknown) => {
      this.#d.log.warn(
        { err: (err as Error).message, chatId, clientId: feed.clientId },
        'catch-up read failed; retrying',
      )
      setTimeout(() => this.#pump(state, chatId), RETRY_MS * 4).unref()
    })
  }

  /** The body of #pump: pages from the cache or the store while the window has room. */
  async #pumpPages(state: ClientState, feed: DeviceFeed, cs: ChatFeedState, chatId: string): Promise<void> {
    // The finally runs synchronously when nothing was awaited (the cache had it all): a PUBACK
    // parsed in the same turn must find the chat no longer pumping, or its resume would be lost.
    try {
      do {
        cs.dirty = false
        for (;;) {
          const room = this.#room(state, feed)
          if (room === 0) {
            // What was held is read from the store when the window has room again.
            cs.held = undefined
            feed.wait(chatId)
            if (feed.qos === 1) feed.full = true
            if (feed.qos === 0) setTimeout(() => this.#resume(state), QOS0_RESUME_MS).unref()
            return
          }
          const want = Math.min(room, PAGE)
          const recent = this.#recent.after(chatId, cs.sent, want)
          for (const r of recent) this.#writeMessage(state, feed, r.m, r.payload)
          if (recent.length === want) continue
          // The cache heard of every message up to here and the device has them: what comes
          // next arrives as a notice. (A notice this node missed shows as a gap at the next one,
          // or at the cluster's recheck, which empties the cache; both read the store.)
          if (this.#recent.last(chatId) === cs.sent) break
          // The store has the rest, if any: the cache may lack notices this node never heard.
          const page = await withDeadline(
            this.#d.messages.after(chatId, cs.sent, want - recent.length),
            CALL_MS,
            'read a chat page',
          )
          if (feed.closed || feed.chat(chatId) !== cs) return
          for (const m of page) {
            if (m.seq <= cs.sent) continue
            if (!visibleTo(m, feed.userId))
              this.#writeMessage(state, feed, { ...m, hiddenFrom: feed.userId }, EMPTY)
            else this.#writeMessage(state, feed, m, Buffer.from(JSON.stringify(toEvent(m))))
          }
          if (page.length < want - recent.length) break
        }
        // Caught up with the store: what arrived during the read follows on, unless a notice
        // was missed (a gap) or the window filled; then the store is read again.
        const held = cs.held
        cs.held = undefined
        for (const h of held ?? []) {
          if (h.m.seq <= cs.sent) continue
          if (h.m.seq !== cs.sent + 1 || this.#room(state, feed) === 0) {
            cs.dirty = true
            break
          }
          this.#writeMessage(state, feed, h.m, h.payload)
        }
      } while (cs.dirty)
    } finally {
      cs.pumping = false
      cs.held = undefined
    }
  }

  /** Gives waiting chats the window's free room, oldest first (once half of a full window is free). */
  #resume(state: ClientState): void {
    const feed = state.feed
    if (!feed || feed.closed) return
    if (feed.full) {
      if (feed.qos === 1 && feed.room(this.#d.maxInflight) < Math.ceil(this.#d.maxInflight / 2)) return
      feed.full = false
    }
    for (const chatId of feed.waitingChats()) {
      if (this.#room(state, feed) === 0) return
      feed.stopWaiting(chatId)
      this.#pump(state, chatId)
    }
  }

  #writeMessage(state: ClientState, feed: DeviceFeed, m: Deliverable, payload: Buffer): void {
    const cs = feed.chat(m.chatId)
    if (!cs) return
    cs.sent = m.seq
    // A message hidden from this user (a blocker) is passed over: its seq counts as sent, so
    // the feed goes on in order; nothing is written or acknowledged for it.
    if (m.hiddenFrom === feed.userId) return
    const meta: InFlight = { chatId: m.chatId, seq: m.seq, senderId: m.senderId, at: m.at }
    const written = this.#write(state, payload, m.at <= feed.resendBefore, meta)
    // At QoS 0 nothing comes back: written is as far as delivery goes (no delivered receipt).
    if (written && feed.qos === 0 && m.seq > cs.acked) {
      cs.acked = m.seq
      this.#cursors.move(feed, m.chatId, m.seq)
    }
  }

  /** Writes one inbox PUBLISH to the device's socket; false when the connection is gone. */
  #write(state: ClientState, payload: Buffer, dup: boolean, meta: InFlight): boolean {
    const feed = state.feed
    const client = state.client
    if (!feed || feed.closed || client.closed || !client.connected) return false
    let messageId: number | undefined
    if (feed.qos === 1) {
      messageId = this.#nextId(client, feed)
      feed.addInflight(messageId, meta)
    }
    client.conn.write(
      encodePublish(feed.topic, payload, {
        qos: feed.qos,
        dup,
        ...(messageId !== undefined ? { messageId } : {}),
      }),
    )
    this.#d.onWritten?.()
    return true
  }

  #nextId(client: InboxClient, feed: DeviceFeed): number {
    for (;;) {
      const id = client._nextId
      client._nextId = id >= 65535 ? 1 : id + 1
      if (!feed.isInflight(id)) return id
    }
  }

  #acked(
    state: ClientState,
    feed: DeviceFeed,
    chatId: string,
    seq: number,
    senderId: string,
    at: number,
  ): void {
    const cs = feed.chat(chatId)
    if (cs && seq > cs.acked) cs.acked = seq
    this.#cursors.move(feed, chatId, seq)
    if (senderId !== state.who.userId) this.#d.onDelivered(state.who.userId, chatId, seq, at)
  }

  #stopFeed(state: ClientState): void {
    const feed = state.feed
    if (!feed) return
    feed.closed = true
    state.feed = undefined
    const users = this.#byUser.get(feed.userId) ?? []
    const at = users.indexOf(state)
    if (at < 0) return
    if (users.length === 1) this.#byUser.delete(feed.userId)
    else this.#byUser.set(feed.userId, users.slice(0, at).concat(users.slice(at + 1)))
  }
}
