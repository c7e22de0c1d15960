import type { DeviceIdentity } from '../auth/identity.ts'
import type { StoredMessage } from '../messages/message-store.ts'

/** Where one chat's delivery to one device stands. Seqs are the chat's message seqs. */
export interface ChatFeedState {
  /** Highest seq the device acknowledged (or, at QoS 0, was written). */
  acked: number
  /** Highest seq written to the device; messages go out strictly in seq order. */
  sent: number
  /** True while the chat's starting point is being read from the store. */
  loading: boolean
  /** True while a store read for this chat is under way. */
  pumping: boolean
  /** Something newer than `sent` may exist: read the store again after the current read. */
  dirty: boolean
  /**
   * Live messages that arrived while a store read was under way, in arrival order (at most a
   * page): written after it when they follow on, so that a busy chat is read from the store
   * once to catch up rather than once per message that arrives during each read.
   */
  held?: Array<{ m: Deliverable; payload: Buffer }>
}

/** One unacknowledged QoS 1 inbox delivery. */
export interface InFlight {
  chatId: string
  /** The message's seq, or null for an edit, delete or receipt (nothing to acknowledge in order). */
  seq: number | null
  senderId: string
  /** When the message was stored, ms. */
  at: number
}

/**
 * What an inbox delivery needs of a stored message; `hiddenFrom` names the user the message is
 * hidden from (a blocker, services/blocks/hidden.ts), whose devices skip it.
 */
export type Deliverable = Pick<StoredMessage, 'chatId' | 'seq' | 'senderId' | 'at'> & {
  hiddenFrom?: string | undefined
}

/**
 * Where a device's feed starts, from its session as the delivery store recorded it at CONNECT.
 * Kept per connection in place of the whole session record, so that a feed started again
 * (the inbox unsubscribed and subscribed again) starts from the same point. Times in ms.
 */
export interface FeedStart {
  /** When the device's session began: the starting point of chats it has no cursor for. */
  since: number
  /**
   * Messages stored at or before this time may have been written to the device by an earlier
   * connection of the same session: a resend carries DUP=1 [MQTT-3.3.1-1]. 0 when none was.
   */
  resendBefore: number
  /**
   * When the device was last seen before this connection of a resumed session: edits and
   * deletes made since are sent once. null for a new session.
   */
  replaySince: number | null
}

/**
 * One connected device's inbox delivery: per chat, what was sent and acknowledged, and the
 * PUBLISH packets in flight. It holds no message: what is owed is read from the message store.
 *
 * Its maps are created on first use and dropped again when empty (the in-flight window and the
 * waiting chats): three empty collections cost about 500 bytes on every idle connection
 * (bench/, idle).
 */
export class DeviceFeed {
  readonly who: DeviceIdentity
  /** The device's inbox topic. */
  readonly topic: string
  /** The QoS the device subscribed to its inbox with. */
  qos: 0 | 1
  readonly start: FeedStart
  #chats: Map<string, ChatFeedState> | undefined
  #inflight: Map<number, InFlight> | undefined
  /** Chats with more to send once the in-flight window has room, oldest first. */
  #waiting: Set<string> | undefined
  /**
   * The QoS 1 window filled: chats wait until half of it is free again. Resuming at every
   * acknowledgement read the store once per message for a device at the window's edge, which
   * made a saturated node slower still (bench/).
   */
  full = false
  /** True until the device's cursors are read: live messages wait for the store read after. */
  loading = true
  closed = false

  /** @param d.topic the inbox topic, `u/<userId>/inbox` (the caller has it already) */
  constructor(d: { who: DeviceIdentity; topic: string; qos: 0 | 1; start: FeedStart }) {
    this.who = d.who
    this.topic = d.topic
    this.qos = d.qos
    this.start = d.start
  }

  get userId(): string {
    return this.who.userId
  }

  get deviceId(): string {
    return this.who.deviceId
  }

  /** The device's MQTT client id, `<userId>/<deviceId>`. */
  get clientId(): string {
    return this.who.clientId
  }

  /** See FeedStart.since (ms). */
  get since(): number {
    return this.start.since
  }

  /** See FeedStart.resendBefore (ms). */
  get resendBefore(): number {
    return this.start.resendBefore
  }

  /** Deliveries that may be written now without passing the window (maxInflight at QoS 1). */
  room(maxInflight: number): number {
    return Math.max(0, maxInflight - this.inflightCount)
  }

  /** Starts a chat at `seq` (nothing at or below it is sent), unless it is known already. */
  startChat(chatId: string, seq: number, loading = false): ChatFeedState {
    this.#chats ??= new Map()
    let state = this.#chats.get(chatId)
    if (!state) {
      state = { acked: seq, sent: seq, loading, pumping: false, dirty: false }
      this.#chats.set(chatId, state)
    }
    return state
  }

  /** Where the chat's delivery stands; undefined for a chat not started. */
  chat(chatId: string): ChatFeedState | undefined {
    return this.#chats?.get(chatId)
  }

  /** Forgets a chat (the user left it): a later start begins afresh. */
  forgetChat(chatId: string): void {
    this.#chats?.delete(chatId)
  }

  /** The chats started, in the order they started. */
  chatIds(): Iterable<string> {
    return this.#chats?.keys() ?? []
  }

  /** Unacknowledged QoS 1 deliveries. */
  get inflightCount(): number {
    return this.#inflight?.size ?? 0
  }

  /** Whether a delivery with this packet identifier awaits its PUBACK. */
  isInflight(messageId: number): boolean {
    return this.#inflight?.has(messageId) ?? false
  }

  /** A QoS 1 delivery was written with this packet identifier. */
  addInflight(messageId: number, meta: InFlight): void {
    this.#inflight ??= new Map()
    this.#inflight.set(messageId, meta)
  }

  /** Takes the delivery a PUBACK acknowledged; undefined when none has that identifier. */
  takeInflight(messageId: number): InFlight | undefined {
    const sent = this.#inflight?.get(messageId)
    if (sent === undefined) return undefined
    this.#inflight?.delete(messageId)
    if (this.#inflight?.size === 0) this.#inflight = undefined
    return sent
  }

  /** The chat waits for room in the window. */
  wait(chatId: string): void {
    this.#waiting ??= new Set()
    this.#waiting.add(chatId)
  }

  isWaiting(chatId: string): boolean {
    return this.#waiting?.has(chatId) ?? false
  }

  /** The waiting chats, oldest first (a copy: the caller may stop their waits meanwhile). */
  waitingChats(): string[] {
    return this.#waiting ? [...this.#waiting] : []
  }

  /** The chat no longer waits. */
  stopWaiting(chatId: string): void {
    this.#waiting?.delete(chatId)
    if (this.#waiting?.size === 0) this.#waiting = undefined
  }
}
