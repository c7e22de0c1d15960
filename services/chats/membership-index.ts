import type { Member, Role } from './chat-store.ts'

/**
 * Who is in which chat, in memory, so the broker's delivery check (authorizeForward, which is
 * synchronous) can ask on every packet. Loaded from the chat store at start and updated by the
 * chat service on every change it makes.
 */
export class MembershipIndex {
  readonly #chats = new Map<string, Map<string, { role: Role; joinedAt: number }>>()
  readonly #users = new Map<string, Set<string>>()
  /** Called after a local change to a chat's members (a cluster tells the other nodes). */
  onChange: ((chatId: string) => void) | undefined

  /** Replaces a chat's members with the store's list, after another node changed them. */
  replaceChat(chatId: string, members: Iterable<Member>): void {
    for (const userId of this.members(chatId)) this.#forget(chatId, userId)
    for (const m of members) this.#put(m.chatId, m.userId, m.role, m.joinedAt)
  }

  load(members: Iterable<Member>): void {
    for (const m of members) this.#put(m.chatId, m.userId, m.role, m.joinedAt)
  }

  /** Adds a member, or changes a member's role (keeping when they joined); joinedAt in ms. */
  add(chatId: string, userId: string, role: Role, joinedAt = Date.now()): void {
    this.#put(chatId, userId, role, this.joinedAt(chatId, userId) ?? joinedAt)
    this.onChange?.(chatId)
  }

  remove(chatId: string, userId: string): void {
    this.#forget(chatId, userId)
    this.onChange?.(chatId)
  }

  #put(chatId: string, userId: string, role: Role, joinedAt: number): void {
    let chat = this.#chats.get(chatId)
    if (!chat) {
      chat = new Map()
      this.#chats.set(chatId, chat)
    }
    chat.set(userId, { role, joinedAt })
    let chats = this.#users.get(userId)
    if (!chats) {
      chats = new Set()
      this.#users.set(userId, chats)
    }
    chats.add(chatId)
  }

  #forget(chatId: string, userId: string): void {
    this.#chats.get(chatId)?.delete(userId)
    this.#users.get(userId)?.delete(chatId)
  }

  isMember(chatId: string, userId: string): boolean {
    return this.#chats.get(chatId)?.has(userId) ?? false
  }

  role(chatId: string, userId: string): Role | undefined {
    return this.#chats.get(chatId)?.get(userId)?.role
  }

  /** When the user joined the chat (ms since the epoch), or undefined when not a member. */
  joinedAt(chatId: string, userId: string): number | undefined {
    return this.#chats.get(chatId)?.get(userId)?.joinedAt
  }

  /** The chats a user is a member of. */
  chatsOf(userId: string): string[] {
    return [...(this.#users.get(userId) ?? [])]
  }

  members(chatId: string): string[] {
    return [...(this.#chats.get(chatId)?.keys() ?? [])]
  }

  /** True when the two users are members of at least one common chat. */
  shareChat(a: string, b: string): boolean {
    if (a === b) return true
    const mine = this.#users.get(a)
    const theirs = this.#users.get(b)
    if (!mine || !theirs) return false
    const [small, large] = mine.size <= theirs.size ? [mine, theirs] : [theirs, mine]
    for (const chatId of small) if (large.has(chatId)) return true
    return false
  }
}
