import type { DatabaseSync } from 'node:sqlite'
import type { StoredMessage } from './message-store.ts'
import { SEARCH_TERMS_VERSION, type SearchQuery } from './search-terms.ts'

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
 * 32 bits and the seq in the low 32, newest first in a chat's range. Each token is a term with
 * its chat's tag in front (chatTag, 6 characters): a chat's words are FTS5 terms of their own,
 * so a search reads only its chat's lists, and a prefix query ("pin"*) merges the lists of the
 * chat's words that start with "pin", not of every chat's. Without the tag, a one-letter prefix
 * merged a twenty-sixth of the whole index: 110–270 ms on a 1 M message index, on the thread
 * that serves every client; with it 0.05 ms in a chat of 100 messages, 7 ms in one of 100,000.
 * The price: a word used in many chats is that many terms, 4–6 µs more per message written when
 * chats repeat the same few words, and up to twice the space (docs/decisions.md). The terms are
 * pre-segmented and joined by spaces: the 'ascii' tokenizer only splits them there (a term
 * holds letters, digits and marks only, none of ASCII's separators, and every non-ASCII
 * character is a token character to it). detail=none: a search asks for messages holding every
 * word, never for positions or phrases. search_chats.indexed is the seq up to which every
 * message of the chat has its terms; what a crash left behind the mark is indexed again when
 * the writer starts. search_version names what the index holds (see openSchema).
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
CREATE TABLE IF NOT EXISTS search_version (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  terms INTEGER NOT NULL,
  layout INTEGER NOT NULL
);
`

/**
 * How message_search's tokens are made: 1, the terms alone (before search_version existed);
 * 2, each behind its chat's tag. Another layout in a file means its index is built again.
 */
export const SEARCH_LAYOUT = 2

/**
 * A chat's tag in its tokens: its number (search_chats.num, below 2³¹) in base 36, 6 digits
 * wide, so that the term after it needs no separator (the 'ascii' tokenizer would split at one).
 */
export function chatTag(num: number): string {
  return num.toString(36).padStart(6, '0')
}

/** Search terms of a message of chat number num as message_search stores them: tagged, joined by spaces. */
export function searchDocument(num: number, terms: readonly string[]): string {
  const tag = chatTag(num)
  return tag + terms.join(` ${tag}`)
}

/**
 * An FTS5 query for messages of chat number num holding every whole term and a term starting
 * with the prefix: `"00002aa" "00002ab" "00002apre"*` (an implicit AND; `*` after a string makes
 * its last token a prefix). Each term is a string, so that one that is an FTS5 keyword (AND, OR,
 * NOT, NEAR) is a word; terms hold letters, digits and marks only (search-terms.ts), a quote
 * would be doubled all the same. A prefix of a token's UTF-8 bytes is a prefix of its characters.
 */
export function searchQuery(num: number, q: SearchQuery): string {
  const tag = chatTag(num)
  const quote = (t: string) => `"${tag}${t.replaceAll('"', '""')}"`
  const parts = q.whole.map(quote)
  if (q.prefix !== null) parts.push(`${quote(q.prefix)}*`)
  return parts.join(' ')
}

/**
 * Creates or upgrades the schema in one transaction. A file written before message_search
 * existed kept its search terms in message_terms rows: those go. A file whose index holds the
 * terms of another SEARCH_TERMS_VERSION or SEARCH_LAYOUT (or of none: search_version came with
 * word segmentation) gets an empty message_search and every chat's mark back to 0, in the same
 * transaction. Either way the writer indexes every message again when it starts, a slice at a
 * time between other writes (sqlite-message-writer.ts); a search in a chat not indexed yet has
 * its chat indexed first.
 */
export function openSchema(db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE')
  try {
    db.exec('DROP TABLE IF EXISTS message_terms; DROP TABLE IF EXISTS search_indexed;')
    db.exec(SCHEMA)
    const row = db.prepare('SELECT terms, layout FROM search_version').get() as
      | { terms: number; layout: number }
      | undefined
    if (row?.terms !== SEARCH_TERMS_VERSION || row.layout !== SEARCH_LAYOUT) {
      db.exec('DROP TABLE message_search; UPDATE search_chats SET indexed = 0;')
      db.exec(SCHEMA)
      db.prepare(
        `INSERT INTO search_version (one, terms, layout) VALUES (1, ?, ?)
         ON CONFLICT (one) DO UPDATE SET terms = excluded.terms, layout = excluded.layout`,
      ).run(SEARCH_TERMS_VERSION, SEARCH_LAYOUT)
    }
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
