import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { inTransaction, openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import type { Chat, ChatStore, Cursor, Member, Presence, Role } from './chat-store.ts'

interface ChatRow {
  id: string
  kind: string
  name: string | null
  created_by: string
  created_at: number
}

interface MemberRow {
  chat_id: string
  user_id: string
  role: string
  joined_at: number
}

interface CursorRow {
  chat_id: string
  user_id: string
  delivered_seq: number
  read_seq: number
}

interface PresenceRow {
  user_id: string
  online: number
  last_seen: number
}

// chats and members keep their rowid: it is the insertion order, which breaks ties between
// chats created, and members joined, in the same millisecond.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS chats (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  name TEXT,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS direct_pairs (
  pair_key TEXT PRIMARY KEY,
  chat_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
  chat_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  role TEXT NOT NULL,
  joined_at INTEGER NOT NULL,
  PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_user ON members (user_id);
CREATE TABLE IF NOT EXISTS cursors (
  chat_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  delivered_seq INTEGER NOT NULL,
  read_seq INTEGER NOT NULL,
  PRIMARY KEY (chat_id, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS presence (
  user_id TEXT PRIMARY KEY,
  online INTEGER NOT NULL,
  last_seen INTEGER NOT NULL
) WITHOUT ROWID;
`

/**
 * The two users of a direct chat in one order, whichever order they come in; the encrypted
 * direct chat's key has a third part, so the pair's two chats never share a key.
 */
function directPairKey(a: string, b: string, encrypted = false): string {
  // User ids travel in MQTT strings, which cannot hold NUL, so ("ab", "c") and ("a", "bc") stay apart.
  return [...[a, b].sort(), ...(encrypted ? ['e2ee'] : [])].join('\u0000')
}

const toChat = (r: ChatRow): Chat => ({
  id: r.id,
  kind: r.kind as Chat['kind'],
  name: r.name,
  createdBy: r.created_by,
  createdAt: r.created_at,
})

const toMember = (r: MemberRow): Member => ({
  chatId: r.chat_id,
  userId: r.user_id,
  role: r.role as Role,
  joinedAt: r.joined_at,
})

const toCursor = (r: CursorRow): Cursor => ({
  chatId: r.chat_id,
  userId: r.user_id,
  deliveredSeq: r.delivered_seq,
  readSeq: r.read_seq,
})

/**
 * SQLite in WAL mode with synchronous=FULL, like the message store. Writes that must hold
 * together run in one BEGIN IMMEDIATE transaction, so another process on the same file
 * cannot slip in between (two nodes creating the same direct chat, say).
 */
export class SqliteChatStore implements ChatStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    // NORMAL, unlike the message store's FULL: in WAL mode a commit still survives a crash of the
    // process; only a power loss can undo the last ones. Cursors move on every delivery, and an
    // fsync each would cap the whole send path at the disk's fsync rate (measured in bench/).
    this.#db = openSqliteFile(path, { synchronous: 'NORMAL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  #transaction<T>(work: () => T): T {
    return inTransaction(this.#db, work)
  }

  #insertChat(chat: Chat): void {
    this.#sql('INSERT INTO chats (id, kind, name, created_by, created_at) VALUES (?, ?, ?, ?, ?)').run(
      chat.id,
      chat.kind,
      chat.name,
      chat.createdBy,
      chat.createdAt,
    )
  }

  /** Inserts the users not yet members, in the order given; returns those inserted. */
  #insertMembers(chatId: string, userIds: string[], role: (userId: string) => Role, at: number): string[] {
    const insert = this.#sql(
      'INSERT OR IGNORE INTO members (chat_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)',
    )
    return userIds.filter((userId) => insert.run(chatId, userId, role(userId), at).changes > 0)
  }

  async createGroup(g: {
    id: string
    name: string
    createdBy: string
    members: string[]
    at: number
  }): Promise<Chat> {
    const chat: Chat = { id: g.id, kind: 'group', name: g.name, createdBy: g.createdBy, createdAt: g.at }
    this.#transaction(() => {
      this.#insertChat(chat)
      this.#insertMembers(
        g.id,
        [g.createdBy, ...g.members],
        (userId) => (userId === g.createdBy ? 'admin' : 'member'),
        g.at,
      )
    })
    return chat
  }

  async findOrCreateDirect(d: {
    id: string
    a: string
    b: string
    at: number
    encrypted?: boolean
  }): Promise<{ chat: Chat; created: boolean }> {
    const key = directPairKey(d.a, d.b, d.encrypted)
    return this.#transaction(() => {
      const found = this.#sql(
        'SELECT c.* FROM direct_pairs p JOIN chats c ON c.id = p.chat_id WHERE p.pair_key = ?',
      ).get(key) as ChatRow | undefined
      if (found) return { chat: toChat(found), created: false }
      const chat: Chat = { id: d.id, kind: 'direct', name: null, createdBy: d.a, createdAt: d.at }
      this.#insertChat(chat)
      this.#sql('INSERT INTO direct_pairs (pair_key, chat_id) VALUES (?, ?)').run(key, d.id)
      this.#insertMembers(d.id, [d.a, d.b], () => 'member', d.at)
      return { chat, created: true }
    })
  }

  async getChat(chatId: string): Promise<Chat | null> {
    const r = this.#sql('SELECT * FROM chats WHERE id = ?').get(chatId) as ChatRow | undefined
    return r ? toChat(r) : null
  }

  async members(chatId: string): Promise<Member[]> {
    const rows = this.#sql('SELECT * FROM members WHERE chat_id = ? ORDER BY joined_at, rowid').all(
      chatId,
    ) as unknown as MemberRow[]
    return rows.map(toMember)
  }

  async addMembers(chatId: string, userIds: string[], at: number, startSeq = 0): Promise<string[]> {
    return this.#transaction(() => {
      const added = this.#insertMembers(chatId, userIds, () => 'member', at)
      // OR IGNORE: a returning member's cursor is where they left it.
      if (startSeq > 0) for (const userId of added) this.#startCursor(chatId, userId, startSeq)
      return added
    })
  }

  #startCursor(chatId: string, userId: string, seq: number): void {
    this.#sql(
      'INSERT OR IGNORE INTO cursors (chat_id, user_id, delivered_seq, read_seq) VALUES (?, ?, ?, ?)',
    ).run(chatId, userId, seq, seq)
  }

  async removeMember(chatId: string, userId: string): Promise<boolean> {
    return this.#transaction(() => {
      const removed = this.#sql('DELETE FROM members WHERE chat_id = ? AND user_id = ?').run(
        chatId,
        userId,
      ).changes
      // The cursor stays for when they come back; one at 0 marks them as no newcomer then.
      if (removed > 0) this.#startCursor(chatId, userId, 0)
      return removed > 0
    })
  }

  async setRole(chatId: string, userId: string, role: Role): Promise<void> {
    this.#sql('UPDATE members SET role = ? WHERE chat_id = ? AND user_id = ?').run(role, chatId, userId)
  }

  async renameChat(chatId: string, name: string): Promise<boolean> {
    const renamed = this.#sql("UPDATE chats SET name = ? WHERE id = ? AND kind = 'group'").run(name, chatId)
    return Number(renamed.changes) > 0
  }

  async chatsOf(userId: string): Promise<Chat[]> {
    const rows = this.#sql(
      `SELECT c.* FROM members m JOIN chats c ON c.id = m.chat_id
         WHERE m.user_id = ? ORDER BY c.created_at DESC, c.rowid DESC`,
    ).all(userId) as unknown as ChatRow[]
    return rows.map(toChat)
  }

  async allMembers(): Promise<Member[]> {
    const rows = this.#sql(
      'SELECT * FROM members ORDER BY chat_id, joined_at, rowid',
    ).all() as unknown as MemberRow[]
    return rows.map(toMember)
  }

  async advanceCursor(c: {
    chatId: string
    userId: string
    kind: 'delivered' | 'read'
    seq: number
  }): Promise<{ cursor: Cursor; moved: boolean }> {
    // One upsert whose update only applies when it moves forward: atomic without a
    // transaction, and RETURNING gives a row only when something was written.
    const sql =
      c.kind === 'read'
        ? `INSERT INTO cursors (chat_id, user_id, delivered_seq, read_seq) VALUES (?, ?, ?, ?)
           ON CONFLICT (chat_id, user_id) DO UPDATE
           SET read_seq = excluded.read_seq, delivered_seq = max(delivered_seq, excluded.read_seq)
           WHERE excluded.read_seq > read_seq
           RETURNING *`
        : `INSERT INTO cursors (chat_id, user_id, delivered_seq, read_seq) VALUES (?, ?, ?, ?)
           ON CONFLICT (chat_id, user_id) DO UPDATE
           SET delivered_seq = excluded.delivered_seq
           WHERE excluded.delivered_seq > delivered_seq
           RETURNING *`
    if (c.seq > 0) {
      const written = this.#sql(sql).get(c.chatId, c.userId, c.seq, c.kind === 'read' ? c.seq : 0) as
        | CursorRow
        | undefined
      if (written) return { cursor: toCursor(written), moved: true }
    }
    return { cursor: this.#cursor(c.chatId, c.userId), moved: false }
  }

  #cursor(chatId: string, userId: string): Cursor {
    const r = this.#sql('SELECT * FROM cursors WHERE chat_id = ? AND user_id = ?').get(chatId, userId) as
      | CursorRow
      | undefined
    return r ? toCursor(r) : { chatId, userId, deliveredSeq: 0, readSeq: 0 }
  }

  async cursor(chatId: string, userId: string): Promise<Cursor> {
    const row = this.#sql(
      'SELECT delivered_seq, read_seq FROM cursors WHERE chat_id = ? AND user_id = ?',
    ).get(chatId, userId) as { delivered_seq: number; read_seq: number } | undefined
    return { chatId, userId, deliveredSeq: row?.delivered_seq ?? 0, readSeq: row?.read_seq ?? 0 }
  }

  async cursors(chatId: string): Promise<Cursor[]> {
    const rows = this.#sql(
      `SELECT m.chat_id, m.user_id,
           coalesce(c.delivered_seq, 0) AS delivered_seq, coalesce(c.read_seq, 0) AS read_seq
         FROM members m LEFT JOIN cursors c ON c.chat_id = m.chat_id AND c.user_id = m.user_id
         WHERE m.chat_id = ? ORDER BY m.joined_at, m.rowid`,
    ).all(chatId) as unknown as CursorRow[]
    return rows.map(toCursor)
  }

  async chatsEver(userId: string): Promise<{ chat: Chat; member: Member | null; cursor: Cursor }[]> {
    // members_user finds the memberships; the cursors (a past member has one) are scanned.
    const rows = this.#sql(
      `SELECT c.*, m.role, m.joined_at, coalesce(u.delivered_seq, 0) AS delivered_seq,
              coalesce(u.read_seq, 0) AS read_seq
         FROM (SELECT chat_id FROM members WHERE user_id = ?1
               UNION SELECT chat_id FROM cursors WHERE user_id = ?1) e
         JOIN chats c ON c.id = e.chat_id
         LEFT JOIN members m ON m.chat_id = e.chat_id AND m.user_id = ?1
         LEFT JOIN cursors u ON u.chat_id = e.chat_id AND u.user_id = ?1
        ORDER BY c.id`,
    ).all(userId) as unknown as Array<
      ChatRow & { role: string | null; joined_at: number | null; delivered_seq: number; read_seq: number }
    >
    return rows.map((r) => ({
      chat: toChat(r),
      member:
        r.role === null || r.joined_at === null
          ? null
          : toMember({ chat_id: r.id, user_id: userId, role: r.role, joined_at: r.joined_at }),
      cursor: toCursor({
        chat_id: r.id,
        user_id: userId,
        delivered_seq: r.delivered_seq,
        read_seq: r.read_seq,
      }),
    }))
  }

  async forgetUser(userId: string): Promise<void> {
    this.#transaction(() => {
      this.#sql('DELETE FROM cursors WHERE user_id = ?').run(userId)
      this.#sql('DELETE FROM presence WHERE user_id = ?').run(userId)
    })
  }

  async setPresence(p: Presence): Promise<void> {
    this.#sql(
      `INSERT INTO presence (user_id, online, last_seen) VALUES (?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET online = excluded.online, last_seen = excluded.last_seen`,
    ).run(p.userId, p.online ? 1 : 0, p.lastSeen)
  }

  async allPresence(): Promise<Presence[]> {
    const rows = this.#sql('SELECT * FROM presence ORDER BY user_id').all() as unknown as PresenceRow[]
    return rows.map((r) => ({ userId: r.user_id, online: r.online === 1, lastSeen: r.last_seen }))
  }

  async purgeErased(): Promise<void> {
    await truncateWal(this.#db)
  }

  async close(): Promise<void> {
    this.#db.close()
  }
}
