import type { DatabaseSync } from 'node:sqlite'
import type { StoredMessage } from './message-store.ts'

/**
 * messages.db's tables, and how a row becomes a message: shared by the reader and the writer thread.
 *
 * messages_at is gone: retention finds old messages per chat on messages_chat_at (every chat
 * with messages has a chat_seq row), and the send path saves a B-tree insert per message.
 * The search index lives in a file of its own, written by its own thread
 * (sqlite-search-index.ts, sqlite-message-indexer.ts), so that an append never waits for it.
 *
 * search_changes is the search index's changes log: each edit, tombstone, erasure and retention
 * delete adds, in its own transaction, the runs of seqs (from_seq..to_seq, one chat) whose terms
 * it changed. Appends add nothing (the indexer's per-chat mark covers them). The indexer tells
 * the writer which ids its file holds durably, and the writer deletes those rows in its next
 * change; at start (or when either thread was started again) the indexer applies every row left
 * again from the messages as they stand, so a crash between the two files' commits leaves no
 * old words in the index (docs/decisions.md). AUTOINCREMENT: ids must keep growing once every
 * row is deleted, or the writer would take a new row for one the index holds already.
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
CREATE TABLE IF NOT EXISTS chat_seq (chat_id TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_changes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id TEXT NOT NULL,
  from_seq INTEGER NOT NULL,
  to_seq INTEGER NOT NULL
);
`

/**
 * Creates or upgrades the schema in one transaction. A file of an earlier layout kept its search
 * index inside: message_terms rows (before FTS5), or message_search, search_chats and
 * search_version (FTS5 in messages.db, until the index moved to its own file). Those tables go
 * (zeroed as they go: the connection has secure_delete on; the file keeps their pages free until
 * a purge's VACUUM), and the indexer builds the index again in its own file from the messages,
 * a slice at a time, when it finds that file empty.
 */
export function openSchema(db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE')
  try {
    db.exec(
      'DROP TABLE IF EXISTS message_terms; DROP TABLE IF EXISTS search_indexed; DROP TABLE IF EXISTS message_search; DROP TABLE IF EXISTS search_chats; DROP TABLE IF EXISTS search_version;',
    )
    db.exec(SCHEMA)
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
