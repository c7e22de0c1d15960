import { clientIdOf, topics } from '../auth/topic-acl.ts'
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

/** What an inbox delivery needs of a stored message. */
export type Deliverable = Pick<StoredMessage, 'chatId' | 'seq' | 'senderId' | 'at'>

/**
 * One connected device's inbox delivery: per chat, what was sent and acknowledged, and the
 * PUBLISH packets in flight. It holds no message: what is owed is read from the message store.
 */
export class DeviceFeed {
  readonly userId: string
  readonly deviceId: string
  readonly clientId: string
  /** The device's inbox topic. */
  readonly topic: string
  /** The QoS the device subscribed to its inbox with. */
  qos: 0 | 1
  /** When this device's session began (ms): the starting point of chats it has no cursor for. */
  readonly since: number
  /**
   * Messages stored at or before this time (ms) may have been written to the device by an
   * earlier connection of the same session: a resend carries DUP=1 [MQTT-3.3.1-1].
   */
  readonly resendBefore: number
  readonly chats = new Map<string, ChatFeedState>()
  readonly inflight = new Map<number, InFlight>()
  /** Chats with more to send once the in-flight window has room, oldest first. */
  readonly waiting = new Set<string>()
  /**
   * The QoS 1 window filled: chats wait until half of it is free again. Resuming at every
   * acknowledgement read the store once per message for a device at the window's edge, which
   * made a saturated node slower still (bench/).
   */
  full = false
  /** True until the device's cursors are read: live messages wait for the store read after. */
  loading = true
  closed = false

  constructor(d: {
    userId: string
    deviceId: string
    qos: 0 | 1
    since: number
    resendBefore: number
  }) {
    this.userId = d.userId
    this.deviceId = d.deviceId
    this.clientId = clientIdOf(d.userId, d.deviceId)
    this.topic = topics.inbox(d.userId)
    this.qos = d.qos
    this.since = d.since
    this.resendBefore = d.resendBefore
  }

  /** Deliveries that may be written now without passing the window (maxInflight at QoS 1). */
  room(maxInflight: number): number {
    return Math.max(0, maxInflight - this.inflight.size)
  }

  /** Starts a chat at `seq` (nothing at or below it is sent), unless it is known already. */
  start(chatId: string, seq: number, loading = false): ChatFeedState {
    let state = this.chats.get(chatId)
    if (!state) {
      state = { acked: seq, sent: seq, loading, pumping: false, dirty: false }
      this.chats.set(chatId, state)
    }
    return state
  }
}
