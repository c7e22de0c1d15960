const MAX_PER_USER = 10_000

/**
 * Messages fanned out to users with a device connected that no device of theirs has
 * acknowledged yet: the age of the oldest is the "is delivery stuck?" signal. Users who are
 * offline are not counted; their devices catch up when they return.
 */
export class UndeliveredTracker {
  // userId → chatId → pending deliveries in seq order
  readonly #pending = new Map<string, Map<string, Array<{ seq: number; at: number }>>>()

  sent(userId: string, chatId: string, seq: number, at: number): void {
    let chats = this.#pending.get(userId)
    if (!chats) {
      chats = new Map()
      this.#pending.set(userId, chats)
    }
    let list = chats.get(chatId)
    if (!list) {
      list = []
      chats.set(chatId, list)
    }
    // A bound on memory for a user whose device never acknowledges (summed over their chats):
    // the oldest stay, and they are what the age signal needs.
    if (this.#countOf(chats) >= MAX_PER_USER) return
    list.push({ seq, at })
  }

  acked(userId: string, chatId: string, seq: number): void {
    const chats = this.#pending.get(userId)
    const list = chats?.get(chatId)
    if (!chats || !list) return
    let n = 0
    while (n < list.length && (list[n]?.seq ?? Number.POSITIVE_INFINITY) <= seq) n++
    list.splice(0, n)
    if (list.length === 0) chats.delete(chatId)
    if (chats.size === 0) this.#pending.delete(userId)
  }

  #countOf(chats: Map<string, Array<{ seq: number; at: number }>>): number {
    let n = 0
    for (const list of chats.values()) n += list.length
    return n
  }

  offline(userId: string): void {
    this.#pending.delete(userId)
  }

  count(): number {
    let n = 0
    for (const chats of this.#pending.values()) for (const list of chats.values()) n += list.length
    return n
  }

  oldestAgeSeconds(now = Date.now()): number {
    let oldest = now
    for (const chats of this.#pending.values()) {
      for (const list of chats.values()) {
        const first = list[0]
        if (first && first.at < oldest) oldest = first.at
      }
    }
    return (now - oldest) / 1000
  }
}
