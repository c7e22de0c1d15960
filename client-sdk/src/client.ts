import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { ChatState, type Member, type MessageChange } from './chat-state.ts'
import { Emitter } from './emitter.ts'
import { checkUrlForHere, connectTimeoutOf, firstToken, watchFirstConnect } from './first-connect.ts'
import { type MediaUrls, mediaUrl, type Uploaded, type UploadOptions, uploadMedia } from './media.ts'
import { MemoryOutboxStorage, Outbox, type OutboxItem, type OutboxStorage } from './outbox.ts'
import { type NatterErrorCode, NatterRequestError, request } from './request.ts'
import { type ChatMessage, Timeline } from './timeline.ts'
import { clientIdOf, topics } from './topics.ts'

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'closed'
/**
 * Where one of this user's messages stands: sending (in the outbox), sent (stored), delivered,
 * read, or failed (refused for good: in the outbox with its text until retried or cancelled).
 */
export type MessageStatus = 'sending' | 'sent' | 'delivered' | 'read' | 'failed'

/**
 * A `status` event: one of this user's messages changed status (seq once stored, error when
 * failed), or was cancelled: removed from the outbox by the app (cancel, or a delete before it
 * was sent), after which statusOf knows it no more.
 */
export interface StatusEvent {
  chatId: string
  localId: string
  seq?: number
  status: MessageStatus | 'cancelled'
  error?: NatterRequestError
}

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
   * How long the first connection may take, in ms from the call to the subscriptions done,
   * getToken included (default 10 000; Infinity for no limit); past it, createClient rejects
   * with connect_timeout. Anything but a positive number throws a TypeError. Reconnects after a
   * first success are never given up.
   */
  connectTimeoutMs?: number
  mqtt?: Omit<
    IClientOptions,
    'clientId' | 'username' | 'password' | 'clean' | 'protocolVersion' | 'reconnectPeriod'
  >
}

/** A chat as chat.get and chat.list describe it (docs/protocol.md#operations). */
export interface Chat {
  id: string
  kind: 'direct' | 'group'
  name: string | null
  createdBy: string
  /** ms since the epoch */
  createdAt: number
  members: Member[]
  lastSeq: number
  readSeq: number
  unread: number
  lastMessage: ChatMessage | null
  /** Whether the user muted the chat's push notifications (push.mute); absent from older servers. */
  muted?: boolean
}

export interface ClientEvents {
  state: ConnectionState
  /**
   * A message entered or changed in a chat's timeline (each seq once; edits and deletes replace),
   * history pages included. The granular events below tell new, edited and deleted apart.
   */
  message: ChatMessage
  /** A message new to this device, live or caught up after a reconnect (not from history pages). */
  'message.new': ChatMessage
  /** A message was edited: the new version. */
  'message.updated': ChatMessage
  /** A message was deleted for everyone: its tombstone. */
  'message.deleted': ChatMessage
  /** A chat's members changed (ChatState.members). */
  'members.updated': { chatId: string; members: Member[] }
  /** A chat's unread count or read cursor changed. */
  'unread.updated': { chatId: string; unread: number; readSeq: number }
  /** This user muted or unmuted a chat's push notifications. */
  'muted.updated': { chatId: string; muted: boolean }
  /**
   * A chat the user created or was added to, seen live (its creation or members_added event) or
   * found by loadChats after a reconnect. Its summary is loaded.
   */
  'chat.added': ChatState
  /**
   * The user left the chat or was removed from it (live, or missing from loadChats after a
   * reconnect): the client forgot its state, timeline and receipts.
   */
  'chat.removed': { chatId: string; reason: 'left' | 'removed' }
  /** The chat list's order or a chat's summary changed: every chat known, newest activity first. */
  'chats.updated': ChatState[]
  /** Where one of this user's messages stands: sent (stored), delivered, read, failed or cancelled. */
  status: StatusEvent
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
  /** Sends published on this connection (cleared at each connect: all go again). */
  readonly #inFlight = new Set<string>()
  /** Sends that may have reached the server (published once, or left by an earlier run): not changed in place. */
  readonly #maybeStored = new Set<string>()
  /** Callers waiting for a queued edit or delete. */
  readonly #opWaiting = new Map<
    string,
    { resolve: (m: ChatMessage | null) => void; reject: (e: Error) => void }
  >()
  /** The edit or delete being run (the outbox waits for it), and those tried before (their answer may have been lost). */
  #runningOp: string | undefined
  readonly #opTried = new Set<string>()
  #opTimer: ReturnType<typeof setTimeout> | undefined
  readonly #chats = new Map<string, ChatState>()
  /** Chats reported to the app (by loadChats or chat.added): each is announced once. */
  readonly #announced = new Set<string>()
  readonly #adding = new Set<string>()
  /** Chats the user left or was removed from: what still arrives for them is dropped. */
  readonly #gone = new Set<string>()
  /** Whether the app follows the chat list (loadChats was called): refreshed at each reconnect. */
  #followingList = false
  #listTimer: ReturnType<typeof setTimeout> | undefined

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
    // After the caller's `await` has run: listeners attached right after it see what waited.
    setTimeout(() => c.#releaseEarly(), 0)
    return c
  }

  /**
   * Inbox packets that arrived before connect() handed the client to the app (a persistent
   * session's queue is delivered as soon as the inbox is subscribed): held until the app could
   * attach its listeners, then handled in their order. Replies are never held: the start
   * itself waits for some.
   */
  #early: Array<[string, Uint8Array]> | null = []

  #releaseEarly(): void {
    const early = this.#early ?? []
    this.#early = null
    for (const [topic, payload] of early) this.#onMessage(topic, payload)
  }

  get #inboxTopic(): string {
    return topics.inbox(this.userId)
  }

  get state(): ConnectionState {
    return this.#state
  }

  /** The MQTT client underneath, for what the SDK does not cover. */
  get mqtt(): MqttClient {
    return this.#client
  }

  async #start(): Promise<void> {
    checkUrlForHere(this.#o.url)
    const timeoutMs = connectTimeoutOf(this.#o.connectTimeoutMs)
    const deadline = Date.now() + timeoutMs
    this.#token = await firstToken(this.#o.getToken, timeoutMs)
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
    this.#client.on('message', (topic, payload) => {
      if (this.#early && topic === this.#inboxTopic) this.#early.push([topic, payload])
      else this.#onMessage(topic, payload)
    })
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
          // What getToken left of it (at least 1 ms: a timeout, not a failure).
          timeoutMs: Math.max(1, deadline - Date.now()),
          limitMs: timeoutMs,
          describeRefusal: refusalMessage,
        },
        fail,
      )
    })
    // Messages a previous run of the app left unconfirmed go first, in their order.
    for (const item of await this.#outbox.load()) this.#maybeStored.add(item.localId)
    this.#flushOutbox()
  }

  /**
   * Sends every unconfirmed message again, in order. The server stores a clientMsgId once and
   * echoes it again, so a message that did arrive is not stored twice; mqtt.js's own offline
   * store is not relied on (a PUBACK left in a dead connection's buffer can be taken for a new
   * message's).
   */
  #flushOutbox(): void {
    if (this.#state !== 'connected') return
    for (const item of this.#outbox.items) {
      if (item.failed) continue
      if ((item.op ?? 'send') === 'send') {
        if (!this.#inFlight.has(item.localId)) this.#publish(item)
        continue
      }
      // An edit or delete goes once everything before it is confirmed (or failed), and what
      // follows waits for it: the server applies the user's changes in the order made.
      if (item === this.#outbox.items.find((i) => !i.failed)) this.#runOp(item)
      return
    }
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
    try {
      await this.#client.subscribeAsync(own, { qos: 1 })
    } catch {
      // Nothing works without the device's own topics: this connection is dropped, and the
      // backoff tries again (a SUBACK refusal would otherwise leave it open and useless).
      this.#client.stream?.destroy()
      return
    }
    this.#inFlight.clear()
    this.#setState('connected')
    this.#flushOutbox()
    // Typing and presence topics one by one: a refused one (a chat the user was removed from
    // while away, a user no longer shared) is forgotten and holds nothing else up; the chat
    // list's refresh below tells the app what changed.
    for (const topic of [...this.#watched]) {
      this.#client.subscribeAsync(topic, { qos: 1 }).catch(() => this.#watched.delete(topic))
    }
    // What changed while away (chats added, removed, new counts): once the app follows the list.
    if (this.#followingList) this.#background(this.loadChats())
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
    clearTimeout(this.#opTimer)
    clearTimeout(this.#listTimer)
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
    // What waited for this client is told, not left pending for ever; the items stay in the
    // outbox storage, for the next client on it.
    const closed = () =>
      new NatterRequestError(
        'disconnected',
        'the client was closed; the outbox storage keeps this for the next one',
      )
    for (const w of this.#waiting.values()) w.reject(closed())
    this.#waiting.clear()
    for (const w of this.#opWaiting.values()) w.reject(closed())
    this.#opWaiting.clear()
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

  /** The user's chats as the server describes them (chat.list); their ChatStates take the summaries. */
  listChats(): Promise<Chat[]> {
    const askedAt = performance.now()
    return this.request<{ chats: Chat[] }>('chat.list').then((r) => {
      for (const chat of r.chats) this.#summary(chat, askedAt)
      return r.chats
    })
  }

  /** One chat (chat.get); its ChatState takes the summary. Rejects with chat_not_found when not a member. */
  getChat(chatId: string): Promise<Chat> {
    const askedAt = performance.now()
    return this.request<Chat>('chat.get', { chatId }).then((chat) => {
      this.#summary(chat, askedAt)
      return chat
    })
  }

  /** Creates a group with this user as admin (chat.create); chat.added fires for it. */
  createGroup(name: string, members: string[]): Promise<Chat> {
    const askedAt = performance.now()
    return this.request<Chat>('chat.create', { name, members }).then((chat) => {
      this.#summary(chat, askedAt)
      this.#announce(chat.id)
      return chat
    })
  }

  /** The direct chat with another user, created the first time (chat.direct); chat.added fires when new here. */
  direct(userId: string): Promise<Chat> {
    const askedAt = performance.now()
    return this.request<Chat>('chat.direct', { with: userId }).then((chat) => {
      this.#summary(chat, askedAt)
      this.#announce(chat.id)
      return chat
    })
  }

  /** Leaves a group (chat.leave); the client forgets the chat (chat.removed). Rejects with not_allowed for a direct chat. */
  leave(chatId: string): Promise<unknown> {
    return this.request('chat.leave', { chatId }).then((r) => {
      this.#drop(chatId, 'left')
      return r
    })
  }

  /**
   * Adds members to a group (chat.add; admins only): resolves with those who were not members.
   * Rejects with not_allowed (not an admin, a direct chat), too_many_members or chat_not_found.
   */
  addMembers(chatId: string, userIds: string[]): Promise<{ added: string[] }> {
    return this.request('chat.add', { chatId, members: userIds })
  }

  /** Removes a member from a group (chat.remove; admins only). Rejects with not_allowed or not_found. */
  removeMember(chatId: string, userId: string): Promise<{ removed: string }> {
    return this.request('chat.remove', { chatId, userId })
  }

  /** Mutes or unmutes a chat's push notifications on all of the user's devices (push.mute). */
  setMuted(chatId: string, muted: boolean): Promise<{ chatId: string; muted: boolean }> {
    return this.request<{ chatId: string; muted: boolean }>('push.mute', { chatId, muted }).then((r) => {
      this.#chats.get(chatId)?._muted(r.muted)
      return r
    })
  }

  // --- chat states ---------------------------------------------------------------------------

  /**
   * The state object of a chat: the same one each time, kept up to date (see ChatState). Its
   * summary loads with open() or refresh() (or loadChats); until then name is null and members empty.
   */
  chat(chatId: string): ChatState {
    let state = this.#chats.get(chatId)
    if (!state) {
      state = new ChatState(this, chatId)
      if (this.#gone.has(chatId)) {
        // Asked again for a chat the user left or was removed from (a UI redrawing its
        // selection): a removed state, kept out of chats(), whose sends are refused at once.
        state._removed()
        return state
      }
      this.#chats.set(chatId, state)
      this.#forward(state)
    }
    return state
  }

  /**
   * The user's chats, newest activity first: once loadChats ran, those the list and the live
   * events announced (a state the app made with chat(id) for a chat not the user's stays out);
   * before, every chat this client knows.
   */
  chats(): ChatState[] {
    const states = [...this.#chats.values()]
    const listed = this.#followingList ? states.filter((c) => this.#announced.has(c.id)) : states
    return listed.sort((a, b) => b.lastActivityAt - a.lastActivityAt)
  }

  /**
   * Loads the user's chats (chat.list) and from then on follows the list: after every reconnect
   * it is read again, and chats found or gone fire chat.added and chat.removed (the first load
   * fires none: it resolves with them). Resolves with chats().
   */
  async loadChats(): Promise<ChatState[]> {
    const first = !this.#followingList
    this.#followingList = true
    const listed = await this.listChats()
    const ids = new Set(listed.map((c) => c.id))
    // Only chats the list had: one the app named itself (chat(id)) may not be the user's yet.
    for (const id of [...this.#announced]) if (!ids.has(id)) this.#drop(id, 'removed')
    for (const chat of listed) {
      if (first) this.#announced.add(chat.id)
      else this.#announce(chat.id)
    }
    return this.chats()
  }

  /** `askedAt`: performance.now() when the request that brought it was made. */
  #summary(chat: Chat, askedAt: number): void {
    // The server counts the user a member again.
    this.#gone.delete(chat.id)
    this.#members.set(
      chat.id,
      chat.members.map((m) => m.userId),
    )
    const later = (this.#timelines.get(chat.id)?.messages() ?? []).filter((m) => m.seq > chat.lastSeq)
    this.chat(chat.id)._summary(chat, later, askedAt)
    this.#recompute(chat.id)
  }

  /** Reports a chat new to the app, once. */
  #announce(chatId: string): void {
    const state = this.#chats.get(chatId)
    if (!state || this.#announced.has(chatId)) return
    this.#announced.add(chatId)
    this.emit('chat.added', state)
  }

  /** A chat the user was added to, seen live: its summary is read, then it is announced. */
  #added(chatId: string): void {
    if (this.#announced.has(chatId) || this.#adding.has(chatId)) return
    this.#adding.add(chatId)
    this.#background(
      this.getChat(chatId)
        .then(() => this.#announce(chatId))
        .finally(() => this.#adding.delete(chatId)),
    )
  }

  /** The user left or was removed: everything held of the chat goes. */
  #drop(chatId: string, reason: 'left' | 'removed'): void {
    const state = this.#chats.get(chatId)
    if (!state) return
    this.#chats.delete(chatId)
    this.#gone.add(chatId)
    this.#announced.delete(chatId)
    this.#timelines.delete(chatId)
    this.#cursors.delete(chatId)
    this.#members.delete(chatId)
    for (const [id, mine] of this.#mine) if (mine.chatId === chatId) this.#mine.delete(id)
    const typing = topics.typing(chatId)
    if (this.#watched.delete(typing) && this.#client.connected) {
      this.#client.unsubscribeAsync(typing).catch(() => {})
    }
    state._removed()
    this.emit('chat.removed', { chatId, reason })
    this.#listChanged()
  }

  /** A chat's events are the client's too; a summary change reorders the list (once per tick). */
  #forward(state: ChatState): void {
    for (const event of [
      'message.new',
      'message.updated',
      'message.deleted',
      'members.updated',
      'unread.updated',
      'muted.updated',
    ] as const) {
      state.on(event, (v) => this.emit(event, v as never))
    }
    state.on('updated', () => this.#listChanged())
  }

  #listChanged(): void {
    if (this.#listTimer) return
    this.#listTimer = setTimeout(() => {
      this.#listTimer = undefined
      this.emit('chats.updated', this.chats())
    }, 0)
  }

  search(chatId: string, query: string, limit = 50): Promise<ChatMessage[]> {
    return this.request<{ messages: ChatMessage[] }>('search', { chatId, query, limit }).then(
      (r) => r.messages,
    )
  }

  /**
   * Edits one of this user's messages: `target` is its seq, or the localId of a message still in
   * the outbox. Queued in the outbox like a send (kept offline and across restarts, run in order
   * after the sends before it); a pending message that cannot have reached the server yet (not
   * sent on any connection, or failed) is changed in place instead. Resolves with the edited
   * message, or null when changed in place. Rejects with not_found (no such message, deleted,
   * or a localId the client does not know), not_allowed (not the sender, a chat event), too_large.
   */
  edit(chatId: string, target: number | string, text: string): Promise<ChatMessage | null> {
    return this.#change(chatId, 'edit', target, text)
  }

  /**
   * Deletes one of this user's messages for everyone (a tombstone): `target` as for edit, queued
   * the same way; a pending message not yet sent is cancelled instead (status `cancelled`).
   * Resolves with the tombstone, or null when cancelled. Rejects as edit does.
   */
  deleteMessage(chatId: string, target: number | string): Promise<ChatMessage | null> {
    return this.#change(chatId, 'delete', target)
  }

  async #change(
    chatId: string,
    op: 'edit' | 'delete',
    target: number | string,
    text?: string,
  ): Promise<ChatMessage | null> {
    if (this.#closing) throw new NatterRequestError('disconnected', 'the client is closed')
    let seq = typeof target === 'number' ? target : undefined
    let pendingId: string | undefined
    if (typeof target === 'string') {
      const pending = this.#outbox.get(target)
      const mine = this.#mine.get(target)
      // A local id names one message of one chat: never another chat's message of the same seq.
      if ((pending && pending.chatId !== chatId) || (!pending && mine && mine.chatId !== chatId)) {
        throw new NatterRequestError('not_found', `message ${target} is not in chat ${chatId}`)
      }
      if (pending && (pending.op ?? 'send') === 'send') {
        if (pending.failed || !this.#maybeStored.has(target)) {
          if (op === 'delete') await this.cancel(target)
          else await this.#outbox.update(target, { text })
          return null
        }
        pendingId = target
      } else {
        seq = mine?.seq
        if (seq === undefined) {
          throw new NatterRequestError('not_found', `no message ${target} of this device's to ${op}`)
        }
      }
    }
    const item: OutboxItem = {
      localId: newLocalId(),
      chatId,
      op,
      ...(seq !== undefined ? { seq } : { target: pendingId as string }),
      ...(op === 'edit' ? { text } : {}),
      createdAt: Date.now(),
    }
    const done = new Promise<ChatMessage | null>((resolve, reject) =>
      this.#opWaiting.set(item.localId, { resolve, reject }),
    )
    try {
      await this.#outbox.add(item)
    } catch (err) {
      this.#opWaiting.delete(item.localId)
      await this.#outbox.remove(item.localId).catch(() => {})
      throw asError(err)
    }
    this.#flushOutbox()
    return done
  }

  /**
   * Runs a queued edit or delete; the outbox waits for it. Lost connections and timeouts leave
   * it queued for the next try; a refusal removes it and rejects its caller (an app restarted
   * since hears of it as an `error` event).
   */
  #runOp(item: OutboxItem): void {
    if (this.#runningOp !== undefined) return
    const seq = item.seq ?? (item.target ? this.#mine.get(item.target)?.seq : undefined)
    if (seq === undefined) {
      // Its message is not stored: refused (then it is changed where it waits) or gone.
      const target = item.target ? this.#outbox.get(item.target) : undefined
      if (target?.failed) {
        const changed =
          item.op === 'delete'
            ? this.cancel(target.localId)
            : this.#outbox.update(target.localId, { text: item.text })
        this.#opDone(
          item,
          changed.then(() => null),
        )
      } else {
        this.#opDone(
          item,
          Promise.reject(new NatterRequestError('not_found', `the message to ${item.op} is gone`)),
        )
      }
      return
    }
    const op = item.op === 'edit' ? 'edit' : 'delete'
    const params = { chatId: item.chatId, seq, ...(op === 'edit' ? { text: item.text } : {}) }
    const tried = this.#opTried.has(item.localId)
    this.#opTried.add(item.localId)
    const run = this.request<{ message: ChatMessage }>(op, params).then(
      (r) => {
        this.#add(r.message, true)
        return r.message
      },
      (err: unknown) => {
        const e = asError(err)
        // A delete whose first answer was lost may have been done then.
        if (op === 'delete' && tried && e.code === 'not_found') return null
        throw e
      },
    )
    this.#opDone(item, run)
  }

  #opDone(item: OutboxItem, run: Promise<ChatMessage | null>): void {
    this.#runningOp = item.localId
    run.then(
      (message) => {
        this.#runningOp = undefined
        this.#opTried.delete(item.localId)
        this.#opWaiting.get(item.localId)?.resolve(message)
        this.#opWaiting.delete(item.localId)
        this.#outbox.remove(item.localId).catch(() => {})
        this.#flushOutbox()
      },
      (err: unknown) => {
        this.#runningOp = undefined
        const e = asError(err)
        if (e.code === 'disconnected' || e.code === 'timeout' || e.code === 'rate_limited') {
          // Kept: the next connection runs it, or a timer when the server named a wait.
          const wait = e.code === 'disconnected' ? undefined : (e.retryAfterMs ?? 1000)
          if (wait !== undefined) {
            clearTimeout(this.#opTimer)
            this.#opTimer = setTimeout(() => this.#flushOutbox(), wait)
          }
          return
        }
        this.#opTried.delete(item.localId)
        const waiting = this.#opWaiting.get(item.localId)
        this.#opWaiting.delete(item.localId)
        if (waiting) waiting.reject(e)
        else this.emit('error', e)
        this.#outbox.remove(item.localId).catch(() => {})
        this.#flushOutbox()
      },
    )
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

  /**
   * This user's messages to a chat that the server has not stored yet, in the order sent: those
   * on their way and those refused for good (`failed` set: retry or cancel them).
   */
  pending(chatId: string): OutboxItem[] {
    return this.#outbox.items.filter((i) => i.chatId === chatId && (i.op ?? 'send') === 'send')
  }

  /** This user's edits and deletes in a chat that wait in the outbox (offline, or behind a send), in order. */
  pendingChanges(chatId: string): OutboxItem[] {
    return this.#outbox.items.filter((i) => i.chatId === chatId && (i.op ?? 'send') !== 'send')
  }

  /** Where one of this user's messages stands, by its local id. */
  statusOf(localId: string): MessageStatus | undefined {
    const item = this.#outbox.get(localId)
    if (item) return item.failed ? 'failed' : 'sending'
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
      // history answers newest first; the events go out in the chat's order.
      for (const m of [...page.messages].reverse()) this.#add(m, false)
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
    for (const m of [...page.messages].reverse()) this.#add(m, false)
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
    return this.request<{ readSeq: number; unread: number }>('read', { chatId, seq: Math.max(1, upTo) }).then(
      (r) => {
        this.#chats.get(chatId)?._read(r.readSeq, r.unread)
        return r
      },
    )
  }

  /** The seq up to which a chat's timeline is held without a gap (0: nothing held). */
  heldUpTo(chatId: string): number {
    return this.#timelines.get(chatId)?.upTo ?? 0
  }

  #timeline(chatId: string): Timeline {
    let t = this.#timelines.get(chatId)
    if (!t) {
      t = new Timeline()
      this.#timelines.set(chatId, t)
    }
    return t
  }

  /** A message from the inbox, a sync or a history page (live false: old, no message.new). */
  #add(m: ChatMessage, live = true): void {
    if (this.#gone.has(m.chatId)) {
      // Only the event that adds the user back brings a chat they left or were removed from back.
      if (!(m.kind === 'event' && addsUser(m, this.userId))) return
      this.#gone.delete(m.chatId)
    }
    const timeline = this.#timeline(m.chatId)
    const before = timeline.upTo
    const previous = timeline.get(m.seq)
    const added = timeline.add(m)
    // Out of the outbox before the events: a UI drawing on message.new shows it once, not also
    // as pending.
    if (m.senderId === this.userId && m.kind === 'text') this.#confirm(m)
    if (added) {
      const held = timeline.get(m.seq) as ChatMessage
      this.emit('message', held)
      const change: MessageChange = !previous
        ? 'new'
        : held.deletedAt !== null && previous.deletedAt === null
          ? 'deleted'
          : 'updated'
      const e = held.event ?? {}
      if (
        change === 'new' &&
        live &&
        held.kind === 'event' &&
        (e.type === 'member_removed' || e.type === 'member_left') &&
        e.userId === this.userId
      ) {
        // The user is out: the chat goes as a whole (chat.removed), with no last member update.
        this.#drop(m.chatId, e.type === 'member_left' ? 'left' : 'removed')
        return
      }
      const fresh = !this.#chats.has(m.chatId)
      this.chat(m.chatId)._message(held, change, previous, live)
      if (change === 'new' && live) this.#membership(held, fresh)
    }
    // A seq beyond the next one: the ones between are fetched.
    if (timeline.hasGap && timeline.upTo === before && this.#state === 'connected') {
      this.#background(this.sync(m.chatId))
    }
  }

  /** A live message that concerns the user's chat list: an event adding the user, or a chat not known yet. */
  #membership(m: ChatMessage, fresh: boolean): void {
    if (m.kind === 'event' && addsUser(m, this.userId)) this.#added(m.chatId)
    else if (fresh && this.#followingList) this.#added(m.chatId)
  }

  // --- sending ------------------------------------------------------------------------------

  /**
   * Sends a message: it is kept in the outbox until the server has stored it, sent again after
   * a reconnect if need be, and stored once (its local id is its clientMsgId).
   */
  send(chatId: string, message: { text?: string; media?: string[]; replyTo?: number }): Sending {
    if (this.#closing) {
      const refused = Promise.reject(new NatterRequestError('disconnected', 'the client is closed'))
      refused.catch(() => {})
      return { localId: newLocalId(), queued: refused, sent: refused }
    }
    const item: OutboxItem = { localId: newLocalId(), chatId, ...message, createdAt: Date.now() }
    const sent = new Promise<{ seq: number }>((resolve, reject) =>
      this.#waiting.set(item.localId, { resolve, reject }),
    )
    // An unhandled refusal would crash a Node app that only listens to events.
    sent.catch(() => {})
    const queued = this.#outbox.add(item)
    queued.then(
      () => this.#flushOutbox(),
      (err: unknown) => {
        // Not kept anywhere: it is gone, not failed.
        this.#outbox.remove(item.localId).catch(() => {})
        this.#waiting.get(item.localId)?.reject(asError(err))
        this.#waiting.delete(item.localId)
        this.#status({ chatId, localId: item.localId, status: 'failed', error: asError(err) })
      },
    )
    this.#status({ chatId, localId: item.localId, status: 'sending' })
    return { localId: item.localId, queued, sent }
  }

  /**
   * Sends a failed message again: out of the failed state, after everything in the outbox now
   * (it is stored after what was sent meanwhile), with the same clientMsgId, which is safe since
   * a refused message was not stored. `change` replaces its text or media first, for refusals
   * that need it (too_large, bad_request). Throws not_found when localId is not a failed message
   * in the outbox.
   */
  retry(localId: string, change: { text?: string; media?: string[] } = {}): Sending {
    const item = this.#outbox.get(localId)
    if (!item?.failed || (item.op ?? 'send') !== 'send') {
      throw new NatterRequestError('not_found', `no failed message ${localId} in the outbox`)
    }
    const sent = new Promise<{ seq: number }>((resolve, reject) =>
      this.#waiting.set(localId, { resolve, reject }),
    )
    sent.catch(() => {})
    const queued = this.#outbox.update(localId, { ...change, failed: undefined }, true)
    queued.then(
      () => this.#flushOutbox(),
      () => {},
    )
    this.#status({ chatId: item.chatId, localId, status: 'sending' })
    return { localId, queued, sent }
  }

  /**
   * Removes a message from the outbox (status `cancelled`; its `sent` rejects with cancelled):
   * a failed one, or one not sent on any connection yet. Resolves once the outbox storage has
   * it gone. Throws not_allowed for a message that may have reached the server (delete it once
   * stored), not_found for a localId not in the outbox.
   */
  async cancel(localId: string): Promise<void> {
    const item = this.#outbox.get(localId)
    if (!item || (item.op ?? 'send') !== 'send') {
      throw new NatterRequestError('not_found', `no message ${localId} in the outbox`)
    }
    if (!item.failed && this.#maybeStored.has(localId)) {
      throw new NatterRequestError(
        'not_allowed',
        `message ${localId} may be stored already: delete it instead`,
      )
    }
    const removed = this.#outbox.remove(localId)
    this.#waiting
      .get(localId)
      ?.reject(new NatterRequestError('cancelled', `message ${localId} was cancelled`))
    this.#waiting.delete(localId)
    this.#status({ chatId: item.chatId, localId, status: 'cancelled' })
    this.#flushOutbox()
    await removed
  }

  #status(s: StatusEvent): void {
    this.emit('status', s)
    this.#chats.get(s.chatId)?._status(s)
  }

  #publish(item: OutboxItem): void {
    // Offline: the outbox sends it once connected again.
    if (this.#state !== 'connected') return
    // Waiting out a rate limit: it goes after the refused ones, in order, when the wait is over.
    if (Date.now() < this.#resendAt) {
      this.#held.add(item.localId)
      return
    }
    const { localId, chatId, text, media, replyTo } = item
    this.#inFlight.add(localId)
    this.#maybeStored.add(localId)
    const body = { clientMsgId: localId, text, media, replyTo }
    this.#client.publish(topics.send(chatId), JSON.stringify(body), { qos: 1 })
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
      const due = this.#outbox.items.filter((i) => this.#held.has(i.localId) && !i.failed)
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
    const item = this.#outbox.get(m.clientMsgId)
    if (item && (item.op ?? 'send') === 'send') {
      this.#outbox.remove(m.clientMsgId).catch(() => {})
      this.#inFlight.delete(m.clientMsgId)
      this.#maybeStored.delete(m.clientMsgId)
      // Edits and deletes queued for it name it by seq from now on, across restarts too.
      for (const op of this.#outbox.items) {
        if (op.target === m.clientMsgId)
          this.#outbox.update(op.localId, { seq: m.seq, target: undefined }).catch(() => {})
      }
      this.#status({ chatId: m.chatId, localId: m.clientMsgId, seq: m.seq, status: 'sent' })
      this.#recompute(m.chatId)
      this.#flushOutbox()
    }
    this.#waiting.get(m.clientMsgId)?.resolve({ seq: m.seq })
    this.#waiting.delete(m.clientMsgId)
  }

  /** The server refused a send for good: it stays in the outbox, failed, with its text (retry, cancel). */
  #fail(localId: string, chatId: string, error: NatterRequestError): void {
    const item = this.#outbox.get(localId)
    if (!item || item.failed) return
    this.#inFlight.delete(localId)
    this.#outbox.update(localId, { failed: { code: error.code, message: error.message } }).catch(() => {})
    this.#waiting.get(localId)?.reject(error)
    this.#waiting.delete(localId)
    this.#status({ chatId, localId, status: 'failed', error })
    // Edits and deletes waiting behind it may go now.
    this.#flushOutbox()
  }

  #receipt(r: Receipt): void {
    if (r.userId === this.userId && r.kind === 'read') {
      // This user read the chat on another device: its count comes from the server's summary.
      const state = this.#chats.get(r.chatId)
      if (state?.loaded && r.seq > state.readSeq) this.#background(state.refresh())
    }
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
        this.#status({ chatId, localId: mine.localId, seq: mine.seq, status })
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

/** Whether a membership event adds this user: chat_created naming them, or members_added. */
function addsUser(m: ChatMessage, userId: string): boolean {
  const e = m.event ?? {}
  const named = (v: unknown) => Array.isArray(v) && v.includes(userId)
  return (e.type === 'chat_created' && named(e.members)) || (e.type === 'members_added' && named(e.userIds))
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
