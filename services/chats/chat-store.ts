/**
 * Chats, members, per-user cursors and last-seen: one interface, a SQLite store (embedded
 * default) and a MongoDB store, held to one contract (test/contract/chat-store.contract.ts).
 * Rules about who may do what live in the chat service, not here: a store records.
 */

export type ChatKind = 'direct' | 'group'
export type Role = 'admin' | 'member'

export interface Chat {
  id: string
  kind: ChatKind
  /** Groups have a name; direct chats have null. */
  name: string | null
  createdBy: string
  createdAt: number
}

export interface Member {
  chatId: string
  userId: string
  role: Role
  joinedAt: number
}

export interface Cursor {
  chatId: string
  userId: string
  /** Highest seq one of the user's devices has received. */
  deliveredSeq: number
  /** Highest seq the user has read; read implies delivered, so deliveredSeq >= readSeq. */
  readSeq: number
}

export interface Presence {
  userId: string
  online: boolean
  /** ms since the epoch: when the user was last connected (or connected now). */
  lastSeen: number
}

export interface ChatStore {
  /** A group with its creator as admin and the other members as members. */
  createGroup(g: {
    id: string
    name: string
    createdBy: string
    members: string[]
    at: number
  }): Promise<Chat>
  /**
   * The one direct chat of two users: created with `id` the first time (both members, role
   * member), found again after, in either order of a and b, even when called concurrently.
   * `encrypted` (docs/e2ee.md §5) looks up the pair's other direct chat, the end-to-end
   * encrypted one, under a second pair key: two users have at most one of each.
   */
  findOrCreateDirect(d: {
    id: string
    a: string
    b: string
    at: number
    encrypted?: boolean
  }): Promise<{ chat: Chat; created: boolean }>
  getChat(chatId: string): Promise<Chat | null>
  /** Members in join order. */
  members(chatId: string): Promise<Member[]>
  /**
   * Adds those not yet members (as role member, joined at `at`, ms); returns the ones added, in
   * the order given. An added user who never had a cursor in the chat (a newcomer) gets one at
   * `startSeq` (delivered and read; 0, the default, writes none): where their unread count starts.
   * One who was a member before keeps the cursor they left with (docs/protocol.md#receipts-and-unread-counts).
   */
  addMembers(chatId: string, userIds: string[], at: number, startSeq?: number): Promise<string[]>
  /**
   * Removes a member; false when not a member. Their cursor stays (one at 0 and 0 is written when
   * they had none), so a member who comes back keeps their read position and is not a newcomer.
   */
  removeMember(chatId: string, userId: string): Promise<boolean>
  /** Sets a member's role; nothing when they are not a member. */
  setRole(chatId: string, userId: string, role: Role): Promise<void>
  /** Renames a group; false when there is no such group (a direct chat keeps its null name). */
  renameChat(chatId: string, name: string): Promise<boolean>
  /** The chats a user is a member of, newest first by createdAt. */
  chatsOf(userId: string): Promise<Chat[]>
  /** Every membership, for the in-memory index a node builds at start. */
  allMembers(): Promise<Member[]>

  /**
   * Moves a user's delivered or read cursor forward to seq (never back); moving read also
   * moves delivered up to it. Returns the cursor after the call, and whether it moved.
   */
  advanceCursor(c: {
    chatId: string
    userId: string
    kind: 'delivered' | 'read'
    seq: number
  }): Promise<{ cursor: Cursor; moved: boolean }>
  /** One user's cursor of a chat: 0 and 0 when it has none. */
  cursor(chatId: string, userId: string): Promise<Cursor>
  /** Every member's cursor of a chat (members with no cursor yet have 0 and 0). */
  cursors(chatId: string): Promise<Cursor[]>

  /**
   * Every chat the user is or was a member of (a removal keeps the cursor, so a cursor marks a
   * past membership), with the membership now (null when they left or were removed) and their
   * read cursor (0 and 0 when none was written), ordered by chat id. A chat whose record is gone
   * is left out. Reads the user's cursors without an index by user (a scan of the cursors):
   * for export and erase, not for a hot path.
   */
  chatsEver(userId: string): Promise<{ chat: Chat; member: Member | null; cursor: Cursor }[]>
  /**
   * Removes the user's cursors of every chat and their presence row. Call after the user was
   * removed from every chat (removeMember): membership rows are not touched here. Idempotent.
   */
  forgetUser(userId: string): Promise<void>

  setPresence(p: Presence): Promise<void>
  allPresence(): Promise<Presence[]>

  /**
   * Leaves nothing deleted before this in the store's files (account erasure, after the
   * deletes): on SQLite, deleted rows are zeroed as they go (secure_delete) and this truncates
   * the WAL, which held their old page images (services/storage/sqlite-checkpoint.ts); MongoDB:
   * nothing to do (docs/decisions.md, "Erasing a user in the stores").
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}
