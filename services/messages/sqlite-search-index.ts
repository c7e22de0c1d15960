import type { DatabaseSync } from 'node:sqlite'
import { SEARCH_TERMS_VERSION, type SearchQuery } from './search-terms.ts'

/**
 * The search index's own file (`messages-search.db` beside `messages.db`): its tables, its path,
 * and how a message's terms and a query become FTS5 text. Written only by the indexer thread
 * (sqlite-message-indexer.ts), read by the main thread's connection, which attaches it.
 *
 * Search is an FTS5 index of each message's searchTerms (message_search). FTS5 because a terms
 * commit writes one new segment of sorted term lists, where a B-tree row per chat, term and
 * message dirtied a page per chat and word: the search index went from about 12 µs of CPU per
 * message to a few (docs/performance.md). Its rowid is the chat's number (search_chats.num) in
 * the high 32 bits and the seq in the low 32, newest first in a chat's range. Each token is a
 * term with its chat's tag in front (chatTag, 6 characters): a chat's words are FTS5 terms of
 * their own, so a search reads only its chat's lists, and a prefix query ("pin"*) merges the
 * lists of the chat's words that start with "pin", not of every chat's. Without the tag, a
 * one-letter prefix merged a twenty-sixth of the whole index: 110–270 ms on a 1 M message index,
 * on the thread that serves every client; with it 0.05 ms in a chat of 100 messages, 7 ms in one
 * of 100,000. The price: a word used in many chats is that many terms, 4–6 µs more per message
 * written when chats repeat the same few words, and up to twice the space (docs/decisions.md).
 * The terms are pre-segmented and joined by spaces: the 'ascii' tokenizer only splits them there
 * (a term holds letters, digits and marks only, none of ASCII's separators, and every non-ASCII
 * character is a token character to it). detail=none: a search asks for messages holding every
 * word, never for positions or phrases.
 *
 * search_chats.indexed is the seq up to which every message of the chat has its terms: the
 * indexer moves it in the transaction that writes them, so a crash (or a power cut: this file
 * is never synced on commit) undoes both, and the indexer, at start, indexes again what is
 * behind each mark, reading messages.db. search_version names what the index holds (see
 * openSearchSchema).
 */
export const SEARCH_SCHEMA = `
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
 * The search index file of the messages file at `path`: `x/messages.db` → `x/messages-search.db`
 * (a name without `.db` gets `-search.db` appended). Backups and erasure treat it as part of
 * the message store.
 */
export function searchIndexPath(path: string): string {
  return path.endsWith('.db') ? `${path.slice(0, -3)}-search.db` : `${path}-search.db`
}

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
 * Opens the index file's connection settings and schema, in one transaction: WAL,
 * synchronous=NORMAL (terms and marks may be undone by a power cut, never made wrong), and
 * secure_delete, so that the terms of an erased or edited message leave no copy in free pages
 * (purgeErased merges the segments and truncates the WAL). A file whose index holds the terms of
 * another SEARCH_TERMS_VERSION or SEARCH_LAYOUT (or of none) gets an empty message_search and
 * every chat's mark back to 0: the indexer indexes every message again when it starts, a slice
 * at a time between other work, and a search in a chat not indexed yet has its chat indexed
 * first.
 *
 * @param db a read-write connection to searchIndexPath(messages file)
 */
export function openSearchSchema(db: DatabaseSync): void {
  db.exec(
    'PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON;',
  )
  db.exec('BEGIN IMMEDIATE')
  try {
    db.exec(SEARCH_SCHEMA)
    const row = db.prepare('SELECT terms, layout FROM search_version').get() as
      | { terms: number; layout: number }
      | undefined
    if (row?.terms !== SEARCH_TERMS_VERSION || row.layout !== SEARCH_LAYOUT) {
      db.exec('DROP TABLE message_search; UPDATE search_chats SET indexed = 0;')
      db.exec(SEARCH_SCHEMA)
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
