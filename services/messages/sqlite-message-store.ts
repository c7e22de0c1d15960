import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import { MessageChannel, type MessagePort, type TransferListItem, Worker } from 'node:worker_threads'
import { statementCache } from '../storage/sqlite.ts'
import type { AppendResult, MessageStore, NewMessage, StoredMessage } from './message-store.ts'
import { parseSearchQuery } from './search-terms.ts'
import type { IndexReply, IndexRequest } from './sqlite-message-indexer.ts'
import {
  APPEND_FIELDS,
  type AppendRows,
  type MessageRow,
  openSchema,
  toMessage,
} from './sqlite-message-rows.ts'
import type { WriteReply, WriteRequest } from './sqlite-message-writer.ts'
import { openSearchSchema, searchIndexPath, searchQuery } from './sqlite-search-index.ts'

// A write request without its id, kind by kind (a plain Omit would merge the kinds).
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never
type Request = WithoutId<Exclude<WriteRequest, { op: 'indexer' }>>
type IndexAsk = WithoutId<Exclude<IndexRequest, { op: 'writer' }>>

/**
 * How long, in ms, an append waits for others before its commit when none is running. Each
 * commit costs an fsync and three thread wake-ups whatever it holds: at 1,000 appends a second a
 * commit held about one message; gathering for 2 ms put ~2.5 in each (bench/sqlite-append.ts).
 * The chat benchmark's p99 at 1,000 msg/s was 11–14 ms with 2 ms and 10–11 ms with 1 ms (a
 * timer's least wait): 1 ms it is. While a commit runs, what gathers goes right after it
 * instead.
 */
const GATHER_MS = 1
/** A batch this large goes at once, window or not. */
const MAX_GATHER = 256

/**
 * Test-only (test/sqlite-store-threads.test.ts): the key of the store method that terminates its
 * message writer or search indexer thread (`Worker.terminate()`, as a crash of that thread alone
 * would stop it) and resolves once the thread has exited and a new one is starting. A symbol, so
 * nothing but code that imports it can call it; no wire request leads to it.
 */
export const KILL_THREAD_FOR_TEST = Symbol('kill a SQLite message store thread (test only)')

interface Pending {
  m: NewMessage
  at: number
  resolve: (r: AppendResult) => void
  reject: (err: unknown) => void
}

/**
 * SQLite in WAL mode. Writes go to one writer thread (sqlite-message-writer.ts) with
 * synchronous=FULL, so an append is on disk when it resolves; queries run here on a read-only
 * connection, which WAL lets read while the writer commits.
 *
 * Appends are group-committed: while one batch is being written, the next ones gather and go
 * as soon as it ends; when no commit runs, an append waits up to GATHER_MS (1 ms) or until
 * MAX_GATHER (256) have gathered. Each caller's promise resolves only after the commit that holds
 * its message; a batch that fails (a disk error, a row SQLite refuses) rejects every append in
 * it with SQLite's error, and stores none of them. To the writer a batch travels as one flat array, and the reply holds the seqs
 * (and the stored row of a duplicate only): the stored message is built here from what was sent.
 *
 * How soon a message is searchable: at once, for a search. Its search terms are not in the commit
 * that stores it: the writer hands the new messages to the indexer thread
 * (sqlite-message-indexer.ts) within 50 ms of their commit, or as soon as 1,024 wait, and the
 * indexer writes them into the search index's own file (sqlite-search-index.ts) in its next
 * event-loop turn. A search whose chat
 * has messages without terms yet first asks the indexer to write them (one round-trip), so it
 * finds every message stored before it began. This connection attaches the index file as
 * `search`.
 */
export class SqliteMessageStore implements MessageStore {
  readonly #db: DatabaseSync
  readonly #writer: ThreadLane<Request, WriteReply>
  readonly #indexer: ThreadLane<IndexAsk, IndexReply>
  readonly #sql: (sql: string) => StatementSync
  #queue: Pending[] = []
  #writing: Promise<void> | null = null
  #gathering: NodeJS.Timeout | null = null
  #closed = false
  /** Settles once the indexer has applied the change log again after the writer's restart. */
  #reapplied: Promise<void> | null = null

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true })
    this.#db = new DatabaseSync(path)
    // secure_delete as on the writer: openSchema may drop an old layout's search index here.
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON;')
    openSchema(this.#db)
    const indexPath = searchIndexPath(path)
    // The index file's schema exists before any thread or this connection reads it.
    const index = new DatabaseSync(indexPath)
    try {
      openSearchSchema(index)
    } finally {
      index.close()
    }
    this.#db.prepare('ATTACH DATABASE ? AS search').run(indexPath)
    this.#db.exec('PRAGMA query_only = 1')
    this.#sql = statementCache(this.#db)
    // Index updates go from the writer to the indexer on a channel of their own. A thread that
    // dies is started again with a new channel, whose other end goes to the thread still running.
    const first = new MessageChannel()
    const writerUrl = new URL('./sqlite-message-writer.ts', import.meta.url)
    const indexerUrl = new URL('./sqlite-message-indexer.ts', import.meta.url)
    this.#writer = new ThreadLane('message writer', (again) => {
      const { port1 } = again ? this.#newChannel((port) => ({ id: 0, op: 'writer', port }), 'indexer') : first
      if (again) this.#reapplying()
      return new Worker(writerUrl, { workerData: { path, indexer: port1 }, transferList: [port1] })
    })
    this.#indexer = new ThreadLane('search indexer', (again) => {
      const { port2 } = again ? this.#newChannel((port) => ({ id: 0, op: 'indexer', port }), 'writer') : first
      return new Worker(indexerUrl, { workerData: { path, indexPath, writer: port2 }, transferList: [port2] })
    })
  }

  /**
   * A channel for a thread started again: port2 goes to the indexer, port1 to the writer; the
   * end of the thread still running is posted to it (made by message(port)).
   */
  #newChannel(
    message: (port: MessagePort) => { id: 0; op: 'writer' | 'indexer'; port: MessagePort },
    running: 'writer' | 'indexer',
  ): MessageChannel {
    const channel = new MessageChannel()
    const port = running === 'indexer' ? channel.port2 : channel.port1
    const lane = running === 'indexer' ? this.#indexer : this.#writer
    lane.post(message(port), [port])
    return channel
  }

  /**
   * After the writer's restart: the indexer applies the change log again on the new port's
   * arrival, posted just before this flush, so searches wait for the flush (a failed one too:
   * an indexer started again applies the log before it answers anything).
   */
  #reapplying(): void {
    const reapplied: Promise<void> = this.#indexer.request({ op: 'flush' }, RETRIED).then(
      () => {},
      () => {},
    )
    this.#reapplied = reapplied
    reapplied.then(() => {
      if (this.#reapplied === reapplied) this.#reapplied = null
    })
  }

  append(m: NewMessage, at = Date.now()): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error('the message store is closed'))
    return new Promise((resolve, reject) => {
      this.#queue.push({ m, at, resolve, reject })
      if (this.#writing) return
      if (this.#queue.length >= MAX_GATHER) this.#flush()
      else this.#gathering ??= setTimeout(this.#gathered, GATHER_MS)
    })
  }

  readonly #gathered = (): void => {
    this.#gathering = null
    this.#flush()
  }

  #flush(): void {
    if (this.#gathering) {
      clearTimeout(this.#gathering)
      this.#gathering = null
    }
    if (this.#writing || this.#queue.length === 0) return
    const batch = this.#queue
    this.#queue = []
    const rows: AppendRows = new Array(batch.length * APPEND_FIELDS)
    for (let i = 0, o = 0; i < batch.length; i++, o += APPEND_FIELDS) {
      const { m, at } = batch[i] as Pending
      rows[o] = m.chatId
      rows[o + 1] = m.senderId
      rows[o + 2] = m.deviceId
      rows[o + 3] = m.clientMsgId
      rows[o + 4] = m.kind
      rows[o + 5] = m.text
      rows[o + 6] = JSON.stringify(m.body)
      rows[o + 7] = at
    }
    this.#writing = this.#writer
      .request({ op: 'append', rows })
      .then(
        ({ seqs = [], dups = [] }) => {
          let d = 0
          for (let i = 0; i < batch.length; i++) {
            const { m, at, resolve } = batch[i] as Pending
            const seq = seqs[i] as number
            if (seq === 0) resolve({ message: toMessage(dups[d++] as MessageRow), duplicate: true })
            else resolve({ message: stored(m, seq, at), duplicate: false })
          }
        },
        (err: unknown) => {
          for (const p of batch) p.reject(err)
        },
      )
      .finally(() => {
        this.#writing = null
        // What gathered meanwhile has waited long enough: it goes at once.
        this.#flush()
      })
  }

  #rows(sql: string, ...params: SQLInputValue[]): StoredMessage[] {
    return (this.#sql(sql).all(...params) as unknown as MessageRow[]).map(toMessage)
  }

  async after(chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#rows(
      'SELECT * FROM messages WHERE chat_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      chatId,
      afterSeq,
      limit,
    )
  }

  async before(chatId: string, beforeSeq: number | null, limit: number): Promise<StoredMessage[]> {
    return this.#rows(
      'SELECT * FROM messages WHERE chat_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
      chatId,
      beforeSeq ?? Number.MAX_SAFE_INTEGER,
      limit,
    )
  }

  async get(chatId: string, seq: number): Promise<StoredMessage | null> {
    return this.#rows('SELECT * FROM messages WHERE chat_id = ? AND seq = ?', chatId, seq)[0] ?? null
  }

  async edit(chatId: string, seq: number, text: string, at: number): Promise<StoredMessage | null> {
    const { change } = await this.#writer.request({ op: 'edit', chatId, seq, text, at })
    // The old text's words must not find the message once this resolves: the indexer writes
    // the new terms first (edits are rare; one more round-trip). The change's id has it hold
    // the edit even if its update went to an indexer that died meanwhile.
    await this.#indexer.request({ op: 'flush', ...(change ? { change } : {}) }, RETRIED)
    const m = await this.get(chatId, seq)
    return m && m.deletedAt === null ? m : null
  }

  async tombstone(chatId: string, seq: number, at: number): Promise<StoredMessage | null> {
    await this.#writer.request({ op: 'tombstone', chatId, seq, at })
    return this.get(chatId, seq)
  }

  async search(chatId: string, query: string, limit: number): Promise<StoredMessage[]> {
    const terms = parseSearchQuery(query)
    if (terms.whole.length === 0 && terms.prefix === null) return []
    // The chat's mark in the index file and its last seq in messages.db: reads of two files,
    // each a snapshot; the mark never passes a committed seq, so either order is safe.
    const read = () =>
      this.#sql(
        `SELECT (SELECT num FROM search.search_chats WHERE chat_id = ?1) AS num,
                coalesce((SELECT indexed FROM search.search_chats WHERE chat_id = ?1), 0)
                  < coalesce((SELECT last FROM main.chat_seq WHERE chat_id = ?1), 0) AS behind`,
      ).get(chatId) as { num: number | null; behind: number }
    // Since the writer was started again: an edit it committed and never posted may have left old
    // words in the index until the indexer applies the log again.
    if (this.#reapplied) await this.#reapplied
    let state = read()
    if (state.behind) {
      await this.#indexer.request({ op: 'indexed', chatId }, RETRIED)
      state = read()
    }
    if (state.num === null) return []
    // The chat's tokens carry its tag and its rowids run from num << 32 (sqlite-message-rows.ts):
    // FTS5 reads the chat's lists (of its words with the prefix, merged), newest first, and stops
    // at the limit.
    return this.#rows(
      `SELECT m.* FROM search.message_search s JOIN main.messages m ON m.chat_id = ?1 AND m.seq = (s.rowid & 0xFFFFFFFF)
       WHERE message_search MATCH ?2 AND s.rowid >= (?3 << 32) AND s.rowid < ((?3 + 1) << 32)
         AND m.deleted_at IS NULL
       ORDER BY s.rowid DESC LIMIT ?4`,
      chatId,
      searchQuery(state.num, terms),
      state.num,
      limit,
    )
  }

  async countUnread(chatId: string, afterSeq: number, userId: string): Promise<number> {
    const r = this.#sql(
      "SELECT COUNT(*) AS n FROM messages WHERE chat_id = ? AND seq > ? AND sender_id <> ? AND kind = 'text' AND deleted_at IS NULL AND json_extract(body, '$.hiddenFrom') IS NOT ?",
    ).get(chatId, afterSeq, userId, userId) as { n: number }
    return r.n
  }

  async sendersBetween(chatId: string, fromSeq: number, toSeq: number): Promise<string[]> {
    const rows = this.#sql(
      'SELECT DISTINCT sender_id FROM messages WHERE chat_id = ? AND seq > ? AND seq <= ?',
    ).all(chatId, fromSeq, toSeq) as unknown as Array<{ sender_id: string }>
    return rows.map((r) => r.sender_id).sort()
  }

  async lastSeq(chatId: string): Promise<number> {
    const r = this.#sql('SELECT last FROM chat_seq WHERE chat_id = ?').get(chatId) as
      | { last: number }
      | undefined
    return r?.last ?? 0
  }

  async seqBefore(chatId: string, at: number): Promise<number> {
    // The newest message before `at` by time comes from messages_chat_at; a higher seq still
    // before `at` (a clock that stepped back) can only follow it, so the primary key is read
    // from that seq on (the + keeps the planner off the time index): the messages since about
    // `at`, not the chat's whole history before it, which max(seq) over the index would read.
    const r = this.#sql(
      `SELECT max(seq) AS seq FROM messages
         WHERE chat_id = :chatId AND +at < :at AND seq >= coalesce((
           SELECT seq FROM messages WHERE chat_id = :chatId AND at < :at ORDER BY at DESC, seq DESC LIMIT 1
         ), 0)`,
    ).get({ chatId, at }) as { seq: number | null }
    return r.seq ?? 0
  }

  async changedSince(
    chatId: string,
    uptoSeq: number,
    since: number,
    limit: number,
  ): Promise<StoredMessage[]> {
    // Matches the partial index messages_changed: only changed messages are read.
    return this.#rows(
      `SELECT * FROM messages
       WHERE chat_id = ? AND (deleted_at IS NOT NULL OR edited_at IS NOT NULL)
         AND coalesce(deleted_at, edited_at) >= ? AND seq <= ?
       ORDER BY seq LIMIT ?`,
      chatId,
      since,
      uptoSeq,
      limit,
    )
  }

  async deleteOlderThan(cutoff: number): Promise<number> {
    return (await this.#writer.request({ op: 'deleteOlderThan', cutoff })).changes ?? 0
  }

  async sentBy(chatId: string, senderId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    // The chat's rows from afterSeq on the primary key, the sender's picked out.
    return this.#rows(
      "SELECT * FROM messages WHERE chat_id = ? AND seq > ? AND sender_id = ? AND kind = 'text' ORDER BY seq LIMIT ?",
      chatId,
      afterSeq,
      senderId,
      limit,
    )
  }

  async eraseSender(chatId: string, senderId: string, limit: number): Promise<number> {
    if (limit <= 0) return 0
    return (
      (await this.#writer.request({ op: 'eraseSender', chatId, senderId, limit, at: Date.now() })).changes ??
      0
    )
  }

  async purgeErased(): Promise<void> {
    // The writer first: it has posted the erased messages' term deletes before it answered, and
    // the indexer takes them before its purge.
    await this.#writer.request({ op: 'purge' })
    await this.#indexer.request({ op: 'purge' }, RETRIED)
  }

  /** Test-only: see {@link KILL_THREAD_FOR_TEST}. */
  [KILL_THREAD_FOR_TEST](thread: 'writer' | 'indexer'): Promise<void> {
    return (thread === 'writer' ? this.#writer : this.#indexer).kill()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    // Appends already accepted are committed before the database closes.
    while (this.#writing || this.#queue.length) {
      this.#flush()
      await this.#writing
    }
    this.#closed = true
    // The writer first: the indexer takes every update it posted before closing its file.
    await this.#writer.request({ op: 'close' })
    await this.#indexer.request({ op: 'close' })
    await this.#writer.close()
    await this.#indexer.close()
    this.#db.close()
  }
}

/**
 * For {@link ThreadLane.request}: the request has the same effect sent twice (a flush, a search's
 * handshake, a purge), so it is sent again to the thread started after one that died with it.
 */
const RETRIED = true

/**
 * Requests to one worker thread, answered by id. A thread that dies (an error, an exit) rejects
 * every request waiting on it, but those sent with RETRIED (once each), and is started again
 * (start(true)) for them and the next ones: a rejected write may have committed before the death
 * (an append's retry then gets the stored message, de-duplicated by its clientMsgId), and what
 * was not committed is refused, with an Error "<what> stopped (exit code N)" or
 * "<what> failed: <error>". An idle thread does not keep the process alive.
 */
class ThreadLane<Q extends object, R extends { id: number; ok: boolean }> {
  readonly #what: string
  readonly #start: (again: boolean) => Worker
  #worker: Worker
  #nextId = 1
  readonly #waiting = new Map<
    number,
    { req: Q; retry: boolean; resolve: (r: Extract<R, { ok: true }>) => void; reject: (err: Error) => void }
  >()
  #closed = false

  /** @param start makes the thread; again is true when one died before it */
  constructor(what: string, start: (again: boolean) => Worker) {
    this.#what = what
    this.#start = start
    this.#worker = this.#run(false)
  }

  #run(again: boolean): Worker {
    const worker = this.#start(again)
    worker.unref()
    worker.on('message', (reply: R) => {
      const waiter = this.#waiting.get(reply.id)
      if (!waiter) return
      this.#settled(reply.id)
      if (reply.ok) waiter.resolve(reply as Extract<R, { ok: true }>)
      else {
        const { message, code } = reply as unknown as { message: string; code?: string }
        waiter.reject(Object.assign(new Error(message), code ? { code } : {}))
      }
    })
    const fail = (err: Error) => {
      if (this.#worker !== worker) return
      const again: Array<[number, Q]> = []
      for (const [id, waiter] of this.#waiting) {
        if (waiter.retry && !this.#closed) {
          waiter.retry = false
          again.push([id, waiter.req])
          continue
        }
        this.#settled(id)
        waiter.reject(err)
      }
      if (this.#closed) return
      this.#worker = this.#run(true)
      if (this.#waiting.size) this.#worker.ref()
      for (const [id, req] of again) this.#worker.postMessage({ ...req, id })
    }
    worker.on('error', (err) => fail(new Error(`${this.#what} failed: ${err.message}`)))
    worker.on('exit', (code) => fail(new Error(`${this.#what} stopped (exit code ${code})`)))
    return worker
  }

  #settled(id: number): void {
    this.#waiting.delete(id)
    if (this.#waiting.size === 0) this.#worker.unref()
  }

  /**
   * Sends req and resolves with the thread's reply; rejects with its error, or the thread's
   * death (see the class). retry: RETRIED for a request safe to send twice.
   */
  request(req: Q, retry = false): Promise<Extract<R, { ok: true }>> {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++
      if (this.#waiting.size === 0) this.#worker.ref()
      this.#waiting.set(id, { req, retry, resolve, reject })
      this.#worker.postMessage({ ...req, id })
    })
  }

  /** Sends a message that gets no reply, handing over the transferred objects (a MessagePort). */
  post(message: object, transfer: TransferListItem[]): void {
    this.#worker.postMessage(message, transfer)
  }

  /** Test-only (KILL_THREAD_FOR_TEST): terminates the thread, which is then started again. */
  async kill(): Promise<void> {
    await this.#worker.terminate()
  }

  /** Stops the thread; it is not started again. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#worker.terminate()
  }
}

/** The stored message an append of m gave: what was sent, its seq and time, never changed yet. */
function stored(m: NewMessage, seq: number, at: number): StoredMessage {
  return {
    chatId: m.chatId,
    seq,
    senderId: m.senderId,
    deviceId: m.deviceId,
    clientMsgId: m.clientMsgId,
    kind: m.kind,
    text: m.text,
    body: m.body,
    at,
    editedAt: null,
    deletedAt: null,
  }
}
