const MAX_PER_USER = 10_000
/** A list's acknowledged head is cut off once it is this long and over half the list. */
const COMPACT_AT = 1024

/** One chat's pending deliveries to one user, in seq order, from index `head` on. */
interface Pending {
  seqs: number[]
  /** When each was stored, ms. */
  ats: number[]
  head: number
}

/**
 * Messages fanned out to users with a device connected that no device of theirs has
 * acknowledged yet: the age of the oldest is the "is delivery stuck?" signal. Users who are
 * offline are not counted; their devices catch up when they return. Called for every message
 * and every acknowledgement, so it allocates nothing per call once a chat's lists exist, and
 * an acknowledgement moves a head index instead of shifting the list.
 */
export class UndeliveredTracker {
  // userId → chatId → pending deliveries; and how many each user has, summed over chats
  readonly #pending = new Map<string, Map<string, Pending>>()
  readonly #counts = new Map<string, number>()

  /** Message `seq` of a chat, stored at `at` (ms), was fanned out to a connected user. */
  sent(userId: string, chatId: string, seq: number, at: number): void {
    let chats = this.#pending.get(userId)
    if (!chats) {
      chats = new Map()
      this.#pending.set(userId, chats)
    }
    // A bound on memory for a user whose device never acknowledges (summed over their chats):
    // the oldest stay, and they are what the age signal needs.
    const count = this.#counts.get(userId) ?? 0
    if (count >= MAX_PER_USER) return
    let list = chats.get(chatId)
    if (!list) {
      list = { seqs: [], ats: [], head: 0 }
      chats.set(chatId, list)
    }
    list.seqs.push(seq)
    list.ats.push(at)
    this.#counts.set(userId, count + 1)
  }

  /** A device of the user acknowledged everything of the chat up to `seq`. */
  acked(userId: string, chatId: string, seq: number): void {
    const chats = this.#pending.get(userId)
    const list = chats?.get(chatId)
    if (!chats || !list) return
    const from = list.head
    while (list.head < list.seqs.length && (list.seqs[list.head] as number) <= seq) list.head++
    const done = list.head - from
    if (done === 0) return
    this.#counts.set(userId, (this.#counts.get(userId) ?? done) - done)
    if (list.head === list.seqs.length) chats.delete(chatId)
    else if (list.head >= COMPACT_AT && list.head * 2 > list.seqs.length) {
      list.seqs = list.seqs.slice(list.head)
      list.ats = list.ats.slice(list.head)
      list.head = 0
    }
    if (chats.size === 0) this.offline(userId)
  }

  /** The user has no device connected any more: their devices catch up from the store. */
  offline(userId: string): void {
    this.#pending.delete(userId)
    this.#counts.delete(userId)
  }

  /** Pending deliveries, summed over users and chats. */
  count(): number {
    let n = 0
    for (const c of this.#counts.values()) n += c
    return n
  }

  /** Age of the oldest pending delivery in seconds at `now` (ms); 0 when none. */
  oldestAgeSeconds(now = Date.now()): number {
    let oldest = now
    for (const chats of this.#pending.values()) {
      for (const list of chats.values()) {
        const first = list.ats[list.head]
        if (first !== undefined && first < oldest) oldest = first
      }
    }
    return (now - oldest) / 1000
  }
}
