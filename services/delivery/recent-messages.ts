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
  /** What the entries hold, bytes (payloads plus an estimate of each entry's own size). */
  bytes: number
}

/** Bytes an entry holds beside its payload (the objects and the array slot), roughly. */
const ENTRY_BYTES = 160
const sizeOf = (r: RecentMessage) => r.payload.length + ENTRY_BYTES

/**
 * The newest messages of each chat, as their inbox events: a read cache in front of the message
 * store for devices that fall a little behind. The store stays the queue: this holds only
 * consecutive seqs heard from inbox notices, a device reads the store for anything the cache
 * cannot give, and a chat's tail is forgotten when one of its messages changes (edit, delete)
 * or notices may have been lost. At saturation every device's in-flight window fills and is
 * refilled from here rather than by a store read and a re-serialization per message (bench/).
 * InboxDelivery keeps a chat here only while one of its devices is behind in it.
 */
export class RecentMessages {
  readonly #perChat: number
  readonly #maxBytes: number
  readonly #chats = new Map<string, ChatTail>()
  #bytes = 0

  /**
   * @param perChat messages kept per chat (the newest, up to twice as many between trims); at
   *   saturation a device falls behind by hundreds to a few thousand messages per chat (bench/)
   * @param maxBytes memory the cache may hold, bytes (estimated); past it, the chat whose tail
   *   was started longest ago goes first
   */
  constructor(perChat = 2048, maxBytes = 64 * 2 ** 20) {
    this.#perChat = perChat
    this.#maxBytes = maxBytes
  }

  /** Estimated bytes held. */
  get bytes(): number {
    return this.#bytes
  }

  /** A message was stored: kept when it follows the chat's tail, else the tail restarts at it. */
  add(m: Deliverable, payload: Buffer): void {
    const entry = { m, payload }
    let tail = this.#chats.get(m.chatId)
    if (tail && m.seq < tail.first + tail.entries.length) return
    if (tail && m.seq === tail.first + tail.entries.length) {
      tail.entries.push(entry)
      tail.bytes += sizeOf(entry)
      this.#bytes += sizeOf(entry)
      // Trimmed in steps, so that the array is not shifted for every message.
      if (tail.entries.length >= this.#perChat * 2) {
        const dropped = tail.entries.length - this.#perChat
        let freed = 0
        for (let i = 0; i < dropped; i++) freed += sizeOf(tail.entries[i] as RecentMessage)
        tail.entries = tail.entries.slice(dropped)
        tail.first += dropped
        tail.bytes -= freed
        this.#bytes -= freed
      }
    } else {
      if (tail) this.forget(m.chatId)
      tail = { first: m.seq, entries: [entry], bytes: sizeOf(entry) }
      this.#chats.set(m.chatId, tail)
      this.#bytes += tail.bytes
    }
    while (this.#bytes > this.#maxBytes && this.#chats.size > 1) {
      const oldest = this.#chats.keys().next().value as string
      if (oldest === m.chatId) break
      this.forget(oldest)
    }
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

  /**
   * The distinct senders of the chat's messages after `fromSeq` up to `toSeq`, sorted; null
   * when the cache does not hold all of them (the store knows).
   */
  senders(chatId: string, fromSeq: number, toSeq: number): string[] | null {
    if (toSeq <= fromSeq) return []
    const tail = this.#chats.get(chatId)
    if (!tail || fromSeq + 1 < tail.first || toSeq >= tail.first + tail.entries.length) return null
    const found = new Set<string>()
    for (let i = fromSeq + 1 - tail.first; i <= toSeq - tail.first; i++) {
      found.add((tail.entries[i] as RecentMessage).m.senderId)
    }
    return [...found].sort()
  }

  /** The newest seq of the chat this cache heard of, or undefined. */
  last(chatId: string): number | undefined {
    const tail = this.#chats.get(chatId)
    return tail ? tail.first + tail.entries.length - 1 : undefined
  }

  /** A message of the chat changed: its tail may hold the old version. */
  forget(chatId: string): void {
    const tail = this.#chats.get(chatId)
    if (!tail) return
    this.#bytes -= tail.bytes
    this.#chats.delete(chatId)
  }

  /** Notices may have been lost (a cluster's pub/sub came back): everything is forgotten. */
  clear(): void {
    this.#chats.clear()
    this.#bytes = 0
  }
}
