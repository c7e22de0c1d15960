import type { DatabaseSync } from 'node:sqlite'
import type { StoredMessage } from './message-store.ts'

/**
 * messages.db's tables, and how a row becomes a message: shared by the reader and the writer thread.
 *
 * messages_at is gone: retention finds old messages per chat on messages_chat_at (every chat
 * with messages has a chat_seq row), and the send path saves a B-tree insert per message.
 * search_indexed holds, per chat, the seq up to which every message has its message_terms rows:
 * terms are written after the commit that stores a message (sqlite-message-writer.ts), and what
 * a crash left behind the mark is indexed again when the writer starts.
 */
export const SCHEMA = `
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
DROP INDEX IF EXISTS messages_at;
CREATE INDEX IF NOT EXISTS messages_chat_at ON messages (chat_id, at);
CREATE INDEX IF NOT EXISTS messages_changed ON messages (chat_id, coalesce(deleted_at, edited_at))
  WHERE deleted_at IS NOT NULL OR edited_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS message_terms (
  chat_id TEXT NOT NULL,
  term TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (chat_id, term, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chat_seq (chat_id TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_indexed (chat_id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
`

/**
 * Creates or upgrades the schema in one transaction. A file written before search_indexed
 * existed had every message's terms written in the commit that stored it, so its chats start
 * indexed up to their last seq rather than being indexed again.
 */
export function openSchema(db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE')
  try {
    const upgrading = !db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'search_indexed'").get()
    db.exec(SCHEMA)
    if (upgrading)
      db.exec('INSERT OR IGNORE INTO search_indexed (chat_id, seq) SELECT chat_id, last FROM chat_seq')
    db.exec('COMMIT')
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw err
  }
}

/**
 * An append as it travels to the writer thread: a flat array, APPEND_FIELDS values per message
 * (chatId, senderId, deviceId, clientMsgId, kind, text or null, body as JSON, at in ms), which
 * clones far cheaper than an array of objects.
 */
export type AppendRows = Array<string | number | null>
export const APPEND_FIELDS = 8

export interface MessageRow {
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

export function toMessage(r: MessageRow): StoredMessage {
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
