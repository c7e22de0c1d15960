import type { DatabaseSync } from 'node:sqlite'
import type { StoredMessage } from './message-store.ts'

/**
 * messages.db's tables, and how a row becomes a message: shared by the reader and the writer thread.
 *
 * messages_at is gone: retention finds old messages per chat on messages_chat_at (every chat
 * with messages has a chat_seq row), and the send path saves a B-tree insert per message.
 * Search is an FTS5 index of each message's searchTerms (message_search), written after the
 * commit that stores the message (sqlite-message-writer.ts). FTS5 because a terms commit then
 * writes one new segment of sorted term lists, where a B-tree row per chat, term and message
 * dirtied a page per chat and word: the search index went from about 12 µs of CPU per message
 * to a few (docs/performance.md). Its rowid is the chat's number (search_chats.num) in the high
 * 32 bits and the seq in the low 32, so a search reads one chat's range of each term's list,
 * newest first. The terms are pre-segmented and joined by spaces: the 'ascii' tokenizer only
 * splits them there (a term holds letters and digits only, and none of ASCII's separators).
 * detail=none: a search asks for messages holding every word, never for positions or phrases.
 * search_chats.indexed is the seq up to which every message of the chat has its terms; what a
 * crash left behind the mark is indexed again when the writer starts.
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
CREATE TABLE IF NOT EXISTS search_chats (
  num INTEGER PRIMARY KEY,
  chat_id TEXT NOT NULL UNIQUE,
  indexed INTEGER NOT NULL DEFAULT 0
);
CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5(
  terms, content = '', contentless_delete = 1, detail = none, tokenize = 'ascii'
);
`

/** Search terms of a message as message_search stores them (sqlite-message-rows.ts, SCHEMA). */
export function searchDocument(terms: readonly string[]): string {
  return terms.join(' ')
}

/**
 * An FTS5 query for messages holding every one of the terms: each quoted, so that a term that
 * is an FTS5 keyword (AND, OR, NOT, NEAR) is a word. Terms hold letters and digits only, never
 * a quote.
 */
export function searchQuery(terms: readonly string[]): string {
  return terms.map((t) => `"${t}"`).join(' ')
}

/**
 * Creates or upgrades the schema in one transaction. A file written before message_search
 * existed kept its search terms in message_terms rows: those go, and its chats start with
 * nothing indexed, so the writer indexes every message again when it starts (about 10 s per
 * million messages, before its first write; searches wait for it).
 */
export function openSchema(db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE')
  try {
    db.exec('DROP TABLE IF EXISTS message_terms; DROP TABLE IF EXISTS search_indexed;')
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
