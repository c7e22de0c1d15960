import { DatabaseSync } from 'node:sqlite'
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { inTransaction } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import { searchTerms } from './search-terms.ts'
import { openSearchSchema, searchDocument } from './sqlite-search-index.ts'
import { answerRequests } from './worker-requests.ts'

/**
 * The search indexer: the one connection that writes the search index file
 * (sqlite-search-index.ts), on a thread of its own, so that an FTS5 commit (3–10 ms for the
 * ~280 messages a terms commit holds at 5,000 msg/s) never holds up an append on the writer
 * thread, which waits only for its own fsync.
 *
 * The message writer (sqlite-message-writer.ts) posts what its commits changed (IndexUpdate)
 * over a MessagePort of their own: the main thread carries none of it. The writer gathers new
 * messages for up to 50 ms (or 1,024 of them) before it posts them; edits and deletes go at once,
 * after what gathered before them. What has come by the end of an event-loop turn here is written
 * in one transaction, in the order it came, the chats' marks (search_chats.indexed) moved in the
 * same transaction. The file is never synced on commit: a crash or a power cut undoes terms and
 * marks together, and the catch-up at start indexes, from messages.db (a read-only connection),
 * what is behind each mark, a slice at a time between other work.
 *
 * Edits and deletes are logged in messages.db (search_changes) in the writer's transaction and
 * carry the log row's id: this thread commits them with synchronous=FULL, then tells the writer
 * the last id its file holds ({ applied }), and the writer deletes those rows. At start, and
 * when the writer or this thread was started again, the rows left are applied again before any
 * request is served, so a crash between the two files' commits leaves no old words here.
 *
 * Requests from the main thread (IndexRequest) first take every update the writer has posted so
 * far (receiveMessageOnPort). 'indexed' (a search's handshake) then reads the chat's last seq
 * from messages.db and indexes from there whatever has not arrived yet (new messages the writer
 * still gathers, or that are in flight, are skipped when they arrive: their seqs are behind the
 * mark by then).
 */

/** What the message writer tells the indexer, in commit order. */
export type IndexUpdate =
  /** New messages: rows is flat, (chatId, seq, text or null) per message, per chat in seq order. */
  | { op: 'add'; rows: Array<string | number | null> }
  /**
   * A message's text changed: its old terms go, the new text's come. change is the
   * search_changes id the writer logged it under (messages.db), in the same transaction.
   */
  | { op: 'edit'; chatId: string; seq: number; text: string; change: number }
  /** Messages deleted, tombstoned or erased: their terms go. change as for 'edit'. */
  | { op: 'unterm'; chatId: string; seqs: number[]; change: number }
  /** The writer's first update to an indexer started again: apply search_changes again. */
  | { op: 'reapply' }

/** What the main thread asks of the indexer; every one but 'writer' gets an IndexReply. */
export type IndexRequest =
  /** Answers once every message of the chat stored so far has its terms. */
  | { id: number; op: 'indexed'; chatId: string }
  /**
   * Answers once every update the writer posted before this request is written (an edit waits
   * for it). With `change` (an edit's search_changes id), also once this file holds that change:
   * an update the writer posted to an indexer that died since went nowhere, and the log is
   * applied again here for it.
   */
  | { id: number; op: 'flush'; change?: number }
  /** Merges the index into one segment, rebuilds the file and truncates its WAL (purgeErased). */
  | { id: number; op: 'purge' }
  | { id: number; op: 'close' }
  /** A port from a message writer started again; no reply. */
  | { id: 0; op: 'writer'; port: MessagePort }

export type IndexReply = { id: number; ok: true } | { id: number; ok: false; message: string; code?: string }

/** How long, in ms, updates wait before another try when their transaction failed. */
const RETRY_MS = 50
/**
 * Messages indexed per transaction by the catch-up at start. At 22–25 µs a message (a mix of
 * ASCII, German, Chinese and Japanese texts) a slice takes about 25 ms, during which a search's
 * handshake waits.
 */
const CATCH_UP_SLICE = 1000
/** Chats whose number is kept in memory; past this many the map starts over (one lookup each to reload). */
const MAX_KNOWN_CHATS = 100_000

const parent = parentPort
if (!parent) throw new Error('sqlite-message-indexer runs as a worker thread')

const data = workerData as { path: string; indexPath: string; writer: MessagePort }

const db = new DatabaseSync(data.indexPath)
openSearchSchema(db)
// FTS5's segment merges dirty many pages per transaction.
db.exec('PRAGMA cache_size = -32768')
// messages.db, read only: the catch-up reads texts and last seqs from it.
const messages = new DatabaseSync(data.path, { readOnly: true })
messages.exec('PRAGMA busy_timeout = 5000')

const statements = {
  // A message's FTS5 row: the chat's number in the high 32 bits of the rowid, the seq below.
  terms: db.prepare('INSERT INTO message_search (rowid, terms) VALUES ((?1 << 32) | ?2, ?3)'),
  // Inserting a rowid twice would leave the first terms behind in the index, matched forever:
  // where a message may have terms already, they go first.
  unterm: db.prepare('DELETE FROM message_search WHERE rowid = (?1 << 32) | ?2'),
  chatNum: db.prepare('SELECT num FROM search_chats WHERE chat_id = ?'),
  newChatNum: db.prepare('INSERT INTO search_chats (chat_id) VALUES (?) RETURNING num'),
  mark: db.prepare('SELECT indexed FROM search_chats WHERE num = ?'),
  setIndexed: db.prepare('UPDATE search_chats SET indexed = max(indexed, ?) WHERE num = ?'),
  indexedOf: db.prepare(
    'SELECT coalesce((SELECT indexed FROM search_chats WHERE chat_id = ?), 0) AS indexed',
  ),
  marks: db.prepare('SELECT chat_id, indexed FROM search_chats'),
  optimize: db.prepare("INSERT INTO message_search (message_search) VALUES ('optimize')"),
  lastOf: messages.prepare('SELECT coalesce((SELECT last FROM chat_seq WHERE chat_id = ?), 0) AS last'),
  lasts: messages.prepare('SELECT chat_id, last FROM chat_seq'),
  unindexed: messages.prepare('SELECT seq, text FROM messages WHERE chat_id = ? AND seq > ? ORDER BY seq'),
  changes: messages.prepare('SELECT id, chat_id, from_seq, to_seq FROM search_changes ORDER BY id'),
  textsIn: messages.prepare('SELECT seq, text FROM messages WHERE chat_id = ? AND seq BETWEEN ? AND ?'),
}

/**
 * The search_changes id of the last edit or unterm update this file holds (committed), and the
 * highest one the writer was told of. Updates come in the order of their ids; a re-application
 * (reapplyChanges) moves neither: an update posted before it may still be on its way and write
 * its message's older state, and only the updates after it bring each message to its last state.
 * So the writer deletes log rows only up to an update this file holds, and a crash at any point
 * leaves the rows that a re-application needs.
 */
let appliedChange = 0
let ackedChange = 0

/**
 * Applies every row of messages.db's search_changes log again, inside the caller's transaction:
 * each logged seq loses its terms, and gets those of its current text if it is at or behind its
 * chat's mark (past it, the catch-up or the message's 'add' update writes them). Idempotent:
 * the messages as they stand now are what the index then holds.
 */
function reapplyChanges(): void {
  const marked = new Map<string, { num: number; indexed: number } | null>()
  for (const row of statements.changes.iterate() as Iterable<{
    id: number
    chat_id: string
    from_seq: number
    to_seq: number
  }>) {
    let chat = marked.get(row.chat_id)
    if (chat === undefined) {
      const num = knownChatNum(row.chat_id)
      // A chat without a number has no terms, and is indexed from its messages when it gets one.
      chat =
        num === undefined ? null : { num, indexed: (statements.mark.get(num) as { indexed: number }).indexed }
      marked.set(row.chat_id, chat)
    }
    if (!chat) continue
    for (let seq = row.from_seq; seq <= row.to_seq; seq++) statements.unterm.run(chat.num, seq)
    const upto = Math.min(row.to_seq, chat.indexed)
    if (upto < row.from_seq) continue
    for (const m of statements.textsIn.iterate(row.chat_id, row.from_seq, upto) as Iterable<{
      seq: number
      text: string | null
    }>)
      addTerms(chat.num, m.seq, m.text)
  }
}

/**
 * Commits work with synchronous=FULL when it applies logged changes: the writer deletes the log
 * rows this file is said to hold, so a power cut must not undo them here.
 */
function indexingChanges<T>(work: () => T, durable: boolean): T {
  if (!durable) return indexing(work)
  db.exec('PRAGMA synchronous = FULL')
  try {
    return indexing(work)
  } finally {
    db.exec('PRAGMA synchronous = NORMAL')
  }
}

/** Tells the writers the highest search_changes id this file holds, once it is higher. */
function acknowledge(): void {
  if (appliedChange <= ackedChange) return
  ackedChange = appliedChange
  for (const writer of writers) writer.postMessage({ applied: ackedChange })
}

/**
 * Each chat's number in message_search rowids (search_chats.num), loaded or given on first use.
 * Only numbers committed are kept: a transaction that fails forgets them all.
 */
const chatNums = new Map<string, number>()

/** The chat's number, given it (in the running transaction) if it has none. */
function chatNum(chatId: string): number {
  let num = chatNums.get(chatId)
  if (num === undefined) {
    const row = (statements.chatNum.get(chatId) ?? statements.newChatNum.get(chatId)) as { num: number }
    num = row.num
    if (chatNums.size >= MAX_KNOWN_CHATS) chatNums.clear()
    chatNums.set(chatId, num)
  }
  return num
}

/** The chat's number if it has one, without giving one. */
function knownChatNum(chatId: string): number | undefined {
  return chatNums.get(chatId) ?? (statements.chatNum.get(chatId) as { num: number } | undefined)?.num
}

/** Runs work in a transaction; the chat numbers given in it are forgotten if it fails. */
function indexing<T>(work: () => T): T {
  try {
    return inTransaction(db, work)
  } catch (err) {
    chatNums.clear()
    throw err
  }
}

/** Writes the terms of a message that has none in message_search yet (see statements.unterm). */
function addTerms(num: number, seq: number, text: string | null): void {
  const terms = searchTerms(text)
  if (terms.length) statements.terms.run(num, seq, searchDocument(num, terms))
}

/** Updates received and not written yet, in the order they came. */
let pending: IndexUpdate[] = []
let indexTimer: NodeJS.Timeout | null = null
let soon = false

function received(update: IndexUpdate): void {
  if (closing) return
  pending.push(update)
  // The writer gathered the new messages already (up to 50 ms or 1,024 of them): whatever has
  // come by the end of this event-loop turn is written in one transaction.
  if (!soon) {
    soon = true
    setImmediate(indexPendingQuietly)
  }
}

/**
 * Writes every pending update in one transaction, in order. A new message whose seq is at or
 * behind its chat's mark is skipped (a catch-up read it from messages.db already); the mark
 * moves over the run of seqs that follow it without a gap. Past a gap (messages another
 * connection wrote, or updates lost with an indexer that died) a message gets its terms (its
 * old ones deleted first) but the mark stays, and a catch-up indexes the gap.
 */
function indexPending(): void {
  if (indexTimer) {
    clearTimeout(indexTimer)
    indexTimer = null
  }
  if (pending.length === 0) return
  const marks = new Map<string, { num: number; to: number; from: number; gap: boolean }>()
  const markOf = (chatId: string) => {
    let mark = marks.get(chatId)
    if (!mark) {
      const num = chatNum(chatId)
      const indexed = (statements.mark.get(num) as { indexed: number }).indexed
      mark = { num, to: indexed, from: indexed, gap: false }
      marks.set(chatId, mark)
    }
    return mark
  }
  let durable = false
  for (const update of pending) if (update.op !== 'add') durable = true
  let top = appliedChange
  indexingChanges(() => {
    for (const update of pending) {
      if (update.op === 'reapply') {
        reapplyChanges()
        continue
      }
      if (update.op !== 'add') top = Math.max(top, update.change)
      if (update.op === 'add') {
        const { rows } = update
        for (let o = 0; o < rows.length; o += 3) {
          const mark = markOf(rows[o] as string)
          const seq = rows[o + 1] as number
          if (seq <= mark.to) continue
          if (!mark.gap && seq === mark.to + 1) mark.to = seq
          else {
            mark.gap = true
            statements.unterm.run(mark.num, seq)
          }
          addTerms(mark.num, seq, rows[o + 2] as string | null)
        }
      } else if (update.op === 'edit') {
        // Whether or not the message is behind the mark: a later catch-up would write the same.
        const num = chatNum(update.chatId)
        statements.unterm.run(num, update.seq)
        addTerms(num, update.seq, update.text)
      } else {
        const num = knownChatNum(update.chatId)
        if (num !== undefined) for (const seq of update.seqs) statements.unterm.run(num, seq)
      }
    }
    for (const { num, from, to } of marks.values()) if (to > from) statements.setIndexed.run(to, num)
  }, durable)
  pending = []
  appliedChange = top
  acknowledge()
}

/** On a timer, nobody waits for the answer: a failure leaves the updates pending for the next try. */
function indexPendingQuietly(): void {
  soon = false
  try {
    indexPending()
  } catch {
    indexTimer ??= setTimeout(indexPendingQuietly, RETRY_MS)
  }
}

/**
 * Writes the terms of the chat's messages after its mark, read from messages.db: what a crash,
 * another connection or a new SEARCH_TERMS_VERSION left unindexed, at most `limit` of them.
 * The mark then stands at the last one indexed, or at the chat's last seq once none is left.
 * Runs inside the caller's transaction; returns how many messages it indexed (fewer than
 * limit: the chat is indexed up to its last seq).
 */
function catchUpChat(chatId: string, limit: number): number {
  const { indexed } = statements.indexedOf.get(chatId) as { indexed: number }
  const { last } = statements.lastOf.get(chatId) as { last: number }
  if (indexed >= last) return 0
  const num = chatNum(chatId)
  let count = 0
  let upto = indexed
  for (const row of statements.unindexed.iterate(chatId, indexed)) {
    if (count === limit) {
      statements.setIndexed.run(upto, num)
      return count
    }
    const { seq, text } = row as { seq: number; text: string | null }
    // Past a gap, messages may have terms already (see indexPending).
    statements.unterm.run(num, seq)
    addTerms(num, seq, text)
    upto = seq
    count++
  }
  statements.setIndexed.run(Math.max(upto, last), num)
  return count
}

/** The ports from the message writers (one live at a time): updates come in, acknowledgements go out. */
const writers = new Set<MessagePort>()

function listen(writer: MessagePort): void {
  writers.add(writer)
  writer.on('message', received)
  writer.on('close', () => writers.delete(writer))
}

function drainWriters(): void {
  for (const writer of writers) {
    for (let m = receiveMessageOnPort(writer); m; m = receiveMessageOnPort(writer))
      received(m.message as IndexUpdate)
  }
}

let closing = false

/**
 * Indexes every chat behind its mark (a crash's leftovers, a new index file, a new
 * SEARCH_TERMS_VERSION), CATCH_UP_SLICE messages per transaction, other work done between them.
 * A failure stops it; a search in a chat still behind asks for that chat once more.
 */
async function catchUpAtStart(): Promise<void> {
  const marks = new Map<string, number>()
  for (const r of statements.marks.iterate() as Iterable<{ chat_id: string; indexed: number }>)
    marks.set(r.chat_id, r.indexed)
  const chats: string[] = []
  for (const r of statements.lasts.iterate() as Iterable<{ chat_id: string; last: number }>)
    if (r.last > (marks.get(r.chat_id) ?? 0)) chats.push(r.chat_id)
  marks.clear()
  let next = 0
  while (next < chats.length && !closing) {
    // Updates received first: a slice must not index seqs whose pending terms follow it.
    drainWriters()
    indexPending()
    indexing(() => {
      let budget = CATCH_UP_SLICE
      while (next < chats.length && budget > 0) {
        const done = catchUpChat(chats[next] as string, budget)
        if (done < budget) next++
        budget -= done
      }
    })
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** The terms of every message of the chat committed before this call are written once it returns. */
function indexed(chatId: string): void {
  indexPending()
  indexing(() => catchUpChat(chatId, Number.POSITIVE_INFINITY))
}

/**
 * Merges the index into one segment, dropping the terms of deleted rows that older segments
 * held; rebuilds the file (VACUUM); copies the WAL into it and truncates it: no erased word is
 * left in the index file, its -wal or -shm.
 */
async function purge(): Promise<void> {
  indexPending()
  indexing(() => statements.optimize.run())
  db.exec('VACUUM')
  await truncateWal(db)
}

function handle(req: IndexRequest): IndexReply | Promise<IndexReply> | null {
  if (req.op === 'writer') {
    listen(req.port)
    // A writer that died may have committed changes it never posted: the log has them. Its new
    // messages of the last 50 ms went too: the marks of their chats stay behind, and the
    // catch-up indexes them from messages.db (a search in such a chat asks for it sooner).
    received({ op: 'reapply' })
    catchUpAtStart().catch(() => {})
    return null
  }
  // What the writer committed before the main thread asked is taken first.
  drainWriters()
  switch (req.op) {
    case 'indexed':
      indexed(req.chatId)
      return { id: req.id, ok: true }
    case 'flush':
      indexPending()
      if (req.change !== undefined && req.change > appliedChange) {
        // Its update was posted to the indexer that died (this thread's own re-application at
        // start may have run before its commit): the log holds it.
        received({ op: 'reapply' })
        indexPending()
      }
      return { id: req.id, ok: true }
    case 'purge':
      return purge().then(() => ({ id: req.id, ok: true }))
    case 'close':
      closing = true
      indexPending()
      messages.close()
      db.close()
      return { id: req.id, ok: true }
  }
}

listen(data.writer)
// Changes messages.db committed and this file may not hold (a crash between the two commits)
// are applied again before any request is served: a purge after a resumed erase finds no terms
// of what was erased before the crash.
received({ op: 'reapply' })
indexPendingQuietly()
catchUpAtStart().catch(() => {})

answerRequests(parent, handle)
