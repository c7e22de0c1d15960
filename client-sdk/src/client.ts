import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { ChatState, type Member, type MessageChange } from './chat-state.ts'
import { Emitter } from './emitter.ts'
import { checkUrlForHere, connectTimeoutOf, firstToken, watchFirstConnect } from './first-connect.ts'
import { type MediaUrls, mediaUrl, type Uploaded, type UploadOptions, uploadMedia } from './media.ts'
import type { MembershipEvent } from './membership-events.ts'
import { isEncryptedChat } from './mls/chat-kind.ts'
import { parseEncryptedMedia } from './mls/encrypted-body-schema.ts'
import {
  type DevicesChangedEvent,
  ENCRYPTED_BODY_VERSION,
  type EncryptedChats,
  type EncryptedChatsHost,
} from './mls/encrypted-chats.ts'
import type { EncryptedMedia } from './mls/encrypted-media.ts'
import { LocalSearch } from './mls/local-search.ts'
import { type DownloadOptions, downloadMedia, uploadEncryptedMedia } from './mls/media-transfer.ts'
import type { MlsStorage } from './mls/storage.ts'
import { MemoryOutboxStorage, Outbox, type OutboxItem, type OutboxStorage } from './outbox.ts'
import { type Profile, ProfileCache, type ProfilesAnswer } from './profile-cache.ts'
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
  /** The message's seq once stored; for an edit or delete, the seq of the message it changes, once known. */
  seq?: number
  status: MessageStatus | 'cancelled'
  error?: NatterRequestError
  /**
   * Set for a queued edit or delete (absent for a send): `sending` when queued or retried, `sent`
   * once the server applied it, `failed` when refused (kept in pendingChanges: retry or cancel),
   * `cancelled` once removed.
   */
  op?: 'edit' | 'delete'
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
  /**
   * When the first connection cannot be made (no network, server unreachable, getToken failing,
   * connect_timeout), resolve anyway with the client in state `reconnecting`, which keeps trying
   * with its backoff: the outbox is loaded, `chats()` lists the chats with queued messages and
   * `chat(id).pending` shows them, and they are sent once a connection is made. A server that
   * answers and refuses (a CONNACK refusal: a bad token, too many devices) or answers something
   * that is not MQTT still makes it reject with connect_failed (in a browser, where a failed
   * WebSocket shows no cause, a wrong URL starts offline too); `connectTimeoutMs` is how long
   * the first attempt may take before the client gives it up and starts offline. Default
   * false: createClient rejects on any failure, so an app that shows a sign-in error at once is
   * not left waiting for a connection that may never come.
   */
  offlineStart?: boolean
  /**
   * MQTT options passed to mqtt.js. Natter's defaults differ from mqtt.js' in two:
   * - `keepalive` 5 (seconds; mqtt.js: 60): mqtt.js pings after a keepalive of silence and
   *   drops the connection when no answer came half a keepalive later, so a network gone silent
   *   (a dropped Wi-Fi, a sleeping laptop's NAT entry gone) shows as state `reconnecting` within
   *   1.5 × keepalive, 7.5 s, rather than 90 s. It costs one 2-byte PINGREQ and PINGRESP every
   *   5 s while nothing else is sent; a mobile app that keeps a connection in the background
   *   may want more.
   * - `connectTimeout` 10 000 ms (mqtt.js: 30 000): a reconnect that gets no CONNACK is given
   *   up and tried again after the backoff.
   */
  /**
   * End-to-end encrypted chats (docs/e2ee.md): where this device keeps its MLS keys and group
   * states (MemoryMlsStorage, FileMlsStorage for Node, IndexedDbMlsStorage for browsers). Without
   * it the client reads and writes plaintext chats only: an encrypted chat's messages stay
   * undecryptable and sends to one fail.
   */
  mls?: { storage: MlsStorage }
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
  /** End-to-end encrypted (docs/e2ee.md), fixed at creation; absent from older servers. */
  encrypted?: boolean
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
  /** A group was renamed (ChatState.name). */
  'name.updated': { chatId: string; name: string | null }
  /** A membership event new to this device, typed (ChatState's `membership`): who joined, left, became admin, renamed. */
  membership: MembershipEvent
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
   * A profile in the client's cache became known or changed: read by getProfiles, changed by a
   * chat partner (or this user, on another device) live, or found changed when the cached
   * profiles are read again after a reconnect (the server's profile events are live only). Render
   * names and avatars from it, or from profileOf.
   */
  profile: Profile
  /**
   * A member's devices in an encrypted chat changed (a Commit added or removed some): the safety
   * number with that user changed; an app may ask the user to compare it again.
   */
  'devices.changed': DevicesChangedEvent
  /** This device is in an encrypted chat's MLS group: it can send there and read what follows. */
  'encryption.ready': { chatId: string; epoch: number }
  /** Something the server refused that no call was waiting for. */
  error: NatterRequestError
}

export type { DevicesChangedEvent } from './mls/encrypted-chats.ts'

export type { Profile } from './profile-cache.ts'

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
/** mqtt.js keepalive, in seconds, unless the app sets one (see ClientOptions.mqtt). */
export const DEFAULT_KEEPALIVE_SECONDS = 5
/** mqtt.js connectTimeout for reconnects, in ms, unless the app sets one (see ClientOptions.mqtt). */
const DEFAULT_MQTT_CONNECT_TIMEOUT_MS = 10_000
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
  /** The MLS client of encrypted chats, when ClientOptions.mls is given. */
  #mls: EncryptedChats | undefined
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
  /**
   * The states of chats the user left or was removed from, still shown by an app (read-only):
   * outbox changes (a failed send, a cancel) still reach them, and chat(id) gives them back.
   */
  readonly #goneStates = new Map<string, ChatState>()
  /** Whether the app follows the chat list (loadChats was called): refreshed at each reconnect. */
  #followingList = false
  /** Whether a loadChats answered: chats() then lists the chats announced only. */
  #listLoaded = false
  #listTimer: ReturnType<typeof setTimeout> | undefined
  /** Bumped at every change of the chat list; getChatsSnapshot's array of the current one. */
  #listVersion = 0
  #listShot: { version: number; chats: readonly ChatState[] } | undefined
  readonly #listListeners = new Set<() => void>()
  /**
   * Live messages of chats not announced yet that are being added (their summary is read):
   * held so that chat.added goes before the chat's first message.new, then handled in order.
   */
  readonly #heldForAnnounce = new Map<string, ChatMessage[]>()
  /** Profiles read or heard of (getProfiles, profile events), each change a `profile` event. */
  readonly #profiles = new ProfileCache(
    (userIds) => this.request<ProfilesAnswer>('profile.get', { userIds }),
    (p) => this.emit('profile', p),
  )

  private constructor(o: ClientOptions) {
    super()
    this.#o = o
    this.userId = o.userId
    this.deviceId = o.deviceId
    this.clientId = clientIdOf(o.userId, o.deviceId)
    // A change of the outbox is a change of its chat's state (pending, pendingChanges).
    this.#outbox = new Outbox(o.outbox ?? new MemoryOutboxStorage(), (chatId) =>
      (this.#chats.get(chatId) ?? this.#goneStates.get(chatId))?._touch(),
    )
  }

  /**
   * Connects; resolves at the first connection. Rejects with a NatterRequestError:
   * connect_failed when the server refuses it (a bad token, too many devices) or the connection
   * fails or closes before it is accepted (a closed port, a wrong URL); connect_timeout when it
   * takes over connectTimeoutMs. Either way nothing is left running. With `offlineStart`, the
   * failures a missing network explains resolve instead, in state `reconnecting`. Rejects with
   * the outbox storage's error when it cannot be read.
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
    const offline = this.#o.offlineStart === true
    // Messages a previous run of the app left unconfirmed go first, in their order. Read before
    // anything connects: an offline start shows them, and a storage that fails leaves nothing
    // running.
    for (const item of await this.#outbox.load()) {
      this.#maybeStored.add(item.localId)
      this.chat(item.chatId)
    }
    if (this.#o.mls) {
      // Loaded on demand: an app without encrypted chats does not load ts-mls.
      const { openEncryptedChats } = await import('./mls/open.ts')
      this.#mls = await openEncryptedChats(this.#mlsHost(), this.#o.mls.storage, this.clientId)
    }
    try {
      this.#token = await firstToken(this.#o.getToken, Math.max(1, deadline - Date.now()), timeoutMs)
    } catch (err) {
      if (!offline) throw err
      // No token without a network, often: the reconnects ask getToken again.
      this.#token = ''
    }
    this.#client = mqtt.connect(this.#o.url, {
      keepalive: DEFAULT_KEEPALIVE_SECONDS,
      // The first attempt is bounded by connectTimeoutMs (mqtt.js' CONNACK timer must not cut a
      // longer one short); the reconnects by DEFAULT_MQTT_CONNECT_TIMEOUT_MS, set below.
      connectTimeout:
        timeoutMs === Number.POSITIVE_INFINITY
          ? 30_000
          : Math.max(timeoutMs, DEFAULT_MQTT_CONNECT_TIMEOUT_MS),
      ...this.#o.mqtt,
      clientId: this.clientId,
      username: this.userId,
      password: this.#token,
      clean: false,
      protocolVersion: 4,
      // Reconnects are this class's: each one may need a fresh token first.
      reconnectPeriod: 0,
      // Without a token there is nothing to connect with yet.
      manualConnect: this.#token === '',
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
    const reconnectsTimeout = () => {
      this.#client.options.connectTimeout = this.#o.mqtt?.connectTimeout ?? DEFAULT_MQTT_CONNECT_TIMEOUT_MS
    }
    if (this.#token === '') {
      reconnectsTimeout()
      this.#setState('reconnecting')
      this.#scheduleReconnect()
      return
    }
    await new Promise<void>((resolve, reject) => {
      const onState = this.on('state', (s) => {
        if (s === 'connected') {
          onState()
          stop()
          reconnectsTimeout()
          resolve()
        }
      })
      const fail = (err: NatterRequestError, answered: boolean) => {
        onState()
        if (offline && !answered) {
          reconnectsTimeout()
          // Started offline: the backoff goes on from the close (a timeout's attempt is dropped
          // for it), and the app gets the client now.
          this.#setState('reconnecting')
          this.#client.stream?.destroy()
          resolve()
          return
        }
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
          // What the outbox and getToken left of it (at least 1 ms: a timeout, not a failure).
          timeoutMs: Math.max(1, deadline - Date.now()),
          limitMs: timeoutMs,
          describeRefusal: refusalMessage,
        },
        fail,
      )
    })
  }

  /**
   * Sends every unconfirmed message again, in order. The server stores a clientMsgId once and
   * echoes it again, so a message that did arrive is not stored twice; mqtt.js's own offline
   * store is not relied on (a PUBACK left in a dead connection's buffer can be taken for a new
   * message's).
   */
  #flushOutbox(): void {
    if (this.#state !== 'connected') return
    // Messages with an item still waiting before: an edit or delete of one goes after it.
    const busy = new Set<string>()
    for (const item of this.#outbox.items) {
      if (item.failed) continue
      const key = messageKey(item)
      if ((item.op ?? 'send') === 'send') {
        if (!this.#inFlight.has(item.localId)) this.#publish(item)
      } else if (!busy.has(key) && this.#runningOp === undefined) {
        // One edit or delete at a time, after the send and the earlier changes of its message;
        // sends and changes of other messages do not wait for it.
        this.#runOp(item)
      }
      busy.add(key)
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
    // Chats whose adding a lost connection interrupted: their held messages wait for it.
    for (const chatId of this.#heldForAnnounce.keys()) this.#added(chatId)
    // Profile events are live only: what changed while away is read again.
    if (this.#profiles.size > 0) this.#background(this.#profiles.refresh())
    // Whatever arrived while the device was away: every open chat catches up from its last seq.
    for (const chatId of this.#timelines.keys()) this.#background(this.sync(chatId))
    // KeyPackages for others to add this device with, and this user's new devices into its groups.
    const mls = this.#mls
    if (mls) {
      // Own devices found without KeyPackages are claimed for again, once on this connection.
      mls.connected()
      this.#keyPackages = mls.topUp().then(() => {})
      this.#background(this.#keyPackages.then(() => this.addOwnDevices()))
    }
  }

  #keyPackages: Promise<void> = Promise.resolve()

  /**
   * Resolves once the KeyPackages of the latest connect are uploaded (mls.keypackages.count, then
   * upload when fewer than 5 or no last-resort one); rejects as that upload did.
   */
  keyPackagesReady(): Promise<void> {
    this.#needMls()
    return this.#keyPackages
  }

  #mlsHost(): EncryptedChatsHost {
    return {
      userId: this.userId,
      deviceId: this.deviceId,
      request: (op, params) => this.request(op, params),
      members: (chatId) => {
        // The state's list follows membership events; the summary's is as of the last chat.get.
        const state = this.#chats.get(chatId)
        return state?.loaded ? state.members.map((m) => m.userId) : this.#members.get(chatId)
      },
      sync: (chatId) => this.sync(chatId),
      deliver: (m, live) => this.#addResolved(m, live),
      joined: (chatId, epoch) => this.emit('encryption.ready', { chatId, epoch }),
      devicesChanged: (e) => this.emit('devices.changed', e),
      failed: (err) => this.emit('error', new NatterRequestError('internal', err.message)),
    }
  }

  /** The MLS client, or a not_allowed refusal when ClientOptions.mls was not given. */
  #needMls(): EncryptedChats {
    if (!this.#mls)
      throw new NatterRequestError(
        'not_allowed',
        'encrypted chats need ClientOptions.mls (a storage for the keys)',
      )
    return this.#mls
  }

  /** Whether a chat is end-to-end encrypted (from its id: docs/e2ee.md §1). */
  isEncrypted(chatId: string): boolean {
    return isEncryptedChat(chatId)
  }

  /**
   * Resolves once this device is in an encrypted chat's MLS group (created it, or joined from a
   * Welcome); until a member's device adds it, it waits (no timeout: race it with one if need be).
   */
  whenEncryptionReady(chatId: string): Promise<void> {
    return this.#needMls().inGroup(chatId)
  }

  /**
   * The safety number of this user and `userId` in an encrypted chat (12 groups of 5 digits, the
   * same on both sides), from both users' devices' credential keys in the group; `deviceId` for
   * one of their devices only (docs/e2ee.md §9). Compared out of band; it changes when a device
   * is added or removed (`devices.changed`). Rejects when they have no device in the group.
   */
  safetyNumber(chatId: string, userId: string, deviceId?: string): Promise<string> {
    return this.#needMls().safetyNumber(chatId, userId, deviceId)
  }

  /** A member's devices in an encrypted chat's group, as this device sees them. */
  devicesOf(chatId: string, userId: string): string[] {
    return this.#needMls()
      .devicesOf(chatId, userId)
      .map((d) => d.deviceId)
      .sort()
  }

  /**
   * Adds this user's devices missing from the groups of the encrypted chats this device is in (a
   * new device: docs/e2ee.md §6). Done at each connect; call it when the app learns of a new
   * device. Resolves with the chats changed.
   */
  addOwnDevices(): Promise<string[]> {
    const mls = this.#needMls()
    return mls.addOwnDevices(mls.device.chatIds())
  }

  /** Commits fresh keys for this device in an encrypted chat (an empty Commit with an UpdatePath). */
  updateKeys(chatId: string): Promise<void> {
    return this.#needMls().updateKeys(chatId)
  }

  #onClose(): void {
    clearTimeout(this.#refreshTimer)
    this.#forgetUnacknowledged()
    if (this.#closing) {
      this.#setState('closed')
      return
    }
    this.#setState('reconnecting')
    this.#scheduleReconnect()
  }

  /**
   * The closed connection's QoS 1 packets still waiting for their acknowledgement, failed with
   * `disconnected`: mqtt.js would wait for them for ever (each reconnect starts an empty store;
   * the outbox sends again what matters), and a later end(false) waited for them too, so close()
   * after a reconnect left the connection open. Called again before each reconnect, for what
   * was subscribed while disconnected (it is subscribed again once connected).
   */
  #forgetUnacknowledged(): void {
    const outgoing = this.#client.outgoing
    for (const id of Object.keys(outgoing)) {
      const waiting = outgoing[Number(id)]
      delete outgoing[Number(id)]
      waiting?.cb?.(
        new NatterRequestError('disconnected', 'the connection closed before the server acknowledged it'),
      )
    }
  }

  /** The next reconnect, after the backoff (unless one is scheduled already). */
  #scheduleReconnect(): void {
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

  /**
   * Reconnects now instead of waiting out the backoff: for the browser's `online` event, an app
   * coming back to the foreground, or a user's "Retry now". The backoff starts again from
   * `reconnect.minMs` should this attempt fail. Does nothing when connected, connecting, closed,
   * or while an attempt is under way (getToken, or a CONNECT waiting for its CONNACK: it ends
   * within mqtt.js' connectTimeout, 10 s by default).
   */
  reconnectNow(): void {
    if (this.#closing || this.#state !== 'reconnecting' || !this.#reconnectTimer) return
    clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    this.#attempt = 0
    this.#reconnect().catch(() => this.#onClose())
  }

  async #reconnect(): Promise<void> {
    if (this.#closing) return
    const exp = expiresAt(this.#token)
    if (!this.#token || (exp !== undefined && exp - Date.now() < this.#refreshBefore(exp))) {
      this.#token = await this.#o.getToken()
    }
    // A close may have come while getToken ran.
    if (this.#closing) return
    this.#client.options.password = this.#token
    // What was subscribed or published meanwhile would not go out on the new connection either.
    this.#forgetUnacknowledged()
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
      // Started offline and never connected: there is no stream to end (mqtt.js would throw).
      if (!client.stream) return resolve()
      if (!client.connected) return void client.end(true, {}, () => resolve())
      const timer = setTimeout(() => {
        // end(true) is no more than a callback while the end(false) waits: the socket goes here.
        client.stream?.destroy()
        client.end(true, {}, () => resolve())
      }, 2000)
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

  /**
   * One operation (docs/protocol.md#operations): resolves with its result, rejects with the
   * server's error code, `timeout` after 10 s, or `disconnected` when the connection closes
   * first or is not up: a request is not kept for the next connection (the outbox is what
   * survives a disconnect), so a call made while `reconnecting` fails at once.
   */
  request<T = unknown>(op: string, params: Record<string, unknown> = {}): Promise<T> {
    if (!this.#client.connected) {
      return Promise.reject(new NatterRequestError('disconnected', `not connected: ${op} was not sent`))
    }
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

  /**
   * Creates a group with this user as admin (chat.create); chat.added fires for it. With
   * `encrypted`, an end-to-end encrypted chat: this device creates its MLS group and adds every
   * device of every member (and this user's other devices) with one Commit before it resolves
   * (docs/e2ee.md); members' devices join from the Welcome when they see the Commit. Rejects with
   * not_allowed when encrypted and ClientOptions.mls is not given.
   */
  async createGroup(name: string, members: string[], o: { encrypted?: boolean } = {}): Promise<Chat> {
    const mls = o.encrypted ? this.#needMls() : undefined
    const askedAt = performance.now()
    const chat = await this.request<Chat>('chat.create', {
      name,
      members,
      ...(o.encrypted ? { encrypted: true } : {}),
    })
    this.#summary(chat, askedAt)
    this.#announce(chat.id)
    if (mls) await mls.createGroup(chat.id, members)
    return chat
  }

  /**
   * The direct chat with another user, created the first time (chat.direct); chat.added fires when
   * new here. With `encrypted`, the pair's end-to-end encrypted direct chat (a second one beside
   * the plaintext one, id `e_d.…`, docs/e2ee.md): when no device opened its MLS group yet, this
   * device makes it and adds both users' devices with one Commit before it resolves (if the other
   * side's device won that race, this one joins from its Welcome: whenEncryptionReady); when this
   * device is in the group and the other user has no device there yet, their devices are added.
   * Rejects with not_allowed (encrypted without ClientOptions.mls; a block between the two, docs/protocol.md#blocking).
   */
  async direct(userId: string, o: { encrypted?: boolean } = {}): Promise<Chat> {
    const mls = o.encrypted ? this.#needMls() : undefined
    const askedAt = performance.now()
    const chat = await this.request<Chat>('chat.direct', {
      with: userId,
      ...(mls ? { encrypted: true } : {}),
    })
    this.#summary(chat, askedAt)
    this.#announce(chat.id)
    if (mls) await mls.openDirect(chat.id, userId)
    return chat
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
  async addMembers(chatId: string, userIds: string[]): Promise<{ added: string[] }> {
    const r = await this.request<{ added: string[] }>('chat.add', { chatId, members: userIds })
    // In an encrypted chat their devices join the group with one Commit (rebased if need be),
    // and so do the missing devices of those who were members already (addDevices).
    if (isEncryptedChat(chatId)) await this.#needMls().add(chatId, [...new Set(userIds)])
    return r
  }

  /**
   * In an encrypted chat, commits the Adds of the devices of these members that are not in its
   * MLS group yet: a member added before any of their devices had KeyPackages (never signed in
   * with MLS), or a member's device that signed in since (another browser). Any member may call
   * it: the DS takes Adds from any member's device, of devices of members only
   * (docs/e2ee.md §3); `addMembers` does it too for the users it names. A user's own new
   * devices are added by `addOwnDevices`. Each call claims one KeyPackage of every device of
   * each user (mls.keypackages.claim), in the group or not. Resolves with the devices added
   * (`userId/deviceId`), none when every device with KeyPackages is in already (or for a user
   * sharing no chat with this one: the directory hands out none of their packages). Rejects with
   * not_allowed without ClientOptions.mls or for a chat that is not encrypted, invalid_commit for
   * a user who is not a member of this chat (but of another one shared), and as mls.commit does.
   */
  async addDevices(chatId: string, userIds: string[]): Promise<string[]> {
    const mls = this.#needMls()
    if (!isEncryptedChat(chatId))
      throw new NatterRequestError('not_allowed', `chat ${chatId} is not encrypted: it has no MLS group`)
    return mls.add(chatId, [...new Set(userIds)])
  }

  /**
   * Removes a member from a group (chat.remove; admins only). Rejects with not_allowed or not_found.
   * In an encrypted chat, a Commit then removes all of their devices from the group: nothing sent
   * after it can be read by them.
   */
  async removeMember(chatId: string, userId: string): Promise<{ removed: string }> {
    const r = await this.request<{ removed: string }>('chat.remove', { chatId, userId })
    if (isEncryptedChat(chatId)) await this.#needMls().removeUser(chatId, userId)
    return r
  }

  /**
   * Makes a group member an admin, or an admin a member again (chat.role; admins only).
   * Resolves with `changed: false` when they had that role already. Rejects with last_admin (the
   * group's only admin made a member), not_allowed (not an admin, a direct chat), not_found (not
   * a member) or chat_not_found.
   */
  setRole(
    chatId: string,
    userId: string,
    role: 'admin' | 'member',
  ): Promise<{ userId: string; role: 'admin' | 'member'; changed: boolean }> {
    return this.request('chat.role', { chatId, userId, role })
  }

  /**
   * Renames a group (chat.rename; admins only; 1–100 characters, as chat.create); its ChatState
   * takes the new summary (name.updated). Rejects with not_allowed (not an admin, a direct chat),
   * bad_request (a name chat.create would refuse) or chat_not_found.
   */
  rename(chatId: string, name: string): Promise<Chat> {
    const askedAt = performance.now()
    return this.request<Chat>('chat.rename', { chatId, name }).then((chat) => {
      this.#summary(chat, askedAt)
      return chat
    })
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
      const kept = this.#goneStates.get(chatId)
      if (kept) return kept
      state = new ChatState(this, chatId)
      if (this.#gone.has(chatId)) {
        // Asked again for a chat the user left or was removed from (a UI redrawing its
        // selection): a removed state, kept out of chats(), whose sends are refused at once.
        state._removed()
        return state
      }
      this.#chats.set(chatId, state)
      this.#forward(state)
      // Until the list is loaded, chats() holds every chat known.
      if (!this.#listLoaded) this.#listChangedNow()
    }
    return state
  }

  /**
   * The user's chats, newest activity first: once a loadChats answered, those the list and the
   * live events announced (a state the app made with chat(id) for a chat not the user's stays
   * out); before, every chat this client knows (after an offline start: those with messages in
   * the outbox).
   */
  chats(): ChatState[] {
    const states = [...this.#chats.values()]
    const listed = this.#listLoaded ? states.filter((c) => this.#announced.has(c.id)) : states
    return listed.sort((a, b) => b.lastActivityAt - a.lastActivityAt)
  }

  /**
   * A number that goes up at every change of the chat list: a chat added or removed, or a
   * change of what a list shows of a chat (name, members, last message, unread count, mute),
   * which may reorder it.
   */
  get chatsVersion(): number {
    return this.#listVersion
  }

  /**
   * Calls `listener` (no argument) after every change of the chat list (chatsVersion),
   * synchronously, until the returned function is called. With getChatsSnapshot it is the store
   * React's `useSyncExternalStore` and Preact's equivalent take, so a change between a render
   * and the subscription is not missed. Bound: pass it as it is.
   *
   * ```ts
   * const chats = useSyncExternalStore(client.subscribeChats, client.getChatsSnapshot)
   * ```
   */
  readonly subscribeChats = (listener: () => void): (() => void) => {
    this.#listListeners.add(listener)
    return () => {
      this.#listListeners.delete(listener)
    }
  }

  /**
   * chats() as one frozen array: the same array (`===`) on every call until the list changes
   * (chatsVersion goes up), then a new one. The ChatStates in it are live objects: a row
   * that shows more than the list's summary follows its own chat (ChatState.subscribe).
   */
  readonly getChatsSnapshot = (): readonly ChatState[] => {
    if (this.#listShot?.version !== this.#listVersion) {
      this.#listShot = { version: this.#listVersion, chats: Object.freeze(this.chats()) }
    }
    return this.#listShot.chats
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
      if (first) {
        this.#announced.add(chat.id)
        this.#releaseHeld(chat.id)
      } else this.#announce(chat.id)
    }
    if (!this.#listLoaded) {
      this.#listLoaded = true
      this.#listChangedNow()
    }
    return this.chats()
  }

  /** `askedAt`: performance.now() when the request that brought it was made. */
  #summary(chat: Chat, askedAt: number): void {
    // The server counts the user a member again.
    this.#gone.delete(chat.id)
    this.#goneStates.delete(chat.id)
    this.#members.set(
      chat.id,
      chat.members.map((m) => m.userId),
    )
    const later = (this.#timelines.get(chat.id)?.messages() ?? []).filter((m) => m.seq > chat.lastSeq)
    // An encrypted chat's last message is ciphertext on the server: shown as this device read it.
    const last =
      chat.lastMessage && isEncryptedChat(chat.id) ? this.#mls?.readable(chat.lastMessage) : undefined
    this.chat(chat.id)._summary(last ? { ...chat, lastMessage: last } : chat, later, askedAt)
    this.#recompute(chat.id)
  }

  /** Reports a chat new to the app, once. */
  #announce(chatId: string): void {
    const state = this.#chats.get(chatId)
    if (!state || this.#announced.has(chatId)) return
    this.#announced.add(chatId)
    this.#listChangedNow()
    this.emit('chat.added', state)
    this.#releaseHeld(chatId)
  }

  /** A chat the user was added to, seen live: its summary is read, then it is announced. */
  #added(chatId: string): void {
    if (this.#announced.has(chatId) || this.#adding.has(chatId)) return
    this.#adding.add(chatId)
    this.#background(
      this.getChat(chatId)
        .then(
          () => this.#announce(chatId),
          (err: unknown) => {
            const code = asError(err).code
            // Not a member after all (removed again at once): what was held for it goes. A lost
            // connection keeps it for the next one (#onConnect adds the chat again); any other
            // failure lets it through, late rather than stuck.
            if (code === 'chat_not_found') this.#heldForAnnounce.delete(chatId)
            else if (code !== 'disconnected') this.#releaseHeld(chatId)
            throw err
          },
        )
        .finally(() => this.#adding.delete(chatId)),
    )
  }

  /**
   * Whether a message from the inbox waits for its chat's chat.added: its chat is being added, or this
   * message is what adds it (an event adding the user, or the first message of a chat unknown
   * while the app follows the list). It is handled once the chat is announced.
   */
  #holdForAnnounce(m: ChatMessage): boolean {
    const chatId = m.chatId
    const addsMe = m.kind === 'event' && addsUser(m, this.userId)
    // A chat the user left: dropped in #add, unless this adds them back.
    if (this.#announced.has(chatId) || (this.#gone.has(chatId) && !addsMe)) return false
    const held = this.#heldForAnnounce.get(chatId)
    if (!held && !this.#adding.has(chatId)) {
      if (this.#timelines.get(chatId)?.get(m.seq)) return false
      if (!addsMe && !(this.#followingList && !this.#chats.has(chatId))) return false
    }
    if (held) held.push(m)
    else this.#heldForAnnounce.set(chatId, [m])
    this.#added(chatId)
    return true
  }

  /** The messages held for a chat's announcement, handled in the order they came. */
  #releaseHeld(chatId: string): void {
    const held = this.#heldForAnnounce.get(chatId)
    if (!held) return
    this.#heldForAnnounce.delete(chatId)
    for (const m of held) this.#add(m)
  }

  /** The user left or was removed: everything held of the chat goes. */
  #drop(chatId: string, reason: 'left' | 'removed'): void {
    const state = this.#chats.get(chatId)
    if (!state) return
    // Before the timeline goes: the state keeps what the user saw.
    state._removed()
    this.#chats.delete(chatId)
    this.#gone.add(chatId)
    this.#goneStates.set(chatId, state)
    this.#announced.delete(chatId)
    this.#timelines.delete(chatId)
    this.#cursors.delete(chatId)
    this.#members.delete(chatId)
    for (const [id, mine] of this.#mine) if (mine.chatId === chatId) this.#mine.delete(id)
    const typing = topics.typing(chatId)
    if (this.#watched.delete(typing) && this.#client.connected) {
      this.#client.unsubscribeAsync(typing).catch(() => {})
    }
    this.#heldForAnnounce.delete(chatId)
    // Out of an encrypted chat: its group's secrets go from the device; the read-only state
    // keeps only the plaintext the user already saw.
    if (this.#mls && isEncryptedChat(chatId)) this.#background(this.#mls.forget(chatId))
    this.#listChanged()
    this.emit('chat.removed', { chatId, reason })
  }

  /** A chat's events are the client's too; a summary change reorders the list (once per tick). */
  #forward(state: ChatState): void {
    for (const event of [
      'message.new',
      'message.updated',
      'message.deleted',
      'members.updated',
      'name.updated',
      'membership',
      'unread.updated',
      'muted.updated',
    ] as const) {
      state.on(event, (v) => this.emit(event, v as never))
    }
    state.on('updated', () => this.#listChanged())
  }

  /** The list changed: a new version and its subscribers now; chats.updated once per tick. */
  #listChanged(): void {
    this.#listChangedNow()
    if (this.#listTimer) return
    this.#listTimer = setTimeout(() => {
      this.#listTimer = undefined
      this.emit('chats.updated', this.chats())
    }, 0)
  }

  #listChangedNow(): void {
    this.#listVersion++
    for (const listener of [...this.#listListeners]) listener()
  }

  /**
   * Messages of a chat holding every word of the query (the last one as a prefix unless the query
   * ends outside a word), newest first, at most `limit`. In an encrypted chat the device searches
   * what it decrypted and holds (docs/e2ee.md, "Search"), by the server's rules (search-terms.ts),
   * with the same result shape; messages from before this device joined are not among them.
   * Rejects with the server's codes; in an encrypted chat, bad_request for an empty query and
   * chat_not_found when this device is in no such chat.
   */
  search(chatId: string, query: string, limit = 50): Promise<ChatMessage[]> {
    if (isEncryptedChat(chatId)) return this.#searchOnDevice(chatId, query, limit)
    return this.request<{ messages: ChatMessage[] }>('search', { chatId, query, limit }).then(
      (r) => r.messages,
    )
  }

  readonly #localSearch = new LocalSearch()

  async #searchOnDevice(chatId: string, query: string, limit: number): Promise<ChatMessage[]> {
    const mls = this.#needMls()
    // The server's bound is 200 characters (graphemes); this one only keeps the work bounded.
    if (query.length === 0 || query.length > 4000)
      throw new NatterRequestError('bad_request', 'query: 1 to 200 characters')
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new NatterRequestError('bad_request', 'limit: a whole number from 1')
    if (!mls.device.group(chatId)) {
      const known = this.#chats.get(chatId)
      // A member whose device has not joined yet holds nothing to search; anyone else, as the server says.
      if (!known || known.removed)
        throw new NatterRequestError(
          'chat_not_found',
          `no chat ${chatId} on this device, or you are not a member`,
        )
      return []
    }
    return this.#localSearch.search(await mls.readMessages(chatId), query, limit)
  }

  /**
   * Edits one of this user's messages: `target` is its seq, or the localId of a message still in
   * the outbox. Queued in the outbox like a send (kept offline and across restarts; run after
   * the message's send and its earlier edits and deletes, one change at a time; sends never wait
   * for it); a pending message that cannot have reached the server yet (not sent on any
   * connection, or failed) is changed in place instead. Resolves with the edited message, or
   * null when changed in place. Rejects with not_found (no such message, deleted, or a localId
   * the client does not know), not_allowed (not the sender, a chat event), too_large; a refused
   * edit stays in the outbox as failed, with its text (pendingChanges, a `status` event with
   * `op`), until retry or cancel.
   */
  edit(chatId: string, target: number | string, text: string): Promise<ChatMessage | null> {
    return this.#change(chatId, 'edit', target, text)
  }

  /**
   * Deletes one of this user's messages for everyone (a tombstone): `target` as for edit, queued
   * the same way; a pending message not yet sent is cancelled instead (status `cancelled`).
   * Resolves with the tombstone, or null when cancelled; deleting a message deleted already
   * (another device did) is done too: it resolves with the tombstone. Rejects as edit does.
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
    const added = this.#outbox.add(item)
    this.#status({ chatId, localId: item.localId, ...(seq ? { seq } : {}), status: 'sending', op })
    try {
      await added
    } catch (err) {
      // Not kept anywhere: it is gone, not failed for a retry.
      this.#opWaiting.delete(item.localId)
      await this.#outbox.remove(item.localId).catch(() => {})
      const error = asError(err)
      this.#status({ chatId, localId: item.localId, status: 'failed', error, op })
      throw error
    }
    this.#flushOutbox()
    return done
  }

  /**
   * Runs a queued edit or delete; changes of the same message wait for it. Lost connections and
   * timeouts leave it queued for the next try; a refusal keeps it in the outbox as failed, with
   * its text (retry, cancel), and rejects its caller.
   */
  #runOp(item: OutboxItem): void {
    if (this.#runningOp !== undefined) return
    // Set first: what runs below may flush the outbox again.
    this.#runningOp = item.localId
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
      async (err: unknown) => {
        const e = asError(err)
        if (op === 'delete' && e.code === 'not_found') {
          // Deleted already (on another device, or by this delete whose first answer was lost):
          // what it asked for is done.
          const tombstone = await this.#tombstone(item.chatId, seq)
          if (tombstone) return tombstone
          if (tried) return null
        }
        throw e
      },
    )
    this.#opDone(item, run)
  }

  /** The message at seq when it is deleted (the timeline's, else the server's), else undefined. */
  async #tombstone(chatId: string, seq: number): Promise<ChatMessage | undefined> {
    const held = this.#timelines.get(chatId)?.get(seq)
    if (held?.deletedAt != null) return held
    const page = await this.request<{ messages: ChatMessage[] }>('sync', { chatId, after: seq - 1, limit: 1 })
    const m = page.messages[0]
    if (m?.seq !== seq || m.deletedAt == null) return undefined
    // A timeline that holds the message takes its tombstone (message.deleted).
    if (held) this.#add(m, true)
    return { ...m, type: 'message' }
  }

  #opDone(item: OutboxItem, run: Promise<ChatMessage | null>): void {
    this.#runningOp = item.localId
    const op = item.op === 'edit' ? 'edit' : 'delete'
    run.then(
      (message) => {
        this.#runningOp = undefined
        this.#opTried.delete(item.localId)
        this.#opWaiting.get(item.localId)?.resolve(message)
        this.#opWaiting.delete(item.localId)
        this.#outbox.remove(item.localId).catch(() => {})
        const seq = message?.seq ?? item.seq
        this.#status({
          chatId: item.chatId,
          localId: item.localId,
          ...(seq ? { seq } : {}),
          status: 'sent',
          op,
        })
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
        // Kept, failed, with its text, as a refused send is: the app shows it, retries or cancels it.
        this.#outbox.update(item.localId, { failed: { code: e.code, message: e.message } }).catch(() => {})
        this.#opWaiting.get(item.localId)?.reject(e)
        this.#opWaiting.delete(item.localId)
        const seq = this.#outbox.get(item.localId)?.seq
        this.#status({
          chatId: item.chatId,
          localId: item.localId,
          ...(seq ? { seq } : {}),
          status: 'failed',
          error: e,
          op,
        })
        this.#flushOutbox()
      },
    )
  }

  /**
   * Profiles of this user and of users who share a chat with them, in the order asked (each id
   * once); every other id is in notFound (a stranger and a user that does not exist alike).
   * Cached per user: a profile read once is answered from the cache, kept up to date by the
   * server's profile events and read again after every reconnect; calls for users being read
   * share that request; not-found ids are asked again each time (the user may share a chat
   * since). Each profile that becomes known or changes fires `profile`. Rejects with the
   * request's error (disconnected, timeout; bad_request for no id or over 1,000).
   */
  getProfiles(userIds: string[]): Promise<ProfilesAnswer> {
    return this.#profiles.get(userIds)
  }

  /** A user's profile from the cache (getProfiles, profile events), or undefined when not read yet. */
  profileOf(userId: string): Profile | undefined {
    return this.#profiles.of(userId)
  }

  /**
   * Changes this user's profile: a field left out keeps its value, null clears it. The avatar
   * is the mediaId of an image this user uploaded (uploadMedia). Rejects with bad_request (a
   * name with invisible characters, blank or over 64 characters), media_not_found or
   * unsupported_media_type.
   */
  setProfile(p: { displayName?: string | null; avatar?: string | null }): Promise<Profile> {
    return this.request<{ profile: Profile }>('profile.set', p).then((r) => {
      this.#profiles.keep(r.profile)
      return r.profile
    })
  }

  /**
   * Uploads a file for a chat (or an avatar): media.ts uploadMedia. To an encrypted chat the file
   * is encrypted on the device first (docs/e2ee.md, "Media"; mls/media-transfer.ts): the result's
   * `encrypted` is its descriptor with the key, which `send(chatId, {media: [mediaId]})` puts
   * inside the message (this client remembers it by media id; pass the descriptor itself to send
   * from another client run).
   */
  uploadMedia(data: Uint8Array | Blob, o: UploadOptions): Promise<Uploaded> {
    const conn = { client: this.#client, clientId: this.clientId }
    if (o.chatId === undefined || !isEncryptedChat(o.chatId)) return uploadMedia(conn, data, o)
    return uploadEncryptedMedia(conn, data, { ...o, chatId: o.chatId }).then((up) => {
      this.#mediaKeys.set(up.mediaId, up.encrypted)
      return up
    })
  }

  /** Descriptors of the media this client uploaded to encrypted chats, by media id, for send. */
  readonly #mediaKeys = new Map<string, EncryptedMedia>()

  /**
   * Downloads a media and checks it (mls/media-transfer.ts downloadMedia): an encrypted chat's
   * media from a message's `encryptedMedia` is decrypted on the device; a plaintext chat's media
   * id is checked against its SHA-256. Resolves with the file's bytes, over an ArrayBuffer (in a
   * browser, `new Blob([bytes], {type: media.contentType})` takes them as they are). Rejects with media_not_found,
   * download_failed, media_corrupt (changed bytes, or a wrong key) or cancelled.
   */
  downloadMedia(media: EncryptedMedia | string, o: DownloadOptions = {}): Promise<Uint8Array<ArrayBuffer>> {
    return downloadMedia({ client: this.#client, clientId: this.clientId }, media, o)
  }

  /**
   * An encrypted chat's media for a message: each entry a descriptor (checked) or the id of one
   * this client uploaded. Throws bad_request for an id without a known key, and for descriptors
   * sent to a plaintext chat (its members would get ciphertext without the key).
   */
  #mediaFor(
    chatId: string,
    media: (string | EncryptedMedia)[],
  ): { media: string[]; encryptedMedia?: EncryptedMedia[] } {
    if (!isEncryptedChat(chatId)) {
      if (media.some((m) => typeof m !== 'string'))
        throw new NatterRequestError(
          'bad_request',
          `chat ${chatId} is not encrypted: send media ids (an encrypted media's key would go to the server)`,
        )
      return { media: media as string[] }
    }
    const encryptedMedia = media.map((m) => {
      const d = typeof m === 'string' ? this.#mediaKeys.get(m) : parseEncryptedMedia(m)
      if (!d)
        throw new NatterRequestError(
          'bad_request',
          typeof m === 'string'
            ? `media ${m} has no key on this client: upload it to ${chatId} with uploadMedia, or pass its EncryptedMedia`
            : 'an EncryptedMedia that is not well-formed (id, key, nonce, hashes, size)',
        )
      return d
    })
    return { media: encryptedMedia.map((d) => d.id), encryptedMedia }
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

  /**
   * Fetches everything after the last seq held without a gap. In an encrypted chat each page is
   * processed (Commits applied, messages decrypted, in seq order) before the next is asked for.
   */
  async sync(chatId: string): Promise<void> {
    const timeline = this.#timeline(chatId)
    const mls = isEncryptedChat(chatId) ? this.#mls : undefined
    for (;;) {
      const page = await this.request<{ messages: ChatMessage[]; more: boolean }>('sync', {
        chatId,
        after: timeline.upTo,
        limit: 200,
      })
      const last = page.messages.at(-1)
      if (mls) {
        for (const m of page.messages) this.#background(mls.feed(m))
        if (last) await mls.passedTo(chatId, last.seq)
      } else for (const m of page.messages) this.#add(m)
      // Seqs the answer passed over are hidden from this user: no gap to fetch again.
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

  /**
   * A message from the inbox, a sync or a history page (live false: old, no message.new). An
   * encrypted chat's go through its MLS client first, which hands them on in seq order.
   */
  #add(m: ChatMessage, live = true): void {
    if (this.#mls && isEncryptedChat(m.chatId) && m.type === 'message' && !this.#gone.has(m.chatId)) {
      this.#background(this.#mls.feed(m, live))
      return
    }
    this.#addResolved(m, live)
  }

  #addResolved(m: ChatMessage, live: boolean): void {
    if (this.#gone.has(m.chatId)) {
      // Only the event that adds the user back brings a chat they left or were removed from back.
      if (!(m.kind === 'event' && addsUser(m, this.userId))) return
      this.#gone.delete(m.chatId)
      this.#goneStates.delete(m.chatId)
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
      if (change === 'new' && live && this.#mls && isEncryptedChat(m.chatId) && e.type === 'member_left') {
        // Someone left: their devices still hold the epoch's keys until a Commit removes them.
        const admins = (this.#chats.get(m.chatId)?.members ?? []).filter((x) => x.role === 'admin')
        this.#background(
          this.#mls.removeDeparted(
            m.chatId,
            admins.map((x) => x.userId),
          ),
        )
      }
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
  send(
    chatId: string,
    message: { text?: string; media?: (string | EncryptedMedia)[]; replyTo?: number },
  ): Sending {
    const refuse = (err: Error): Sending => {
      const refused = Promise.reject(err)
      refused.catch(() => {})
      return { localId: newLocalId(), queued: refused, sent: refused }
    }
    if (this.#closing) return refuse(new NatterRequestError('disconnected', 'the client is closed'))
    let media: { media: string[]; encryptedMedia?: EncryptedMedia[] } | undefined
    try {
      media = message.media ? this.#mediaFor(chatId, message.media) : undefined
    } catch (err) {
      return refuse(asError(err))
    }
    const { media: _picked, ...rest } = message
    const item: OutboxItem = { localId: newLocalId(), chatId, ...rest, ...media, createdAt: Date.now() }
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
   * that need it (too_large, bad_request). A failed edit or delete (pendingChanges) is queued
   * again the same way, `change.text` replacing an edit's text; its `sent` resolves with the seq
   * of the message it changes. Throws not_found when localId is not a failed item in the outbox.
   */
  retry(localId: string, change: { text?: string; media?: (string | EncryptedMedia)[] } = {}): Sending {
    const item = this.#outbox.get(localId)
    if (!item?.failed) {
      throw new NatterRequestError('not_found', `no failed message or change ${localId} in the outbox`)
    }
    if ((item.op ?? 'send') !== 'send') return this.#retryChange(item, change.text)
    const { media: picked, ...rest } = change
    // Throws bad_request for an encrypted chat's media id without a known key.
    const update: Partial<OutboxItem> = { ...rest, ...(picked ? this.#mediaFor(item.chatId, picked) : {}) }
    // A refused message was not stored, so the same clientMsgId is safe (as in a plaintext
    // chat); its ciphertext is made again: the content may have changed, the epoch too.
    if (isEncryptedChat(item.chatId)) this.#mls?.forgetCiphertext(localId)
    const sent = new Promise<{ seq: number }>((resolve, reject) =>
      this.#waiting.set(localId, { resolve, reject }),
    )
    sent.catch(() => {})
    const queued = this.#outbox.update(localId, { ...update, failed: undefined }, true)
    queued.then(
      () => this.#flushOutbox(),
      () => {},
    )
    this.#status({ chatId: item.chatId, localId, status: 'sending' })
    return { localId, queued, sent }
  }

  /**
   * A failed edit or delete queued again, after everything in the outbox now; `text` replaces an
   * edit's text. Its `sent` resolves with the seq of the message changed.
   */
  #retryChange(item: OutboxItem, text: string | undefined): Sending {
    const { localId, chatId } = item
    const op = item.op === 'edit' ? 'edit' : 'delete'
    const sent = new Promise<{ seq: number }>((resolve, reject) =>
      this.#opWaiting.set(localId, {
        resolve: (m) => resolve({ seq: m?.seq ?? item.seq ?? 0 }),
        reject,
      }),
    )
    sent.catch(() => {})
    const change = op === 'edit' && text !== undefined ? { text } : {}
    const queued = this.#outbox.update(localId, { ...change, failed: undefined }, true)
    queued.then(
      () => this.#flushOutbox(),
      () => {},
    )
    this.#status({ chatId, localId, ...(item.seq ? { seq: item.seq } : {}), status: 'sending', op })
    return { localId, queued, sent }
  }

  /**
   * Removes a message from the outbox (status `cancelled`; its `sent` rejects with cancelled):
   * a failed one, or one not sent on any connection yet; or an edit or delete that failed or
   * was not tried yet (its promise rejects with cancelled). Resolves once the outbox storage has
   * it gone. Throws not_allowed for a message that may have reached the server (delete it once
   * stored) or a change being applied, not_found for a localId not in the outbox.
   */
  async cancel(localId: string): Promise<void> {
    const item = this.#outbox.get(localId)
    if (!item) throw new NatterRequestError('not_found', `no message ${localId} in the outbox`)
    if ((item.op ?? 'send') !== 'send') return this.#cancelChange(item)
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

  async #cancelChange(item: OutboxItem): Promise<void> {
    const { localId, chatId } = item
    if (!item.failed && (this.#runningOp === localId || this.#opTried.has(localId))) {
      throw new NatterRequestError('not_allowed', `the ${item.op} ${localId} may be applied already`)
    }
    const removed = this.#outbox.remove(localId)
    this.#opWaiting
      .get(localId)
      ?.reject(new NatterRequestError('cancelled', `${item.op} ${localId} was cancelled`))
    this.#opWaiting.delete(localId)
    const op = item.op === 'edit' ? 'edit' : 'delete'
    this.#status({ chatId, localId, ...(item.seq ? { seq: item.seq } : {}), status: 'cancelled', op })
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
    if (isEncryptedChat(chatId)) {
      this.#publishEncrypted(item)
      return
    }
    const body = { clientMsgId: localId, text, media, replyTo }
    this.#client.publish(topics.send(chatId), JSON.stringify(body), { qos: 1 })
  }

  /**
   * An encrypted chat's message: text, media and replyTo go inside the MLS PrivateMessage, made
   * once per local id, in the order sent (docs/e2ee.md §4). The server sees the ciphertext only.
   */
  #publishEncrypted(item: OutboxItem): void {
    const { localId, chatId, text, media, encryptedMedia, replyTo } = item
    let mls: EncryptedChats
    try {
      mls = this.#needMls()
      // An item queued before media were encrypted (ids only): nobody could read them.
      if (media?.length && encryptedMedia?.length !== media.length)
        throw new NatterRequestError('bad_request', 'media without their keys cannot go to an encrypted chat')
    } catch (err) {
      this.#fail(localId, chatId, asError(err))
      return
    }
    const body = {
      v: ENCRYPTED_BODY_VERSION,
      ...(text !== undefined ? { text } : {}),
      ...(encryptedMedia?.length ? { media: encryptedMedia } : {}),
      ...(replyTo !== undefined ? { replyTo } : {}),
    }
    mls.encryptFor(chatId, localId, body).then(
      (ciphertext) => {
        // Dropped meanwhile (a reconnect sends it again; cancelled, or stored already).
        if (!this.#inFlight.has(localId) || this.#state !== 'connected') return
        // The ids go beside the ciphertext too: the server lets the chat's members download them.
        const payload = { clientMsgId: localId, ciphertext, ...(media?.length ? { media } : {}) }
        this.#client.publish(topics.send(chatId), JSON.stringify(payload), { qos: 1 })
      },
      (err: unknown) => this.#fail(localId, chatId, asError(err)),
    )
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
      this.#mls?.forgetCiphertext(m.clientMsgId)
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
        this.#profiles.keep(body as unknown as Profile)
      } else {
        const m = body as unknown as ChatMessage
        // chat.added goes before the chat's messages: those of a chat being added wait for it.
        if (!this.#holdForAnnounce(m)) this.#add(m)
      }
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

/**
 * The message an outbox item concerns: a send's own local id; for an edit or delete, the local
 * id of the send it targets while that is pending, else the chat and seq.
 */
function messageKey(item: OutboxItem): string {
  if ((item.op ?? 'send') === 'send') return item.localId
  return item.target ?? `${item.chatId}#${item.seq}`
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
