import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { parentPort, workerData } from 'node:worker_threads'
import { type AppendResult, type NewMessage, searchTerms } from './message-store.ts'
import { type MessageRow, toMessage } from './sqlite-message-rows.ts'

/**
 * The one connection that writes messages.db, on its own thread: a commit with
 * synchronous=FULL waits for the disk, and on the main thread that wait stalled every client
 * of the node (bench/). The main thread keeps a read-only connection for queries.
 */

export type WriteRequest =
  | { id: number; op: 'append'; items: Array<{ m: NewMessage; at: number }> }
  | { id: number; op: 'edit'; chatId: string; seq: number; text: string; at: number }
  | { id: number; op: 'tombstone'; chatId: string; seq: number; at: number }
  | { id: number; op: 'deleteOlderThan'; cutoff: number }
  | { id: number; op: 'close' }

export type WriteReply =
  | { id: number; ok: true; results?: AppendResult[]; changes?: number }
  | { id: number; ok: false; message: string; code?: string }

const port = parentPort
if (!port) throw new Error('sqlite-message-writer runs as a worker thread')

const db = new DatabaseSync((workerData as { path: string }).path)
db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;')

// Prepared once: the append path runs them for every message.
const statements: Record<
  'findDup' | 'next' | 'insert' | 'term' | 'edit' | 'untermOne' | 'tombstone' | 'untermOld' | 'deleteOld',
  StatementSync
> = {
  findDup: db.prepare('SELECT * FROM messages WHERE chat_id = ? AND sender_id = ? AND client_msg_id = ?'),
  next: db.prepare(
    'INSERT INTO chat_seq (chat_id, last) VALUES (?, 1) ON CONFLICT (chat_id) DO UPDATE SET last = last + 1 RETURNING last',
  ),
  insert: db.prepare(
    'INSERT INTO messages (chat_id, seq, sender_id, device_id, client_msg_id, kind, text, body, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  ),
  term: db.prepare('INSERT OR IGNORE INTO message_terms (chat_id, term, seq) VALUES (?, ?, ?)'),
  edit: db.prepare(
    'UPDATE messages SET text = ?, edited_at = ? WHERE chat_id = ? AND seq = ? AND deleted_at IS NULL',
  ),
  untermOne: db.prepare('DELETE FROM message_terms WHERE chat_id = ? AND seq = ?'),
  tombstone: db.prepare(
    "UPDATE messages SET text = NULL, body = '{}', deleted_at = ? WHERE chat_id = ? AND seq = ? AND deleted_at IS NULL",
  ),
  untermOld: db.prepare(
    'DELETE FROM message_terms WHERE (chat_id, seq) IN (SELECT chat_id, seq FROM messages WHERE at < ?)',
  ),
  deleteOld: db.prepare('DELETE FROM messages WHERE at < ?'),
}

function transaction<T>(work: () => T): T {
  db.exec('BEGIN IMMEDIATE')
  try {
    const out = work()
    db.exec('COMMIT')
    return out
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw err
  }
}

/** Every append in the batch shares one transaction: one fsync for all of them (group commit). */
function append(items: Array<{ m: NewMessage; at: number }>): AppendResult[] {
  const { findDup, next, insert, term } = statements
  return transaction(() =>
    items.map(({ m, at }): AppendResult => {
      const dup = findDup.get(m.chatId, m.senderId, m.clientMsgId) as MessageRow | undefined
      if (dup) return { message: toMessage(dup), duplicate: true }
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
      return { message: { ...m, seq, at, editedAt: null, deletedAt: null }, duplicate: false }
    }),
  )
}

function handle(req: WriteRequest): WriteReply {
  switch (req.op) {
    case 'append':
      return { id: req.id, ok: true, results: append(req.items) }
    case 'edit':
      return {
        id: req.id,
        ok: true,
        changes: transaction(() => {
          const changed = Number(statements.edit.run(req.text, req.at, req.chatId, req.seq).changes)
          if (changed) {
            statements.untermOne.run(req.chatId, req.seq)
            for (const t of searchTerms(req.text)) statements.term.run(req.chatId, t, req.seq)
          }
          return changed
        }),
      }
    case 'tombstone':
      return {
        id: req.id,
        ok: true,
        changes: transaction(() => {
          const changed = Number(statements.tombstone.run(req.at, req.chatId, req.seq).changes)
          statements.untermOne.run(req.chatId, req.seq)
          return changed
        }),
      }
    case 'deleteOlderThan':
      return {
        id: req.id,
        ok: true,
        changes: transaction(() => {
          statements.untermOld.run(req.cutoff)
          return Number(statements.deleteOld.run(req.cutoff).changes)
        }),
      }
    case 'close':
      db.close()
      return { id: req.id, ok: true }
  }
}

port.on('message', (req: WriteRequest) => {
  let reply: WriteReply
  try {
    reply = handle(req)
  } catch (err) {
    const e = err as Error & { code?: string }
    reply = { id: req.id, ok: false, message: e.message, ...(e.code ? { code: e.code } : {}) }
  }
  port.postMessage(reply)
})
