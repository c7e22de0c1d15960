import { DatabaseSync } from 'node:sqlite'
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { inTransaction } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import type { IndexUpdate } from './sqlite-message-indexer.ts'
import { APPEND_FIELDS, type AppendRows, type MessageRow } from './sqlite-message-rows.ts'
import { answerRequests } from './worker-requests.ts'

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
 * The search index is not written here: the writer posts what its commits changed (each new
 * message's chat, seq and text, gathered for up to 50 ms; an edit's new text and the seqs a
 * tombstone, an erase or retention removed, at once, before it answers the main thread) to the
 * indexer thread (sqlite-message-indexer.ts), over a MessagePort of their own, in commit order.
 * The indexer writes the terms into its own file, so an append never waits for an FTS5 commit.
 *
 * Every change that takes terms away (an edit, a tombstone, an erasure, retention) also writes
 * its runs of seqs to search_changes in its own transaction, and its update carries the log's
 * id: the indexer's file commits later, and a crash in between would leave the old words in the
 * index. The indexer answers on the same port with the highest id its file holds durably
 * ({ applied }); those rows go in the next change's transaction. Appends write no log row.
 */

export type WriteRequest =
  | { id: number; op: 'append'; rows: AppendRows }
  | { id: number; op: 'edit'; chatId: string; seq: number; text: string; at: number }
  | { id: number; op: 'tombstone'; chatId: string; seq: number; at: number }
  | { id: number; op: 'deleteOlderThan'; cutoff: number }
  | { id: number; op: 'eraseSender'; chatId: string; senderId: string; limit: number; at: number }
  | { id: number; op: 'purge' }
  | { id: number; op: 'close' }
  /** A new port to the indexer (it was started again); no reply. */
  | { id: 0; op: 'indexer'; port: MessagePort }

/**
 * An append's reply: seqs[i] is the seq given to the i-th message, or 0 when its clientMsgId was
 * stored before; dups holds the stored rows of those, in order. Other writes give `changes`; an
 * edit also its search_changes id (`change`, 0 when nothing changed).
 */
export type WriteReply =
  | { id: number; ok: true; seqs?: number[]; dups?: MessageRow[]; changes?: number; change?: number }
  | { id: number; ok: false; message: string; code?: string }

/**
 * Chats per retention transaction. A chat with nothing to delete costs an index seek, so a slice
 * takes a ms or so, and appends that arrive during a run wait for one slice, not the whole run
 * (~75 ms per 200,000 chats in one transaction).
 */
const RETENTION_CHATS = 1000
/**
 * New messages gathered for the indexer before they are posted to it: its terms commit then
 * holds them all (at 256 per commit the terms cost ~1.5x the CPU per message of 1,024; more
 * saves little).
 */
const INDEX_BATCH = 1024
/** How long, in ms, new messages may wait for more before they go to the indexer. */
const INDEX_DELAY_MS = 50
/** Chats whose last seq is kept in memory; past this many the map starts over (one lookup each to reload). */
const MAX_KNOWN_CHATS = 100_000
// node:sqlite's extended result codes for a constraint failure.
const SQLITE_CONSTRAINT_PRIMARYKEY = 1555
const SQLITE_CONSTRAINT_UNIQUE = 2067

const port = parentPort
if (!port) throw new Error('sqlite-message-writer runs as a worker thread')

const data = workerData as { path: string; indexer: MessagePort }
/** Where index updates go; replaced when the indexer is started again (a message 'indexer'). */
let indexer = data.indexer
/** The highest search_changes id the indexer's file holds durably, and the highest deleted. */
let applied = 0
let pruned = 0

function acknowledged(m: { applied: number }): void {
  if (m.applied > applied) applied = m.applied
}

function listenIndexer(port: MessagePort): void {
  port.on('message', acknowledged)
}
listenIndexer(indexer)

/**
 * New messages for the indexer, (chatId, seq, text) flat, posted together within
 * INDEX_DELAY_MS or once INDEX_BATCH have gathered: a message to the indexer wakes its thread,
 * and at 1,000 msg/s a wake per commit (~400 a second) took the cores the main thread and this
 * one wait for.
 */
let added: Array<string | number | null> = []
let addedTimer: NodeJS.Timeout | null = null

function postAdded(): void {
  if (addedTimer) {
    clearTimeout(addedTimer)
    addedTimer = null
  }
  if (added.length === 0) return
  indexer.postMessage({ op: 'add', rows: added } satisfies IndexUpdate)
  added = []
}

/**
 * Posts an index update, after the new messages gathered before it (the indexer applies them in
 * order). A closed port (the indexer died) drops it, and its catch-up makes up for it.
 */
function toIndexer(update: IndexUpdate): void {
  postAdded()
  indexer.postMessage(update)
}

const db = new DatabaseSync(data.path)
// Appends to many chats dirty many pages per transaction: with SQLite's default 2 MB cache they
// spilled to the WAL mid-transaction and were read back.
// secure_delete: what a delete or update frees is zeroed, so erased text (eraseSender) leaves no
// copy in free space; purgeErased deals with the WAL.
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
  // Retention, a chat at a time on messages_chat_at: no index on `at` alone is kept for it.
  chatsAfter: db.prepare('SELECT chat_id FROM chat_seq WHERE chat_id > ? ORDER BY chat_id LIMIT ?'),
  oldOfChat: db.prepare('SELECT seq FROM messages WHERE chat_id = ? AND at < ?'),
  deleteOldOfChat: db.prepare('DELETE FROM messages WHERE chat_id = ? AND at < ?'),
  logChange: db.prepare(
    'INSERT INTO search_changes (chat_id, from_seq, to_seq) VALUES (?, ?, ?) RETURNING id',
  ),
  pruneChanges: db.prepare('DELETE FROM search_changes WHERE id <= ?'),
}

/**
 * Logs the chat's seqs (ascending) as runs in search_changes, inside the caller's transaction,
 * and deletes the rows the indexer holds already; returns the last id written.
 */
function logChanges(chatId: string, seqs: readonly number[]): number {
  // Acknowledgements already posted are taken first: the event loop may not have delivered them.
  for (let m = receiveMessageOnPort(indexer); m; m = receiveMessageOnPort(indexer)) acknowledged(m.message)
  if (applied > pruned) statements.pruneChanges.run(applied)
  let id = 0
  for (let i = 0; i < seqs.length; ) {
    const from = seqs[i] as number
    let to = from
    for (i++; i < seqs.length && seqs[i] === to + 1; i++) to++
    id = (statements.logChange.get(chatId, from, to) as { id: number }).id
  }
  return id
}

/** After a change's commit: the rows logChanges deleted are gone. */
function logged(): void {
  pruned = Math.max(pruned, applied)
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
 * Every append in the batch shares one transaction: one fsync for all of them (group commit).
 * A message is inserted with the chat's next seq straight away; a clientMsgId stored before
 * fails the unique index, which undoes that statement only, and the stored row is returned.
 * Once committed, the new messages go to the indexer as one flat array (chat, seq, text, …).
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
    added.push(rows[o] as string, seq, rows[o + 5] as string | null)
  }
  if (added.length >= INDEX_BATCH * 3) postAdded()
  else if (added.length) addedTimer ??= setTimeout(postAdded, INDEX_DELAY_MS)
  return dups.length ? { seqs, dups } : { seqs }
}

/**
 * Deletes the messages accepted before cutoff (ms since the epoch); returns how many went, and
 * tells the indexer each chat's deleted seqs. A slice of chats per transaction, other requests
 * served in between: messages older than the cutoff are not written any more, so the slices
 * need not be one snapshot.
 */
async function deleteOlderThan(cutoff: number): Promise<number> {
  let removed = 0
  let after = ''
  for (;;) {
    const chats = statements.chatsAfter.all(after, RETENTION_CHATS) as unknown as Array<{ chat_id: string }>
    const gone: Array<{ chatId: string; seqs: number[]; change: number }> = []
    removed += inTransaction(db, () => {
      let n = 0
      for (const { chat_id } of chats) {
        const old = statements.oldOfChat.all(chat_id, cutoff) as unknown as Array<{ seq: number }>
        if (old.length === 0) continue
        // messages_chat_at gives them in order of time: the log's runs want seq order.
        const seqs = old.map((r) => r.seq).sort((a, b) => a - b)
        gone.push({ chatId: chat_id, seqs, change: logChanges(chat_id, seqs) })
        n += Number(statements.deleteOldOfChat.run(chat_id, cutoff).changes)
      }
      return n
    })
    if (gone.length) logged()
    for (const { chatId, seqs, change } of gone) toIndexer({ op: 'unterm', chatId, seqs, change })
    const last = chats.at(-1)
    if (!last || chats.length < RETENTION_CHATS) return removed
    after = last.chat_id
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/**
 * Erases up to limit of the sender's messages of the chat not erased yet, oldest first, in one
 * transaction (see MessageStore.eraseSender), then has the indexer delete their terms; returns
 * how many.
 */
function eraseSender(chatId: string, senderId: string, limit: number, at: number): number {
  const { seqs, change } = inTransaction(db, () => {
    const rows = statements.eraseCandidates.all(chatId, senderId, limit) as unknown as Array<{ seq: number }>
    for (const { seq } of rows) {
      statements.eraseAside.run(chatId, senderId, seq)
      statements.erase.run(chatId, seq, at)
    }
    const seqs = rows.map((r) => r.seq)
    return { seqs, change: seqs.length ? logChanges(chatId, seqs) : 0 }
  })
  if (seqs.length) {
    logged()
    toIndexer({ op: 'unterm', chatId, seqs, change })
  }
  return seqs.length
}

/**
 * Rebuilds the file (VACUUM) from its live rows, then copies the WAL into the file and truncates
 * it: no erased content is left in messages.db, -wal or -shm (the indexer purges its own file).
 * secure_delete alone left fragments of erased texts in the unused space of live pages after a
 * crash mid-erase with long messages (an operator's trial); VACUUM writes each page anew. It
 * costs about 6 ms per MB of file here (100 MB: 0.55 s), during which appends wait: an erase is
 * rare.
 */
async function purge(): Promise<void> {
  db.exec('VACUUM')
  await truncateWal(db)
}

function handle(req: WriteRequest): WriteReply | Promise<WriteReply> | null {
  switch (req.op) {
    case 'append':
      return { id: req.id, ok: true, ...append(req.rows) }
    case 'edit': {
      const { changes, change } = inTransaction(db, () => {
        const changes = Number(statements.edit.run(req.text, req.at, req.chatId, req.seq).changes)
        return { changes, change: changes ? logChanges(req.chatId, [req.seq]) : 0 }
      })
      if (changes) {
        logged()
        toIndexer({ op: 'edit', chatId: req.chatId, seq: req.seq, text: req.text, change })
      }
      // The change's log id: the main thread has the indexer hold it before the edit resolves.
      return { id: req.id, ok: true, changes, change }
    }
    case 'tombstone': {
      const { changes, change } = inTransaction(db, () => {
        const changes = Number(statements.tombstone.run(req.at, req.chatId, req.seq).changes)
        return { changes, change: changes ? logChanges(req.chatId, [req.seq]) : 0 }
      })
      if (changes) {
        logged()
        toIndexer({ op: 'unterm', chatId: req.chatId, seqs: [req.seq], change })
      }
      return { id: req.id, ok: true, changes }
    }
    case 'deleteOlderThan':
      return deleteOlderThan(req.cutoff).then((changes) => ({ id: req.id, ok: true, changes }))
    case 'eraseSender':
      return { id: req.id, ok: true, changes: eraseSender(req.chatId, req.senderId, req.limit, req.at) }
    case 'purge':
      return purge().then(() => ({ id: req.id, ok: true }))
    case 'close':
      postAdded()
      db.close()
      return { id: req.id, ok: true }
    case 'indexer':
      // Updates posted since the indexer died went nowhere: the new one first applies the log
      // again, which holds them all by now (they were committed before this message came).
      indexer = req.port
      listenIndexer(indexer)
      indexer.postMessage({ op: 'reapply' } satisfies IndexUpdate)
      return null
  }
}

answerRequests(port, handle)
