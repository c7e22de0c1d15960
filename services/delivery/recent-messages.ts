import type { Deliverable } from './device-feed.ts'

/** A stored message as an inbox PUBLISH payload, ready for any device. */
export interface RecentMessage {
  m: Deliverable
  /** The message event's JSON, serialized once. */
  payload: Buffer
}

interface ChatTail {
  /** Seq of entries[0]; entries hold consecutive seqs. */
  first: number
  entries: RecentMessage[]
}

/**
 * The newest messages of each chat, as their inbox events: a read cache in front of the message
 * store for devices that fall a little behind. The store stays the queue: this holds only
 * consecutive seqs heard from inbox notices, a device reads the store for anything the cache
 * cannot give, and a chat's tail is forgotten when one of its messages changes (edit, delete)
 * or notices may have been lost. At saturation every device's in-flight window fills and is
 * refilled from here rather than by a store read and a re-serialization per message (bench/).
 */
export class RecentMessages {
  readonly #perChat: number
  readonly #maxChats: number
  readonly #chats = new Map<string, ChatTail>()

  /**
   * @param perChat messages kept per chat (the newest)
   * @param maxChats chats kept; the chat whose tail was started longest ago goes first
   */
  constructor(perChat = 256, maxChats = 2000) {
    this.#perChat = perChat
    this.#maxChats = maxChats
  }

  /** A message was stored: kept when it follows the chat's tail, else the tail restarts at it. */
  add(m: Deliverable, payload: Buffer): void {
    const tail = this.#chats.get(m.chatId)
    if (tail && m.seq === tail.first + tail.entries.length) {
      tail.entries.push({ m, payload })
      // Trimmed in steps, so that the array is not shifted for every message.
      if (tail.entries.length >= this.#perChat * 2) {
        tail.entries = tail.entries.slice(-this.#perChat)
        tail.first = m.seq - this.#perChat + 1
      }
      return
    }
    if (tail && m.seq < tail.first + tail.entries.length) return
    if (!tail && this.#chats.size >= this.#maxChats) {
      this.#chats.delete(this.#chats.keys().next().value as string)
    }
    this.#chats.set(m.chatId, { first: m.seq, entries: [{ m, payload }] })
  }

  /**
   * Up to `limit` messages of the chat right after seq `after`, in seq order; empty when the
   * cache does not hold `after + 1`.
   */
  after(chatId: string, after: number, limit: number): RecentMessage[] {
    const tail = this.#chats.get(chatId)
    if (!tail) return []
    const start = after + 1 - tail.first
    if (start < 0 || start >= tail.entries.length) return []
    return tail.entries.slice(start, start + limit)
  }

  /** A message of the chat changed: its tail may hold the old version. */
  forget(chatId: string): void {
    this.#chats.delete(chatId)
  }

  /** Notices may have been lost (a cluster's pub/sub came back): everything is forgotten. */
  clear(): void {
    this.#chats.clear()
  }
}
