import { DatabaseSync } from 'node:sqlite'
import { parentPort, workerData } from 'node:worker_threads'
import { inTransaction } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import { searchTerms } from './search-terms.ts'
import { APPEND_FIELDS, type AppendRows, type MessageRow, searchDocument } from './sqlite-message-rows.ts'

/**
 * The one connection that writes messages.db, on its own thread: a commit with
 * synchronous=FULL waits for the disk, and on the main thread that wait stalled every client
 * of the node (bench/). The main thread keeps a read-only connection for queries.
 *
 * An append's commit holds the messages and their chats' new last seqs (chat_seq, once per chat
 * and batch), nothing else. Being the only writer, this thread keeps each chat's last seq in
 * memory and inserts without looking for a duplicate first: the unique index on (chat, sender,
 * clientMsgId) refuses one, and the stored row is returned instead.
 *
 * The search terms of the messages (message_search, an FTS5 index) follow in transactions of
 * their own, many commits' messages at a time: each terms commit adds one FTS5 segment, so the
 * fewer of them, the less is written and merged per message. Their commits skip the fsync
 * (synchronous=NORMAL): a power cut may undo them (never the messages, whose later FULL commit
 * syncs the whole WAL), and then search_chats.indexed, undone with them, sends the writer back over
 * those messages when it starts. A search first asks for the chat's terms ('indexed').
 *
 * At start the writer indexes what is behind the marks (a crash's leftovers, or every message
 * when the index was dropped for a new SEARCH_TERMS_VERSION) in transactions of CATCH_UP_SLICE
 * messages, serving requests between them: appends wait for one slice at most, not the whole
 * index.
 */

export type WriteRequest =
  | { id: number; op: 'append'; rows: AppendRows }
  | { id: number; op: 'indexed'; chatId: string }
  | { id: number; op: 'edit'; chatId: string; seq: number; text: string; at: number }
  | { id: number; op: 'tombstone'; chatId: string; seq: number; at: number }
  | { id: number; op: 'deleteOlderThan'; cutoff: number }
  | { id: number; op: 'eraseSender'; chatId: string; senderId: string; limit: number; at: number }
  | { id: number; op: 'purge' }
  | { id: number; op: 'close' }

/**
 * An append's reply: seqs[i] is the seq given to the i-th message, or 0 when its clientMsgId was
 * stored before; dups holds the stored rows of those, in order. Other writes give `changes`.
 */
export type WriteReply =
  | { id: number; ok: true; seqs?: number[]; dups?: MessageRow[]; changes?: number }
  | { id: number; ok: false; message: string; code?: string }

/**
 * Messages whose terms wait for a terms commit; at this many it happens at once. At 256 per
 * commit the terms cost ~1.5x the CPU per message of 1,024; more saves little, and the commit
 * (~20 ms at 1,024) holds up the appends that arrive meanwhile.
 */
const INDEX_BATCH = 1024
/** How long, in ms, terms may wait for more messages before their commit. */
const INDEX_DELAY_MS = 50
/**
 * Messages indexed per transaction by the catch-up at start. At 22–25 µs a message (a mix of
 * ASCII, German, Chinese and Japanese texts) a slice takes about 25 ms: appends made meanwhile
 * waited 13 ms at the median, where slices of 2,000 made them wait 30.
 */
const CATCH_UP_SLICE = 1000
/**
 * Chats per retention transaction. A chat with nothing to delete costs an index seek, so a slice
 * takes a ms or so, and appends that arrive during a run wait for one slice, not the whole run
 * (~75 ms per 200,000 chats in one transaction).
 */
const RETENTION_CHATS = 1000
/** Chats whose last seq is kept in memory; past this many the map starts over (one lookup each to reload). */
const MAX_KNOWN_CHATS = 100_000
// node:sqlite's extended result codes for a constraint failure.
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555
const SQLITE_CONSTRAINT_UNIQUE = 2067

const port = parentPort
if (!port) throw new Error('sqlite-message-writer runs as a worker thread')

const db = new DatabaseSync((workerData as { path: string }).path)
// Appends to many chats and FTS5's segment merges dirty many pages per transaction: with
// SQLite's default 2 MB cache they spilled to the WAL mid-transaction and were read back.
// secure_delete: what a delete or update frees is zeroed, so erased text (eraseSender) leaves no
// copy in free space; purgeErased deals with the WAL and the search index.
db.exec(
  'PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -32768; PRAGMA secure_delete = ON;',
)

// Prepared once: the append path runs them for every message.
const statements = {
  insert: db.prepare(
    'INSERT INTO messages (chat_id, seq, sender_id, device_id, client_msg_id, kind, text, body, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  ),
  byClientId: db.prepare('SELECT * FROM messages WHERE chat_id = ? AND sender_id = ? AND client_msg_id = ?'),
  // chat_seq is the chat's last seq; max(seq) too, in case another connection (a script seeding
  // history, say) added messages and its counter disagrees.
  lastSeq: db.prepare(
    `SELECT max(coalesce((SELECT last FROM chat_seq WHERE chat_id = ?1), 0),
                coalesce((SELECT max(seq) FROM messages WHERE chat_id = ?1), 0)) AS last`,
  ),
  setLast: db.prepare(
    'INSERT INTO chat_seq (chat_id, last) VALUES (?, ?) ON CONFLICT (chat_id) DO UPDATE SET last = max(last, excluded.last)',
  ),
  // A message's FTS5 row: the chat's number in the high 32 bits of the rowid, the seq below.
  terms: db.prepare('INSERT INTO message_search (rowid, terms) VALUES ((?1 << 32) | ?2, ?3)'),
  // Inserting a rowid twice would leave the first terms behind in the index, matched forever:
  // where a message may have terms already, they go first.
  unterm: db.prepare('DELETE FROM message_search WHERE rowid = (?1 << 32) | ?2'),
  chatNum: db.prepare('SELECT num FROM search_chats WHERE chat_id = ?'),
  newChatNum: db.prepare('INSERT INTO search_chats (chat_id) VALUES (?) RETURNING num'),
  // Moves a chat's mark only from where these messages begin: had another connection added
  // messages below them (and so without terms), the mark stays put and a catch-up indexes those.
  markIndexed: db.prepare('UPDATE search_chats SET indexed = :to WHERE num = :num AND indexed >= :from - 1'),
  setIndexed: db.prepare('UPDATE search_chats SET indexed = max(indexed, ?) WHERE num = ?'),
  indexState: db.prepare(
    `SELECT coalesce((SELECT indexed FROM search_chats WHERE chat_id = ?1), 0) AS indexed,
            coalesce((SELECT last FROM chat_seq WHERE chat_id = ?1), 0) AS last`,
  ),
  unindexed: db.prepare('SELECT seq, text FROM messages WHERE chat_id = ? AND seq > ? ORDER BY seq'),
  behindChats: db.prepare(
    `SELECT c.chat_id FROM chat_seq c LEFT JOIN search_chats i ON i.chat_id = c.chat_id
     WHERE c.last > coalesce(i.indexed, 0)`,
  ),
  edit: db.prepare(
    'UPDATE messages SET text = ?, edited_at = ? WHERE chat_id = ? AND seq = ? AND deleted_at IS NULL',
  ),
  tombstone: db.prepare(
    // body.hiddenFrom stays: a blocker must not see the tombstone of a message hidden from them.
    `UPDATE messages SET text = NULL, deleted_at = ?,
       body = CASE WHEN json_extract(body, '$.hiddenFrom') IS NULL THEN '{}'
                   ELSE json_object('hiddenFrom', json_extract(body, '$.hiddenFrom')) END
     WHERE chat_id = ? AND seq = ? AND deleted_at IS NULL`,
  ),
  // Erasure: a message whose device id is '' is erased (a sent message always has one).
  eraseCandidates: db.prepare(
    "SELECT seq FROM messages WHERE chat_id = ? AND sender_id = ? AND device_id <> '' ORDER BY seq LIMIT ?",
  ),
  // A message of the sender whose clientMsgId is the marker another one is about to take (the
  // sender chose "erased:7") moves aside to a value nobody can guess; it is erased in turn.
  eraseAside: db.prepare(
    `UPDATE messages SET client_msg_id = 'erasing:' || seq || ':' || hex(randomblob(16))
     WHERE chat_id = ?1 AND sender_id = ?2 AND client_msg_id = 'erased:' || CAST(?3 AS INTEGER) AND seq <> ?3`,
  ),
  erase: db.prepare(
    `UPDATE messages SET text = NULL, device_id = '', client_msg_id = 'erased:' || seq,
       deleted_at = coalesce(deleted_at, ?3),
       body = CASE WHEN json_extract(body, '$.hiddenFrom') IS NULL THEN '{}'
                   ELSE json_object('hiddenFrom', json_extract(body, '$.hiddenFrom')) END
     WHERE chat_id = ?1 AND seq = ?2`,
  ),
  optimize: db.prepare("INSERT INTO message_search (message_search) VALUES ('optimize')"),
  // Retention, a chat at a time on messages_chat_at: no index on `at` alone is kept for it.
  chatsAfter: db.prepare('SELECT chat_id FROM chat_seq WHERE chat_id > ? ORDER BY chat_id LIMIT ?'),
  oldOfChat: db.prepare('SELECT seq FROM messages WHERE chat_id = ? AND at < ?'),
  deleteOldOfChat: db.prepare('DELETE FROM messages WHERE chat_id = ? AND at < ?'),
}

/**
 * Each chat's last committed seq, loaded on first use. This connection is the one that appends;
 * messages another one added (a script seeding history) make an insert fail on the primary key,
 * and the chat is read again.
 */
const lastSeqs = new Map<string, number>()

function loadLast(chatId: string): number {
  return (statements.lastSeq.get(chatId) as { last: number }).last
}

/**
 * Each chat's number in message_search rowids (search_chats.num), loaded or given on first use.
 * Only numbers committed are kept: a terms transaction that fails forgets them all.
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

/** Messages committed whose terms are not written yet, in commit order (so per chat in seq order). */
let pendingChats: string[] = []
let pendingSeqs: number[] = []
let pendingTexts: Array<string | null> = []
let indexTimer: NodeJS.Timeout | null = null

/**
 * Every append in the batch shares one transaction: one fsync for all of them (group commit).
 * A message is inserted with the chat's next seq straight away; a clientMsgId stored before
 * fails the unique index, which undoes that statement only, and the stored row is returned.
 */
function append(rows: AppendRows): { seqs: number[]; dups?: MessageRow[] } {
  const { insert, byClientId, setLast } = statements
  const count = rows.length / APPEND_FIELDS
  const seqs = new Array<number>(count)
  const dups: MessageRow[] = []
  // The chats this batch moves, with their new last seq: lastSeqs changes only once committed.
  const moved = new Map<string, number>()
  try {
    inTransaction(db, () => {
      for (let i = 0, o = 0; i < count; i++, o += APPEND_FIELDS) {
        const chatId = rows[o] as string
        let seq = (moved.get(chatId) ?? lastSeqs.get(chatId) ?? loadLast(chatId)) + 1
        for (;;) {
          try {
            insert.run(
              chatId,
              seq,
              rows[o + 1] as string,
              rows[o + 2] as string,
              rows[o + 3] as string,
              rows[o + 4] as string,
              rows[o + 5] as string | null,
              rows[o + 6] as string,
              rows[o + 7] as number,
            )
            moved.set(chatId, seq)
            break
          } catch (err) {
            const code = (err as { errcode?: number }).errcode
            const dup =
              code === SQLITE_CONSTRAINT_UNIQUE
                ? (byClientId.get(chatId, rows[o + 1] as string, rows[o + 3] as string) as unknown as
                    | MessageRow
                    | undefined)
                : undefined
            if (dup) {
              dups.push(dup)
              seq = 0
              break
            }
            // Another connection took this seq: start again after what the table holds now.
            const last = code === SQLITE_CONSTRAINT_PRIMARYKEY ? loadLast(chatId) : 0
            if (last < seq) throw err
            seq = last + 1
          }
        }
        seqs[i] = seq
      }
      for (const [chatId, last] of moved) setLast.run(chatId, last)
    })
  } catch (err) {
    // A failed COMMIT may still have reached the disk: these chats are read again.
    for (const chatId of moved.keys()) lastSeqs.delete(chatId)
    throw err
  }
  if (lastSeqs.size + moved.size > MAX_KNOWN_CHATS) lastSeqs.clear()
  for (const [chatId, last] of moved) lastSeqs.set(chatId, last)
  for (let i = 0, o = 0; i < count; i++, o += APPEND_FIELDS) {
    const seq = seqs[i] as number
    if (seq === 0) continue
    pendingChats.push(rows[o] as string)
    pendingSeqs.push(seq)
    pendingTexts.push(rows[o + 5] as string | null)
  }
  if (pendingSeqs.length >= INDEX_BATCH) setImmediate(indexPendingQuietly)
  else indexTimer ??= setTimeout(indexPendingQuietly, INDEX_DELAY_MS)
  return dups.length ? { seqs, dups } : { seqs }
}

/** A transaction that may be undone by a power cut (not by a crash of the process): no fsync. */
function unsynced<T>(work: () => T): T {
  // exec, not a prepared statement: SQLite applies this pragma when it compiles it.
  db.exec('PRAGMA synchronous = NORMAL')
  try {
    return inTransaction(db, work)
  } catch (err) {
    // Chat numbers given in the transaction are undone with it.
    chatNums.clear()
    throw err
  } finally {
    db.exec('PRAGMA synchronous = FULL')
  }
}

/** Writes the terms of the pending messages and moves their chats' marks, in one commit. */
function indexPending(): void {
  if (indexTimer) {
    clearTimeout(indexTimer)
    indexTimer = null
  }
  const count = pendingSeqs.length
  if (count === 0) return
  // Per chat, the run of seqs from its first pending one without a gap: another connection's
  // messages in a gap have no terms, so the mark stops before them and a catch-up indexes them.
  const marks = new Map<string, { num: number; from: number; to: number; gap: boolean }>()
  unsynced(() => {
    for (let i = 0; i < count; i++) {
      const chatId = pendingChats[i] as string
      const seq = pendingSeqs[i] as number
      let mark = marks.get(chatId)
      if (!mark) {
        mark = { num: chatNum(chatId), from: seq, to: seq, gap: false }
        marks.set(chatId, mark)
      } else if (!mark.gap && seq === mark.to + 1) mark.to = seq
      else mark.gap = true
      // Fresh seqs: nothing of theirs is in the index yet.
      addTerms(mark.num, seq, pendingTexts[i] as string | null)
    }
    for (const { num, from, to } of marks.values()) statements.markIndexed.run({ num, from, to })
  })
  pendingChats = []
  pendingSeqs = []
  pendingTexts = []
}

/** Indexes a message that has no terms in message_search yet (see statements.unterm). */
function addTerms(num: number, seq: number, text: string | null): void {
  const terms = searchTerms(text)
  if (terms.length) statements.terms.run(num, seq, searchDocument(num, terms))
}

/** On a timer, nobody waits for the answer: a failure leaves the terms pending for the next try. */
function indexPendingQuietly(): void {
  try {
    indexPending()
  } catch {
    indexTimer ??= setTimeout(indexPendingQuietly, INDEX_DELAY_MS)
  }
}

/**
 * Writes the terms of the chat's messages after its mark, read from the table: what a crash,
 * another connection or a new SEARCH_TERMS_VERSION left unindexed, at most `limit` of them.
 * The mark then stands at the last one indexed, or at the chat's last seq once none is left.
 * Runs inside the caller's transaction; returns how many messages it indexed (fewer than
 * limit: the chat is indexed up to its last seq).
 */
function catchUpChat(chatId: string, limit: number): number {
  const { indexed, last } = statements.indexState.get(chatId) as { indexed: number; last: number }
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
    // Past a gap another connection left, this writer's own messages have terms already.
    statements.unterm.run(num, seq)
    addTerms(num, seq, text)
    upto = seq
    count++
  }
  statements.setIndexed.run(Math.max(upto, last), num)
  return count
}

/** Indexes every message of the chats stored so far, in one transaction. */
function catchUp(chatIds: string[]): void {
  unsynced(() => {
    for (const chatId of chatIds) catchUpChat(chatId, Number.POSITIVE_INFINITY)
  })
}

let closing = false

/**
 * Indexes every chat behind its mark, CATCH_UP_SLICE messages per transaction, other requests
 * served between them. A failure stops it: appends still go on (a writer that threw here would
 * be started again and again), and a search in a chat still behind asks for it once more.
 */
async function catchUpAtStart(): Promise<void> {
  const chats = (statements.behindChats.all() as unknown as Array<{ chat_id: string }>).map((r) => r.chat_id)
  let next = 0
  while (next < chats.length && !closing) {
    // Terms pending for appends made meanwhile go first: the slice may index those seqs, and
    // pending terms written after it would put them in the index twice.
    indexPending()
    unsynced(() => {
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

/** The terms of every message stored in the chat are written once this returns. */
function indexed(chatId: string): void {
  indexPending()
  const { indexed, last } = statements.indexState.get(chatId) as { indexed: number; last: number }
  if (indexed < last) catchUp([chatId])
}

/**
 * Deletes the messages accepted before cutoff (ms since the epoch) and their search terms; returns
 * how many went. A slice of chats per transaction, other requests served in between: messages
 * older than the cutoff are not written any more, so the slices need not be one snapshot.
 */
async function deleteOlderThan(cutoff: number): Promise<number> {
  let removed = 0
  let after = ''
  for (;;) {
    // Pending terms of messages about to go would outlive them.
    indexPending()
    const chats = statements.chatsAfter.all(after, RETENTION_CHATS) as unknown as Array<{ chat_id: string }>
    removed += inTransaction(db, () => {
      let n = 0
      for (const { chat_id } of chats) {
        const old = statements.oldOfChat.all(chat_id, cutoff) as unknown as Array<{ seq: number }>
        if (old.length === 0) continue
        const num = knownChatNum(chat_id)
        if (num !== undefined) for (const { seq } of old) statements.unterm.run(num, seq)
        n += Number(statements.deleteOldOfChat.run(chat_id, cutoff).changes)
      }
      return n
    })
    const last = chats.at(-1)
    if (!last || chats.length < RETENTION_CHATS) return removed
    after = last.chat_id
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/**
 * Erases up to limit of the sender's messages of the chat not erased yet, oldest first, with
 * their search terms, in one transaction (see MessageStore.eraseSender); returns how many.
 */
function eraseSender(chatId: string, senderId: string, limit: number, at: number): number {
  // Pending terms hold the text as sent: written after the erase, they would bring it back.
  indexPending()
  return inTransaction(db, () => {
    const rows = statements.eraseCandidates.all(chatId, senderId, limit) as unknown as Array<{ seq: number }>
    const num = knownChatNum(chatId)
    for (const { seq } of rows) {
      statements.eraseAside.run(chatId, senderId, seq)
      statements.erase.run(chatId, seq, at)
      if (num !== undefined) statements.unterm.run(num, seq)
    }
    return rows.length
  })
}

/**
 * Merges the search index into one segment, dropping the terms of deleted rows that older
 * segments held; rebuilds the file (VACUUM) from its live rows; then copies the WAL into the file
 * and truncates it: no erased content is left in messages.db, -wal or -shm. secure_delete alone
 * left fragments of erased texts in the unused space of live pages after a crash mid-erase with
 * long messages (an operator's trial); VACUUM writes each page anew. It costs about 6 ms per MB
 * of file here (100 MB: 0.55 s), during which appends wait: an erase is rare.
 */
async function purge(): Promise<void> {
  indexPending()
  unsynced(() => statements.optimize.run())
  db.exec('VACUUM')
  await truncateWal(db)
}

/** A synced transaction that may give chat numbers: those are forgotten if it fails. */
function unterming<T>(work: () => T): T {
  try {
    return inTransaction(db, work)
  } catch (err) {
    chatNums.clear()
    throw err
  }
}

function handle(req: WriteRequest): WriteReply | Promise<WriteReply> {
  switch (req.op) {
    case 'append':
      return { id: req.id, ok: true, ...append(req.rows) }
    case 'indexed':
      indexed(req.chatId)
      return { id: req.id, ok: true }
    case 'edit':
      // Pending terms hold the text as sent: written after the edit, they would bring it back.
      indexPending()
      return {
        id: req.id,
        ok: true,
        changes: unterming(() => {
          const changed = Number(statements.edit.run(req.text, req.at, req.chatId, req.seq).changes)
          // A message past the chat's mark gets its terms, the edited text's, from a catch-up.
          const { indexed } = statements.indexState.get(req.chatId) as { indexed: number }
          if (changed && req.seq <= indexed) {
            const num = chatNum(req.chatId)
            statements.unterm.run(num, req.seq)
            addTerms(num, req.seq, req.text)
          }
          return changed
        }),
      }
    case 'tombstone':
      indexPending()
      return {
        id: req.id,
        ok: true,
        changes: unterming(() => {
          const changed = Number(statements.tombstone.run(req.at, req.chatId, req.seq).changes)
          const num = knownChatNum(req.chatId)
          if (num !== undefined) statements.unterm.run(num, req.seq)
          return changed
        }),
      }
    case 'deleteOlderThan':
      return deleteOlderThan(req.cutoff).then((changes) => ({ id: req.id, ok: true, changes }))
    case 'eraseSender':
      return { id: req.id, ok: true, changes: eraseSender(req.chatId, req.senderId, req.limit, req.at) }
    case 'purge':
      return purge().then(() => ({ id: req.id, ok: true }))
    case 'close':
      closing = true
      indexPending()
      db.close()
      return { id: req.id, ok: true }
  }
}

// What the last run left unindexed (it crashed, the power went, the index is new) is indexed
// a slice at a time, between requests.
catchUpAtStart().catch(() => {})

function failed(id: number, err: unknown): WriteReply {
  const e = err as Error & { code?: string }
  return { id, ok: false, message: e.message, ...(e.code ? { code: e.code } : {}) }
}

port.on('message', (req: WriteRequest) => {
  let reply: WriteReply | Promise<WriteReply>
  try {
    reply = handle(req)
  } catch (err) {
    reply = failed(req.id, err)
  }
  if (reply instanceof Promise) {
    reply.then(
      (r) => port.postMessage(r),
      (err: unknown) => port.postMessage(failed(req.id, err)),
    )
  } else port.postMessage(reply)
})
