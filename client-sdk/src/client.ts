import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { Emitter } from './emitter.ts'
import { CONNECT_TIMEOUT_MS, watchFirstConnect } from './first-connect.ts'
import { type MediaUrls, mediaUrl, type Uploaded, type UploadOptions, uploadMedia } from './media.ts'
import { MemoryOutboxStorage, Outbox, type OutboxItem, type OutboxStorage } from './outbox.ts'
import { type NatterErrorCode, NatterRequestError, request } from './request.ts'
import { type ChatMessage, Timeline } from './timeline.ts'
import { clientIdOf, topics } from './topics.ts'

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'closed'
export type MessageStatus = 'sending' | 'sent' | 'delivered' | 'read' | 'failed'

export interface ClientOptions {
  /** mqtt://host:1883, mqtts://…, ws://host:8083/mqtt or wss://… */
  url: string
  userId: string
  deviceId: string
  /** Called for the first token and again before each one expires (or after a refusal). */
  getToken: () => Promise<string>
  /** Where unconfirmed messages wait across app restarts; memory by default. */
  outbox?: OutboxStorage
  /** Reconnect this long before the token expires (default 60 s; half the token's life when shorter). */
  refreshBeforeMs?: number
  /** Backoff between reconnect attempts: doubles from min to max, with jitter. */
  reconnect?: { minMs?: number; maxMs?: number }
  /**
   * How long the first connection may take, in ms from the first token in hand to the
   * subscriptions done (default 10 000); past it, createClient rejects with connect_timeout.
   * Reconnects after a first success are never given up.
   */
  connectTimeoutMs?: number
  mqtt?: Omit<
    IClientOptions,
    'clientId' | 'username' | 'password' | 'clean' | 'protocolVersion' | 'reconnectPeriod'
  >
}

export interface Chat {
  id: string
  kind: 'direct' | 'group'
  name: string | null
  members: { userId: string; role: 'admin' | 'member' }[]
  lastSeq: number
  readSeq: number
  unread: number
  lastMessage: ChatMessage | null
}

export interface ClientEvents extends Record<string, unknown> {
  state: ConnectionState
  /** A message entered or changed in a chat's timeline (each seq once; edits and deletes replace). */
  message: ChatMessage
  /** Where one of this user's messages stands: sent (stored), delivered, read, or failed. */
  status: { chatId: string; localId: string; seq?: number; status: MessageStatus; error?: NatterRequestError }
  typing: { chatId: string; userId: string; typing: boolean }
  /** lastSeenAt: when the user was last connected (now, while online), ms since the epoch. */
  presence: { userId: string; online: boolean; lastSeenAt: number }
  /**
   * A chat partner (or this user, on another device) changed their profile. Live only: after a
   * reconnect, read the profiles shown with getProfiles.
   */
  profile: Profile
  /** Something the server refused that no call was waiting for. */
  error: NatterRequestError
}

/** A user's profile; updatedAt (ms) is null for a user who never set one. */
export interface Profile {
  userId: string
  /** Show it instead of the user id when not null. */
  displayName: string | null
  /** A mediaId: mediaUrl gives its URLs. */
  avatar: string | null
  updatedAt: number | null
}

export interface Sending {
  localId: string
  /** Resolves once the message is in the outbox storage: from then on it survives a restart. */
  queued: Promise<void>
  /** Resolves with the seq once the server stored it; rejects with the server's refusal. */
  sent: Promise<{ seq: number }>
}

interface Receipt {
  type: 'receipt'
  chatId: string
  userId: string
  kind: 'delivered' | 'read'
  seq: number
}

const TYPING_EVERY_MS = 1000
/** After getToken failed, the next try of a refresh. */
const TOKEN_RETRY_MS = 1000

let counter = 0
const newLocalId = () =>
  `${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`

/** The exp claim of a JWT in ms (not verified: the server does that), or undefined. */
function expiresAt(token: string): number | undefined {
  try {
    const part = token.split('.')[1] ?? ''
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'))
    const exp = (JSON.parse(json) as { exp?: unknown }).exp
    return typeof exp === 'number' ? exp * 1000 : undefined
  } catch {
    return undefined
  }
}

/**
 * A Natter device: one MQTT connection with a persistent session, kept up across network
 * changes and token expiry; an outbox that sends messages in order and once; a gap-free
 * timeline per chat, synced after every reconnect; receipts, typing, presence and media.
 */
export class NatterClient extends Emitter<ClientEvents> {
  readonly userId: string
  readonly deviceId: string
  readonly clientId: string
  readonly #o: ClientOptions
  readonly #outbox: Outbox
  readonly #timelines = new Map<string, Timeline>()
  readonly #waiting = new Map<string, { resolve: (r: { seq: number }) => void; reject: (e: Error) => void }>()
  readonly #mine = new Map<string, { chatId: string; localId: string; seq: number; status: MessageStatus }>()
  readonly #cursors = new Map<string, Map<string, { delivered: number; read: number }>>()
  readonly #members = new Map<string, string[]>()
  readonly #watched = new Set<string>()
  readonly #typingTimers = new Map<string, ReturnType<typeof setTimeout>>()
  readonly #typingSent = new Map<string, number>()
  #client!: MqttClient
  #token = ''
  #state: ConnectionState = 'connecting'
  #attempt = 0
  #refreshTimer: ReturnType<typeof setTimeout> | undefined
  #refreshing = false
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined
  #closing = false
  /** Outbox messages the server refused as rate_limited, and any sent meanwhile: sent again at #resendAt. */
  readonly #held = new Set<string>()
  #resendAt = 0
  #resendTimer: ReturnType<typeof setTimeout> | undefined

  private constructor(o: ClientOptions) {
    super()
    this.#o = o
    this.userId = o.userId
    this.deviceId = o.deviceId
    this.clientId = clientIdOf(o.userId, o.deviceId)
    this.#outbox = new Outbox(o.outbox ?? new MemoryOutboxStorage())
  }

  /**
   * Connects; resolves at the first connection. Rejects with a NatterRequestError:
   * connect_failed when the server refuses it (a bad token, too many devices) or the connection
   * fails or closes before it is accepted (a closed port, a wrong URL); connect_timeout when it
   * takes over connectTimeoutMs. Either way nothing is left running.
   */
  static async connect(o: ClientOptions): Promise<NatterClient> {
    const c = new NatterClient(o)
    await c.#start()
    return c
  }

  get state(): ConnectionState {
    return this.#state
  }

  /** The MQTT client underneath, for what the SDK does not cover. */
  get mqtt(): MqttClient {
    return this.#client
  }

  async #start(): Promise<void> {
    this.#token = await this.#o.getToken()
    this.#client = mqtt.connect(this.#o.url, {
      ...this.#o.mqtt,
      clientId: this.clientId,
      username: this.userId,
      password: this.#token,
      clean: false,
      protocolVersion: 4,
      // Reconnects are this class's: each one may need a fresh token first.
      reconnectPeriod: 0,
    })
    this.#client.on('message', (topic, payload) => this.#onMessage(topic, payload))
    this.#client.on('connect', () => {
      ;(this.#client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true)
      this.#background(this.#onConnect())
    })
    this.#client.on('close', () => this.#onClose())
    this.#client.on('error', () => {
      // A refused CONNECT (bad or expired token): the next attempt fetches a new one.
      this.#token = ''
    })
    await new Promise<void>((resolve, reject) => {
      const onState = this.on('state', (s) => {
        if (s === 'connected') {
          onState()
          stop()
          resolve()
        }
      })
      const fail = (err: NatterRequestError) => {
        onState()
        this.#closing = true
        // The close that failed it may have scheduled a reconnect already.
        clearTimeout(this.#reconnectTimer)
        clearTimeout(this.#refreshTimer)
        this.#client.end(true)
        reject(err)
      }
      const stop = watchFirstConnect(
        this.#client,
        {
          url: this.#o.url,
          timeoutMs: this.#o.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
          describeRefusal: refusalMessage,
        },
        fail,
      )
    })
    // Messages a previous run of the app left unconfirmed go first, in their order.
    await this.#outbox.load()
    this.#flushOutbox()
  }

  /**
   * Sends every unconfirmed message again, in order. The server stores a clientMsgId once and
   * echoes it again, so a message that did arrive is not stored twice; mqtt.js's own offline
   * store is not relied on (a PUBACK left in a dead connection's buffer can be taken for a new
   * message's).
   */
  #flushOutbox(): void {
    for (const item of this.#outbox.items) this.#publish(item)
  }

  #setState(s: ConnectionState): void {
    if (this.#state === s) return
    this.#state = s
    this.emit('state', s)
  }

  async #onConnect(): Promise<void> {
    this.#attempt = 0
    this.#scheduleRefresh()
    const own = [topics.inbox(this.userId), topics.reply(this.clientId), topics.errors(this.clientId)]
    const extra = [...this.#watched]
    await this.#client.subscribeAsync([...own, ...extra], { qos: 1 })
    this.#setState('connected')
    this.#flushOutbox()
    // Whatever arrived while the device was away: every open chat catches up from its last seq.
    for (const chatId of this.#timelines.keys()) this.#background(this.sync(chatId))
  }

  #onClose(): void {
    clearTimeout(this.#refreshTimer)
    if (this.#closing) {
      this.#setState('closed')
      return
    }
    this.#setState('reconnecting')
    if (this.#reconnectTimer) return
    const min = this.#o.reconnect?.minMs ?? 500
    const max = this.#o.reconnect?.maxMs ?? 30_000
    const step = Math.min(max, min * 2 ** this.#attempt++)
    const delay = step / 2 + Math.random() * (step / 2)
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      this.#reconnect().catch(() => this.#onClose())
    }, delay)
  }

  async #reconnect(): Promise<void> {
    if (this.#closing) return
    const exp = expiresAt(this.#token)
    if (!this.#token || (exp !== undefined && exp - Date.now() < this.#refreshBefore(exp))) {
      this.#token = await this.#o.getToken()
    }
    this.#client.options.password = this.#token
    this.#client.reconnect()
  }

  #refreshBefore(exp: number): number {
    const wanted = this.#o.refreshBeforeMs ?? 60_000
    const life = exp - (expiresAt(this.#token) === exp ? Date.now() : 0)
    return Math.min(wanted, Math.max(0, life / 2))
  }

  /** Before the token expires, reconnect with a fresh one, so the server never closes on the app. */
  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer)
    const exp = expiresAt(this.#token)
    if (exp === undefined) return
    const life = exp - Date.now()
    const at = Math.max(0, life - Math.min(this.#o.refreshBeforeMs ?? 60_000, life / 2))
    this.#refreshTimer = setTimeout(() => this.#refreshNow(), at)
  }

  /**
   * Fetches a fresh token and reconnects with it: when the refresh timer fires, or when the
   * server's token_expired notice says the connection closes soon (it goes by the server's clock,
   * which a device's may disagree with).
   */
  #refreshNow(): void {
    clearTimeout(this.#refreshTimer)
    if (this.#refreshing || this.#closing) return
    this.#refreshing = true
    this.#o
      .getToken()
      .then(
        (token) => {
          this.#token = token
          this.#client.options.password = token
          // A clean DISCONNECT; the close starts the usual reconnect, now with the new token.
          // The session and its queue stay on the server meanwhile.
          this.#setState('reconnecting')
          this.#client.end(false)
        },
        () => {
          // Tried again a second later (not at once: a token server that fails fast would be
          // called in a loop once the token's last second has come).
          this.#refreshTimer = setTimeout(() => this.#refreshNow(), TOKEN_RETRY_MS)
        },
      )
      .finally(() => {
        this.#refreshing = false
      })
  }

  async close(): Promise<void> {
    this.#closing = true
    clearTimeout(this.#resendTimer)
    clearTimeout(this.#refreshTimer)
    clearTimeout(this.#reconnectTimer)
    for (const t of this.#typingTimers.values()) clearTimeout(t)
    // A clean DISCONNECT when connected (in-flight messages get their PUBACK first, for at most
    // 2 s); otherwise there is nothing to wait for.
    const client = this.#client
    await new Promise<void>((resolve) => {
      if (!client.connected) return void client.end(true, {}, () => resolve())
      const timer = setTimeout(() => client.end(true, {}, () => resolve()), 2000)
      client.end(false, {}, () => {
        clearTimeout(timer)
        resolve()
      })
    })
    this.#setState('closed')
  }

  /**
   * Work the client does by itself (subscribing, catching up). Failing because the connection
   * dropped is not the app's concern: the next connection does it again.
   */
  #background(work: Promise<unknown>): void {
    work.catch((err: unknown) => {
      if (this.#state !== 'connected' || !this.#client.connected) return
      const e = asError(err)
      if (e.code !== 'disconnected') this.emit('error', e)
    })
  }

  // --- requests ---------------------------------------------------------------------------

  request<T = unknown>(op: string, params: Record<string, unknown> = {}): Promise<T> {
    return request<T>(this.#client, this.clientId, op, params)
  }

  listChats(): Promise<Chat[]> {
    return this.request<{ chats: Chat[] }>('chat.list').then((r) => r.chats)
  }

  getChat(chatId: string): Promise<Chat> {
    return this.request<Chat>('chat.get', { chatId }).then((chat) => {
      this.#members.set(
        chatId,
        chat.members.map((m) => m.userId),
      )
      return chat
    })
  }

  createGroup(name: string, members: string[]): Promise<Chat> {
    return this.request<Chat>('chat.create', { name, members })
  }

  /** The direct chat with another user, created the first time. */
  direct(userId: string): Promise<Chat> {
    return this.request<Chat>('chat.direct', { with: userId })
  }

  leave(chatId: string): Promise<unknown> {
    return this.request('chat.leave', { chatId })
  }

  search(chatId: string, query: string, limit = 50): Promise<ChatMessage[]> {
    return this.request<{ messages: ChatMessage[] }>('search', { chatId, query, limit }).then(
      (r) => r.messages,
    )
  }

  edit(chatId: string, seq: number, text: string): Promise<unknown> {
    return this.request('edit', { chatId, seq, text })
  }

  deleteMessage(chatId: string, seq: number): Promise<unknown> {
    return this.request('delete', { chatId, seq })
  }

  /**
   * Profiles of this user and of users who share a chat with them, in the order asked; every
   * other id is in notFound (a stranger and a user that does not exist alike).
   */
  getProfiles(userIds: string[]): Promise<{ profiles: Profile[]; notFound: string[] }> {
    return this.request('profile.get', { userIds })
  }

  /**
   * Changes this user's profile: a field left out keeps its value, null clears it. The avatar
   * is the mediaId of an image this user uploaded (uploadMedia). Rejects with bad_request (a
   * name with invisible characters, blank or over 64 characters), media_not_found or
   * unsupported_media_type.
   */
  setProfile(p: { displayName?: string | null; avatar?: string | null }): Promise<Profile> {
    return this.request<{ profile: Profile }>('profile.set', p).then((r) => r.profile)
  }

  uploadMedia(data: Uint8Array | Blob, o: UploadOptions): Promise<Uploaded> {
    return uploadMedia({ client: this.#client, clientId: this.clientId }, data, o)
  }

  mediaUrl(mediaId: string): Promise<MediaUrls> {
    return mediaUrl({ client: this.#client, clientId: this.clientId }, mediaId)
  }

  // --- timelines ----------------------------------------------------------------------------

  /** A chat's messages held so far, in seq order. */
  messages(chatId: string): ChatMessage[] {
    return this.#timelines.get(chatId)?.messages() ?? []
  }

  /** This user's messages to a chat that the server has not stored yet, in the order sent. */
  pending(chatId: string): OutboxItem[] {
    return this.#outbox.items.filter((i) => i.chatId === chatId)
  }

  /** Where one of this user's messages stands, by its local id. */
  statusOf(localId: string): MessageStatus | undefined {
    if (this.#outbox.has(localId)) return 'sending'
    return this.#mine.get(localId)?.status
  }

  /**
   * Starts following a chat: its newest page, everything after it, its members (for group
   * receipts) and its typing indicators. Resolves with the messages held.
   */
  async open(chatId: string, pageSize = 50): Promise<ChatMessage[]> {
    const timeline = this.#timeline(chatId)
    await this.getChat(chatId)
    if (timeline.from === 0 || timeline.from > 1) {
      const page = await this.request<{ messages: ChatMessage[] }>('history', { chatId, limit: pageSize })
      for (const m of page.messages) this.#add(m)
    }
    await this.sync(chatId)
    const typing = topics.typing(chatId)
    if (!this.#watched.has(typing)) {
      this.#watched.add(typing)
      await this.#client.subscribeAsync(typing, { qos: 0 })
    }
    const cursors = await this.request<{
      cursors: { userId: string; deliveredSeq: number; readSeq: number }[]
    }>('receipts', { chatId })
    for (const c of cursors.cursors) {
      this.#receipt({ type: 'receipt', chatId, userId: c.userId, kind: 'delivered', seq: c.deliveredSeq })
      this.#receipt({ type: 'receipt', chatId, userId: c.userId, kind: 'read', seq: c.readSeq })
    }
    return timeline.messages()
  }

  /** Older messages before the oldest held; resolves with how many came. */
  async loadOlder(chatId: string, limit = 50): Promise<number> {
    const timeline = this.#timeline(chatId)
    if (timeline.from <= 1) return 0
    const page = await this.request<{ messages: ChatMessage[] }>('history', {
      chatId,
      limit,
      ...(timeline.from > 0 ? { before: timeline.from } : {}),
    })
    for (const m of page.messages) this.#add(m)
    return page.messages.length
  }

  /** Fetches everything after the last seq held without a gap. */
  async sync(chatId: string): Promise<void> {
    const timeline = this.#timeline(chatId)
    for (;;) {
      const page = await this.request<{ messages: ChatMessage[]; more: boolean }>('sync', {
        chatId,
        after: timeline.upTo,
        limit: 200,
      })
      for (const m of page.messages) this.#add(m)
      // Seqs the answer passed over are hidden from this user: no gap to fetch again.
      const last = page.messages.at(-1)
      if (last) timeline.syncedTo(last.seq)
      if (!page.more) return
    }
  }

  /** Marks a chat read up to its newest message held (or seq). */
  markRead(chatId: string, seq?: number): Promise<{ readSeq: number; unread: number }> {
    const upTo = seq ?? this.#timeline(chatId).upTo
    return this.request('read', { chatId, seq: Math.max(1, upTo) })
  }

  #timeline(chatId: string): Timeline {
    let t = this.#timelines.get(chatId)
    if (!t) {
      t = new Timeline()
      this.#timelines.set(chatId, t)
    }
    return t
  }

  #add(m: ChatMessage): void {
    const timeline = this.#timeline(m.chatId)
    const before = timeline.upTo
    if (timeline.add(m)) this.emit('message', timeline.get(m.seq) as ChatMessage)
    if (m.senderId === this.userId && m.kind === 'text') this.#confirm(m)
    // A seq beyond the next one: the ones between are fetched.
    if (timeline.hasGap && timeline.upTo === before && this.#state === 'connected') {
      this.#background(this.sync(m.chatId))
    }
  }

  // --- sending ------------------------------------------------------------------------------

  /**
   * Sends a message: it is kept in the outbox until the server has stored it, sent again after
   * a reconnect if need be, and stored once (its local id is its clientMsgId).
   */
  send(chatId: string, message: { text?: string; media?: string[]; replyTo?: number }): Sending {
    const item: OutboxItem = { localId: newLocalId(), chatId, ...message, createdAt: Date.now() }
    const sent = new Promise<{ seq: number }>((resolve, reject) =>
      this.#waiting.set(item.localId, { resolve, reject }),
    )
    // An unhandled refusal would crash a Node app that only listens to events.
    sent.catch(() => {})
    const queued = this.#outbox.add(item)
    queued.then(
      () => this.#publish(item),
      (err: unknown) => this.#fail(item.localId, chatId, asError(err)),
    )
    this.emit('status', { chatId, localId: item.localId, status: 'sending' })
    return { localId: item.localId, queued, sent }
  }

  #publish(item: OutboxItem): void {
    // Offline: the outbox sends it once connected again.
    if (this.#state !== 'connected') return
    // Waiting out a rate limit: it goes after the refused ones, in order, when the wait is over.
    if (Date.now() < this.#resendAt) {
      this.#held.add(item.localId)
      return
    }
    const { localId, chatId, createdAt: _, ...rest } = item
    this.#client.publish(topics.send(chatId), JSON.stringify({ clientMsgId: localId, ...rest }), { qos: 1 })
  }

  /**
   * The server refused an outbox message as rate_limited (it was not stored): it stays in the
   * outbox and is sent again, with the same clientMsgId, once retryAfterMs has passed; messages
   * sent meanwhile wait and follow it, so the chat keeps the order they were written in.
   */
  #resendLater(localId: string, retryAfterMs: number | undefined): void {
    this.#held.add(localId)
    // A server that named no wait: one second, rather than a loop.
    const at = Date.now() + (retryAfterMs !== undefined && retryAfterMs > 0 ? retryAfterMs : 1000)
    if (at <= this.#resendAt) return
    this.#resendAt = at
    clearTimeout(this.#resendTimer)
    this.#resendTimer = setTimeout(() => {
      this.#resendAt = 0
      const due = this.#outbox.items.filter((i) => this.#held.has(i.localId))
      this.#held.clear()
      for (const item of due) this.#publish(item)
    }, at - Date.now())
  }

  /** The server's echo of one of this user's messages: it is stored, with its seq. */
  #confirm(m: ChatMessage): void {
    const known = this.#mine.get(m.clientMsgId)
    if (!known) {
      this.#mine.set(m.clientMsgId, { chatId: m.chatId, localId: m.clientMsgId, seq: m.seq, status: 'sent' })
      this.#recompute(m.chatId)
    }
    if (this.#outbox.has(m.clientMsgId)) {
      this.#outbox.remove(m.clientMsgId).catch(() => {})
      this.emit('status', { chatId: m.chatId, localId: m.clientMsgId, seq: m.seq, status: 'sent' })
      this.#recompute(m.chatId)
    }
    this.#waiting.get(m.clientMsgId)?.resolve({ seq: m.seq })
    this.#waiting.delete(m.clientMsgId)
  }

  #fail(localId: string, chatId: string, error: NatterRequestError): void {
    this.#outbox.remove(localId).catch(() => {})
    this.#waiting.get(localId)?.reject(error)
    this.#waiting.delete(localId)
    this.emit('status', { chatId, localId, status: 'failed', error })
  }

  #receipt(r: Receipt): void {
    let perUser = this.#cursors.get(r.chatId)
    if (!perUser) {
      perUser = new Map()
      this.#cursors.set(r.chatId, perUser)
    }
    const c = perUser.get(r.userId) ?? { delivered: 0, read: 0 }
    if (r.kind === 'read') c.read = Math.max(c.read, r.seq)
    c.delivered = Math.max(c.delivered, r.seq, c.read)
    perUser.set(r.userId, c)
    this.#recompute(r.chatId)
  }

  /** A message is delivered (read) once every other member has it (has read it). */
  #recompute(chatId: string): void {
    const perUser = this.#cursors.get(chatId)
    if (!perUser) return
    const others = (this.#members.get(chatId) ?? [...perUser.keys()]).filter((u) => u !== this.userId)
    if (others.length === 0) return
    const floor = (k: 'delivered' | 'read') => Math.min(...others.map((u) => perUser.get(u)?.[k] ?? 0))
    const delivered = floor('delivered')
    const read = floor('read')
    for (const mine of this.#mine.values()) {
      if (mine.chatId !== chatId) continue
      const status: MessageStatus = mine.seq <= read ? 'read' : mine.seq <= delivered ? 'delivered' : 'sent'
      const rank = { sending: 0, failed: 0, sent: 1, delivered: 2, read: 3 }
      if (rank[status] > rank[mine.status]) {
        mine.status = status
        this.emit('status', { chatId, localId: mine.localId, seq: mine.seq, status })
      }
    }
  }

  // --- typing and presence ----------------------------------------------------------------

  /** Says the user is typing; call it on every keystroke, it is sent at most once a second. */
  typing(chatId: string): void {
    const last = this.#typingSent.get(chatId) ?? 0
    if (Date.now() - last < TYPING_EVERY_MS) return
    this.#typingSent.set(chatId, Date.now())
    this.#client.publish(topics.typing(chatId), JSON.stringify({ state: 'typing' }), { qos: 0 })
  }

  stopTyping(chatId: string): void {
    this.#typingSent.delete(chatId)
    this.#client.publish(topics.typing(chatId), JSON.stringify({ state: 'stopped' }), { qos: 0 })
  }

  /** Follows a contact's presence (someone who shares a chat with the user): presence events. */
  async watchPresence(userId: string): Promise<void> {
    const topic = topics.presence(userId)
    if (this.#watched.has(topic)) return
    this.#watched.add(topic)
    await this.#client.subscribeAsync(topic, { qos: 1 })
  }

  // --- incoming -------------------------------------------------------------------------------

  #onMessage(topic: string, payload: Uint8Array): void {
    let body: Record<string, unknown>
    try {
      body = JSON.parse(new TextDecoder().decode(payload))
    } catch {
      return
    }
    if (topic === topics.inbox(this.userId)) {
      if (body.type === 'receipt') this.#receipt(body as unknown as Receipt)
      else if (body.type === 'profile') {
        const { userId, displayName, avatar, updatedAt } = body as unknown as Profile
        this.emit('profile', { userId, displayName, avatar, updatedAt })
      } else this.#add(body as unknown as ChatMessage)
    } else if (topic === topics.errors(this.clientId)) {
      const n = body as { code: string; message: string; ref?: string; topic?: string; retryAfterMs?: number }
      const error = new NatterRequestError(n.code as NatterErrorCode, n.message, n.retryAfterMs)
      const chatId = /^c\/([^/]+)\/send$/.exec(n.topic ?? '')?.[1]
      // The server closes this connection at its token's expiry: reconnect first, with a new one.
      if (n.code === 'token_expired' && n.topic === undefined) this.#refreshNow()
      else if (n.code === 'rate_limited' && n.ref && chatId && this.#outbox.has(n.ref)) {
        this.#resendLater(n.ref, n.retryAfterMs)
      } else if (n.ref && chatId && this.#outbox.has(n.ref)) this.#fail(n.ref, chatId, error)
      else this.emit('error', error)
    } else if (topic.startsWith('u/') && topic.endsWith('/presence')) {
      const p = body as { userId: string; online: boolean; lastSeenAt?: number; lastSeen?: string }
      // A retained presence written before lastSeenAt existed carries only the ISO form.
      const lastSeenAt = p.lastSeenAt ?? Date.parse(p.lastSeen ?? '')
      this.emit('presence', { userId: p.userId, online: p.online, lastSeenAt })
    } else if (topic.startsWith('c/') && topic.endsWith('/typing')) {
      const chatId = topic.slice(2, -'/typing'.length)
      const t = body as { userId: string; state: string; expiresInMs: number }
      if (t.userId === this.userId) return
      const key = `${chatId}\u0000${t.userId}`
      clearTimeout(this.#typingTimers.get(key))
      const typing = t.state === 'typing'
      this.emit('typing', { chatId, userId: t.userId, typing })
      if (typing) {
        this.#typingTimers.set(
          key,
          setTimeout(() => {
            this.#typingTimers.delete(key)
            this.emit('typing', { chatId, userId: t.userId, typing: false })
          }, t.expiresInMs),
        )
      }
    }
  }
}

// mqtt.js's words for a call made while the connection is closing or closed.
const CONNECTION_GONE = /client disconnecting|connection closed|client disconnected/i

/**
 * What a refused CONNECT means. MQTT 3.1.1 CONNACKs carry a code and no reason: Natter answers 5
 * (not authorized) to a device beyond the user's cap of devices (docs/protocol.md#devices) and
 * to a banned or erased account (docs/admin.md), so the SDK says so.
 */
function refusalMessage(err: Error): string {
  const code = (err as { code?: unknown }).code
  if (code === 5) {
    return 'connection refused (not authorized): too many devices, revoke one with devices.list and device.revoke (from another device or over HTTP); or the account is banned or erased; or the token names another user or device'
  }
  if (code === 4) return 'connection refused: the token is bad, expired, or was revoked for this device'
  return err.message
}

function asError(err: unknown): NatterRequestError {
  if (err instanceof NatterRequestError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new NatterRequestError(CONNECTION_GONE.test(message) ? 'disconnected' : 'internal', message)
}

/** Connects a device (see NatterClient). */
export function createClient(o: ClientOptions): Promise<NatterClient> {
  return NatterClient.connect(o)
}
