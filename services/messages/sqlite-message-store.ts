import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import {
  type AppendResult,
  type MessageStore,
  type NewMessage,
  type StoredMessage,
  searchTerms,
} from './message-store.ts'

interface Row {
  chat_id: string
  seq: number
  sender_id: string
  device_id: string
  client_msg_id: string
  kind: string
  text: string | null
  body: string
  at: number
  edited_at: number | null
  deleted_at: number | null
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  chat_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  sender_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  client_msg_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  text TEXT,
  body TEXT NOT NULL,
  at INTEGER NOT NULL,
  edited_at INTEGER,
  deleted_at INTEGER,
  PRIMARY KEY (chat_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id ON messages (chat_id, sender_id, client_msg_id);
CREATE INDEX IF NOT EXISTS messages_at ON messages (at);
CREATE TABLE IF NOT EXISTS message_terms (
  chat_id TEXT NOT NULL,
  term TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (chat_id, term, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chat_seq (chat_id TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
`

function toMessage(r: Row): StoredMessage {
  return {
    chatId: r.chat_id,
    seq: r.seq,
    senderId: r.sender_id,
    deviceId: r.device_id,
    clientMsgId: r.client_msg_id,
    kind: r.kind as StoredMessage['kind'],
    text: r.text,
    body: JSON.parse(r.body) as Record<string, unknown>,
    at: r.at,
    editedAt: r.edited_at,
    deletedAt: r.deleted_at,
  }
}

interface Pending {
  m: NewMessage
  at: number
  resolve: (r: AppendResult) => void
  reject: (err: unknown) => void
}

/**
 * SQLite in WAL mode with synchronous=FULL, so a commit is on disk when it returns. Appends
 * that arrive in the same turn of the event loop share one transaction (group commit): one
 * fsync for many messages, and each caller's promise resolves only after that commit.
 */
export class SqliteMessageStore implements MessageStore {
  readonly #db: DatabaseSync
  #queue: Pending[] = []
  #scheduled = false
  // Prepared once: the append path runs them for every message.
  readonly #statements: {
    findDup: StatementSync
    next: StatementSync
    insert: StatementSync
    term: StatementSync
  }

  constructor(path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    this.#db = new DatabaseSync(path)
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')
    this.#db.exec(SCHEMA)
    this.#statements = {
      findDup: this.#db.prepare(
        'SELECT * FROM messages WHERE chat_id = ? AND sender_id = ? AND client_msg_id = ?',
      ),
      next: this.#db.prepare(
        'INSERT INTO chat_seq (chat_id, last) VALUES (?, 1) ON CONFLICT (chat_id) DO UPDATE SET last = last + 1 RETURNING last',
      ),
      insert: this.#db.prepare(
        'INSERT INTO messages (chat_id, seq, sender_id, device_id, client_msg_id, kind, text, body, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      term: this.#db.prepare('INSERT OR IGNORE INTO message_terms (chat_id, term, seq) VALUES (?, ?, ?)'),
    }
  }

  append(m: NewMessage, at = Date.now()): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ m, at, resolve, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush(): void {
    this.#scheduled = false
    const batch = this.#queue
    this.#queue = []
    const results: AppendResult[] = []
    const db = this.#db
    const { findDup, next, insert, term } = this.#statements
    try {
      db.exec('BEGIN IMMEDIATE')
      for (const { m, at } of batch) {
        const dup = findDup.get(m.chatId, m.senderId, m.clientMsgId) as Row | undefined
        if (dup) {
          results.push({ message: toMessage(dup), duplicate: true })
          continue
        }
        const { last: seq } = next.get(m.chatId) as { last: number }
        insert.run(
          m.chatId,
          seq,
          m.senderId,
          m.deviceId,
          m.clientMsgId,
          m.kind,
          m.text,
          JSON.stringify(m.body),
          at,
        )
        for (const t of searchTerms(m.text)) term.run(m.chatId, t, seq)
        results.push({
          message: { ...m, seq, at, editedAt: null, deletedAt: null },
          duplicate: false,
        })
      }
      db.exec('COMMIT')
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK')
      for (const p of batch) p.reject(err)
      return
    }
    for (const [i, p] of batch.entries()) p.resolve(results[i] as AppendResult)
  }

  #rows(sql: string, ...params: SQLInputValue[]): StoredMessage[] {
    return (this.#db.prepare(sql).all(...params) as unknown as Row[]).map(toMessage)
  }

  async after(chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#rows(
      'SELECT * FROM messages WHERE chat_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      chatId,
      afterSeq,
      limit,
    )
  }

  async before(chatId: string, beforeSeq: number | null, limit: number): Promise<StoredMessage[]> {
    return this.#rows(
      'SELECT * FROM messages WHERE chat_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
      chatId,
      beforeSeq ?? Number.MAX_SAFE_INTEGER,
      limit,
    )
  }

  async get(chatId: string, seq: number): Promise<StoredMessage | null> {
    return this.#rows('SELECT * FROM messages WHERE chat_id = ? AND seq = ?', chatId, seq)[0] ?? null
  }

  async edit(chatId: string, seq: number, text: string, at: number): Promise<StoredMessage | null> {
    const db = this.#db
    db.exec('BEGIN IMMEDIATE')
    try {
      const changed = db
        .prepare(
          'UPDATE messages SET text = ?, edited_at = ? WHERE chat_id = ? AND seq = ? AND deleted_at IS NULL',
        )
        .run(text, at, chatId, seq).changes
      if (changed) {
        db.prepare('DELETE FROM message_terms WHERE chat_id = ? AND seq = ?').run(chatId, seq)
        const term = db.prepare('INSERT OR IGNORE INTO message_terms (chat_id, term, seq) VALUES (?, ?, ?)')
        for (const t of searchTerms(text)) term.run(chatId, t, seq)
      }
      db.exec('COMMIT')
    } catch (err) {
      db.exec('ROLLBACK')
      throw err
    }
    const m = await this.get(chatId, seq)
    return m && m.deletedAt === null ? m : null
  }

  async tombstone(chatId: string, seq: number, at: number): Promise<StoredMessage | null> {
    const db = this.#db
    db.exec('BEGIN IMMEDIATE')
    try {
      db.prepare(
        "UPDATE messages SET text = NULL, body = '{}', deleted_at = ? WHERE chat_id = ? AND seq = ? AND deleted_at IS NULL",
      ).run(at, chatId, seq)
      db.prepare('DELETE FROM message_terms WHERE chat_id = ? AND seq = ?').run(chatId, seq)
      db.exec('COMMIT')
    } catch (err) {
      db.exec('ROLLBACK')
      throw err
    }
    return this.get(chatId, seq)
  }

  async search(chatId: string, query: string, limit: number): Promise<StoredMessage[]> {
    const terms = searchTerms(query)
    if (terms.length === 0) return []
    const marks = terms.map(() => '?').join(', ')
    return this.#rows(
      `SELECT m.* FROM messages m JOIN (
         SELECT seq FROM message_terms WHERE chat_id = ? AND term IN (${marks})
         GROUP BY seq HAVING COUNT(*) = ?
       ) hit ON hit.seq = m.seq
       WHERE m.chat_id = ? AND m.deleted_at IS NULL ORDER BY m.seq DESC LIMIT ?`,
      chatId,
      ...terms,
      terms.length,
      chatId,
      limit,
    )
  }

  async countUnread(chatId: string, afterSeq: number, userId: string): Promise<number> {
    const r = this.#db
      .prepare(
        "SELECT COUNT(*) AS n FROM messages WHERE chat_id = ? AND seq > ? AND sender_id <> ? AND kind = 'text' AND deleted_at IS NULL",
      )
      .get(chatId, afterSeq, userId) as { n: number }
    return r.n
  }

  async sendersBetween(chatId: string, fromSeq: number, toSeq: number): Promise<string[]> {
    const rows = this.#db
      .prepare('SELECT DISTINCT sender_id FROM messages WHERE chat_id = ? AND seq > ? AND seq <= ?')
      .all(chatId, fromSeq, toSeq) as unknown as Array<{ sender_id: string }>
    return rows.map((r) => r.sender_id).sort()
  }

  async lastSeq(chatId: string): Promise<number> {
    const r = this.#db.prepare('SELECT last FROM chat_seq WHERE chat_id = ?').get(chatId) as
      | { last: number }
      | undefined
    return r?.last ?? 0
  }

  async deleteOlderThan(cutoff: number): Promise<number> {
    const db = this.#db
    db.exec('BEGIN IMMEDIATE')
    try {
      db.prepare(
        `DELETE FROM message_terms WHERE (chat_id, seq) IN (SELECT chat_id, seq FROM messages WHERE at < ?)`,
      ).run(cutoff)
      const n = Number(db.prepare('DELETE FROM messages WHERE at < ?').run(cutoff).changes)
      db.exec('COMMIT')
      return n
    } catch (err) {
      db.exec('ROLLBACK')
      throw err
    }
  }

  async close(): Promise<void> {
    // Appends queued for the next flush are committed before the database closes.
    if (this.#queue.length) this.#flush()
    this.#db.close()
  }
}
