/**
 * The message store: one interface, one SQLite store (the embedded default) and one MongoDB
 * store, held to the same contract by test/contract/message-store.contract.ts.
 */

export interface NewMessage {
  chatId: string
  senderId: string
  deviceId: string
  /** The sender's own id for the message; a second append with it returns the first. */
  clientMsgId: string
  kind: 'text' | 'event'
  /** Searchable text; null for events and media-only messages. */
  text: string | null
  /** The rest of the payload (media ids, reply-to, event details), stored as JSON. */
  body: Record<string, unknown>
}

export interface StoredMessage extends NewMessage {
  /** Per-chat sequence number: 1, 2, 3… in the order the store accepted the messages. */
  seq: number
  /** Server time of acceptance, ms since the epoch. */
  at: number
  editedAt: number | null
  /**
   * Set when the sender deleted it for everyone; text and body are then cleared, except
   * `body.hiddenFrom` (services/blocks/hidden.ts), so a tombstone stays hidden from whom the
   * message was.
   */
  deletedAt: number | null
}

export interface AppendResult {
  message: StoredMessage
  /** True when the clientMsgId was seen before and nothing new was stored. */
  duplicate: boolean
}

export interface MessageStore {
  /** Durable when it resolves: a crash after this loses nothing. */
  append(m: NewMessage, at?: number): Promise<AppendResult>
  /** Messages with seq > afterSeq, ascending (sync). */
  after(chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]>
  /** Messages with seq < beforeSeq (or the newest when null), newest first (history pages). */
  before(chatId: string, beforeSeq: number | null, limit: number): Promise<StoredMessage[]>
  get(chatId: string, seq: number): Promise<StoredMessage | null>
  /** Replaces the text of a live message; null when there is no such message. */
  edit(chatId: string, seq: number, text: string, at: number): Promise<StoredMessage | null>
  /**
   * Clears text and body (all but `body.hiddenFrom`) and marks the message deleted; the row
   * stays as a tombstone.
   */
  tombstone(chatId: string, seq: number, at: number): Promise<StoredMessage | null>
  /**
   * Live messages of the chat holding every word of the query, newest first, at most limit.
   * Words are those of search-terms.ts in the query and in the texts alike: segmented (Chinese,
   * Japanese and Thai too), insensitive to case, width and optional marks; the last word matches
   * as a prefix unless the query ends outside a word ("pin" finds "pineapple", "pin " does not).
   * A query without words finds nothing.
   */
  search(chatId: string, query: string, limit: number): Promise<StoredMessage[]>
  /**
   * Live text messages after a seq that someone other than userId sent and that are not hidden
   * from userId (`body.hiddenFrom`, services/blocks/hidden.ts): the unread count.
   */
  countUnread(chatId: string, afterSeq: number, userId: string): Promise<number>
  /** Distinct senders of the messages with fromSeq < seq <= toSeq, to address receipts. */
  sendersBetween(chatId: string, fromSeq: number, toSeq: number): Promise<string[]>
  /** The highest seq of a chat, 0 when it has none. */
  lastSeq(chatId: string): Promise<number>
  /**
   * The highest seq of the chat among its messages accepted before `at` (ms since the epoch;
   * a message accepted exactly at `at` is not before it), 0 when there is none: where a session
   * that began at `at` starts reading the chat.
   */
  seqBefore(chatId: string, at: number): Promise<number>
  /**
   * Messages with seq <= uptoSeq edited or deleted at or after `since` (ms), ascending by seq, at
   * most limit: what a device that had them and was away has not seen change (a change in the
   * same ms as the device left is included: sending it twice does no harm, missing it would).
   */
  changedSince(chatId: string, uptoSeq: number, since: number, limit: number): Promise<StoredMessage[]>
  /**
   * The text messages (kind 'text', live and tombstones alike; events excluded) that senderId
   * sent in the chat with seq > afterSeq, ascending by seq, at most limit: a page of a user's
   * export. Pages by passing the last seq of a page as the next afterSeq. Reads the chat's rows
   * (no index by sender): a user's export walks only the chats they were in.
   */
  sentBy(chatId: string, senderId: string, afterSeq: number, limit: number): Promise<StoredMessage[]>
  /**
   * Erases up to limit of senderId's messages of the chat not erased yet, text and events
   * alike, oldest first: text null, body {} (but `body.hiddenFrom`, as tombstone keeps it),
   * deviceId '', clientMsgId `erased:<seq>` (no user content, still unique per chat and
   * sender), deletedAt set when null (kept when set), and the message's search terms removed.
   * senderId, seq, kind, at and editedAt stay: the seq keeps its author's id (docs/decisions.md,
   * "Erasing a user in the stores"). An erased message is one whose deviceId is ''.
   *
   * Returns how many it erased (on MongoDB, one more for a message whose own clientMsgId was the
   * marker of one erased: it is erased first, to free the marker); 0 means none is left.
   * Idempotent: safe to repeat after a crash; a message already erased is not counted again. On
   * SQLite each call is one transaction on the writer thread. The erased content may linger in
   * the WAL or old FTS5 segments until purgeErased.
   */
  eraseSender(chatId: string, senderId: string, limit: number): Promise<number>
  /**
   * Makes what eraseSender (and edit, tombstone, deleteOlderThan) removed unrecoverable from the
   * store's files. SQLite: every connection that writes has `secure_delete` on from open (freed
   * space is zeroed as it is freed); this merges the search index into one segment
   * (FTS5 'optimize'), which drops the deleted terms that older segments still held, and
   * checkpoints the WAL with TRUNCATE so no old page version is left in it. Cost: 'optimize'
   * rewrites the whole search index (docs/decisions.md gives a measure). A reader holding a
   * snapshot open may keep the checkpoint from truncating; it is retried until it does, then
   * rejects. MongoDB: nothing beyond the updates, which replace the documents; what the
   * server's own storage (WiredTiger, FerretDB's backend) keeps of old versions is the
   * operator's to compact (docs/decisions.md, "Erasing a user in the stores").
   */
  purgeErased(): Promise<void>
  /** Removes messages accepted before the cutoff; returns how many. */
  deleteOlderThan(cutoff: number): Promise<number>
  close(): Promise<void>
}
