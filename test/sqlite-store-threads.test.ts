import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import type { AppendResult, NewMessage, StoredMessage } from '../services/messages/message-store.ts'
import { KILL_THREAD_FOR_TEST, SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'

/**
 * One of the SQLite message store's two worker threads (the message writer, the search indexer)
 * dies alone, the other running on: idle, and in the middle of a stream of appends, edits,
 * tombstones and searches. The store starts it again; what must hold afterwards is checked from
 * what the store reads back, on the store itself and on a second store opened on its directory.
 */

type Thread = 'writer' | 'indexer'
const THREADS: Thread[] = ['writer', 'indexer']
const CHATS = ['chat-a', 'chat-b', 'chat-c']
/** Every original text holds this word; an edited text holds EDITED instead. */
const COMMON = 'common'
const EDITED = 'edited'

/** A word of 5 letters, one per n (n < 26^4): prefix searches for it match no other word. */
function word(n: number): string {
  let w = ''
  for (let i = 0; i < 4; i++, n = Math.floor(n / 26)) w = String.fromCharCode(97 + (n % 26)) + w
  return `w${w}`
}

let nextWord = 0
const fresh = () => word(nextWord++)

function msg(chatId: string, clientMsgId: string, text: string, senderId = 'alice'): NewMessage {
  return { chatId, senderId, deviceId: 'phone', clientMsgId, kind: 'text', text, body: {} }
}

/** Every word any message of the chat ever held, so the search of an old word is checked too. */
const wordsUsed = new Map<string, Set<string>>()
function used(chatId: string, text: string): void {
  const words = wordsUsed.get(chatId) ?? new Set()
  wordsUsed.set(chatId, words)
  for (const w of text.split(' ')) words.add(w)
}

/** A store on a fresh directory, with what a test needs to clean up. */
function openStore(): { dir: string; path: string; store: SqliteMessageStore } {
  wordsUsed.clear()
  const dir = mkdtempSync(join(tmpdir(), 'natter-threads-'))
  const path = join(dir, 'messages.db')
  return { dir, path, store: new SqliteMessageStore(path) }
}

/** Files of dir this process has open (Linux /proc). */
function openFilesIn(dir: string): string[] {
  const open: string[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith(dir)) open.push(target)
    } catch {
      // The fd closed between the listing and the read.
    }
  }
  return open
}

/** What an append sent, and what came of it. */
interface Attempt {
  m: NewMessage
  result?: AppendResult
  error?: unknown
}

/** Appends m, recording the outcome instead of throwing. */
async function attempt(store: SqliteMessageStore, m: NewMessage, log: Attempt[]): Promise<Attempt> {
  used(m.chatId, m.text ?? '')
  const a: Attempt = { m }
  log.push(a)
  try {
    a.result = await store.append(m)
  } catch (err) {
    a.error = err
  }
  return a
}

/**
 * Checks the store against itself: each chat's seqs run 1..last without a gap, no clientMsgId
 * twice, every resolved append is stored as sent; and a search of each word any message of the
 * chat ever held finds exactly the live messages whose text holds it now (so no edited, tombstoned
 * or erased message by an old word, and every stored message by its words).
 */
async function verify(store: SqliteMessageStore, log: Attempt[]): Promise<number> {
  let searches = 0
  for (const chatId of CHATS) {
    const all = await store.after(chatId, 0, 100_000)
    assert.deepEqual(
      all.map((m) => m.seq),
      all.map((_, i) => i + 1),
      `${chatId}: seqs run 1..${all.length} without a gap or a duplicate`,
    )
    const ids = new Set(all.map((m) => `${m.senderId}/${m.clientMsgId}`))
    assert.equal(ids.size, all.length, `${chatId}: no clientMsgId stored twice`)
    for (const a of log) {
      if (a.m.chatId !== chatId || !a.result) continue
      const m = all[a.result.message.seq - 1] as StoredMessage
      // An erased message keeps its seq, but not its clientMsgId ('erased:<seq>').
      if (m.deviceId === '') continue
      assert.equal(m.clientMsgId, a.m.clientMsgId, `${chatId}: a resolved append is stored at its seq`)
      assert.equal(m.senderId, a.m.senderId)
    }
    const live = all.filter((m) => m.deletedAt === null && m.text !== null)
    for (const w of wordsUsed.get(chatId) ?? []) {
      const expected = live
        .filter((m) => (m.text as string).split(' ').includes(w))
        .map((m) => m.seq)
        .sort((x, y) => y - x)
      const found = (await store.search(chatId, w, 100_000)).map((m) => m.seq)
      searches++
      assert.deepEqual(found, expected, `${chatId}: a search of "${w}" finds the live messages holding it`)
    }
  }
  return searches
}

/**
 * verify, then close: no file of the store stays open, and a second store on the same files
 * passes verify too. Returns the first verify's count of checks by search.
 */
async function verifyThenReopen(
  store: SqliteMessageStore,
  dir: string,
  path: string,
  log: Attempt[],
): Promise<number> {
  const searched = await verify(store, log)
  await store.close()
  assert.deepEqual(openFilesIn(dir), [], 'close() leaves no file of the store open')
  const second = new SqliteMessageStore(path)
  try {
    await verify(second, log)
  } finally {
    await second.close()
  }
  return searched
}

/** The message of a thread's death, as the store words it for the requests it rejects. */
const DIED = /^(message writer|search indexer) (stopped \(exit code \d+\)|failed: .+)$/

describe('SQLite message store: one worker thread dies alone', () => {
  it('an edit the writer committed but never posted before it died: no search finds its old words', async () => {
    const { dir, path, store } = openStore()
    try {
      await store.append(msg('chat-a', 'x-1', `${COMMON} wolda`))
      assert.deepEqual(
        (await store.search('chat-a', 'wolda', 10)).map((m) => m.seq),
        [1],
      )
      // What a writer that died between an edit's commit and its post to the indexer leaves:
      // the row and its search_changes run changed, no update on its way to the indexer.
      const raw = new DatabaseSync(path)
      try {
        raw.exec(`PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE;
          UPDATE messages SET text = '${EDITED} wnewa', edited_at = 1 WHERE chat_id = 'chat-a' AND seq = 1;
          INSERT INTO search_changes (chat_id, from_seq, to_seq) VALUES ('chat-a', 1, 1);
          COMMIT;`)
      } finally {
        raw.close()
      }
      await store[KILL_THREAD_FOR_TEST]('writer')
      assert.deepEqual(await store.search('chat-a', 'wolda', 10), [], 'the old word finds nothing')
      assert.deepEqual(
        (await store.search('chat-a', 'wnewa', 10)).map((m) => m.seq),
        [1],
      )
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  for (const thread of THREADS) {
    it(`the ${thread} dies while idle: nothing resolved is lost, search and close still right`, async () => {
      const { dir, path, store } = openStore()
      const log: Attempt[] = []
      try {
        for (let i = 0; i < 30; i++) {
          const chatId = CHATS[i % CHATS.length] as string
          const sender = i % 5 === 0 ? 'mallory' : 'alice'
          await attempt(store, msg(chatId, `idle-${i}`, `${COMMON} ${fresh()}`, sender), log)
        }
        // Just before the death: an edit, a tombstone and an erasure in each chat.
        for (const chatId of CHATS) {
          const [first, second] = log.filter((a) => a.m.chatId === chatId && a.m.senderId === 'alice')
          const text = `${EDITED} ${fresh()}`
          used(chatId, text)
          assert.ok(await store.edit(chatId, first?.result?.message.seq as number, text, Date.now()))
          assert.ok(await store.tombstone(chatId, second?.result?.message.seq as number, Date.now()))
          assert.ok((await store.eraseSender(chatId, 'mallory', 10)) > 0)
        }
        // Committed in the 50 ms before the death: the writer had not posted their terms yet.
        await Promise.all(
          CHATS.map((chatId, i) => attempt(store, msg(chatId, `late-${i}`, `${COMMON} ${fresh()}`), log)),
        )
        await store[KILL_THREAD_FOR_TEST](thread)

        for (let i = 0; i < 6; i++) {
          const chatId = CHATS[i % CHATS.length] as string
          const a = await attempt(store, msg(chatId, `after-${i}`, `${COMMON} ${fresh()}`), log)
          assert.ok(a.result && !a.result.duplicate, 'an append after the restart is stored')
        }
        // log[1] is alice's (log[0] is mallory's, erased).
        const again = await store.append(log[1]?.m as NewMessage)
        assert.equal(again.duplicate, true, 'a retried clientMsgId is still de-duplicated')
        assert.equal(again.message.seq, log[1]?.result?.message.seq)
        assert.equal(log.filter((a) => a.error).length, 0)

        await verifyThenReopen(store, dir, path, log)
      } finally {
        await store.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it(`the ${thread} dies amid appends, edits and searches: each outcome is true to what is stored`, async (t) => {
      const { dir, path, store } = openStore()
      const log: Attempt[] = []
      const edits: Array<{ ok: boolean; error?: unknown }> = []
      const searches: Array<{ ok: boolean; error?: unknown }> = []
      let attempts = 0
      let resolved = 0
      let resolvedAfterKill = 0
      const kills: Array<Promise<void>> = []
      const TOTAL = 240
      const KILL_AT = [50, 110, 170]
      let killsDone = 0
      // The stream goes on until every death has been answered by the thread started after it.
      const running = () => attempts < TOTAL || killsDone < KILL_AT.length
      try {
        const appender = async (lane: number) => {
          while (running()) {
            const n = attempts++
            const chatId = CHATS[n % CHATS.length] as string
            const sender = lane === 0 ? 'mallory' : 'alice'
            const a = await attempt(store, msg(chatId, `s-${n}`, `${COMMON} ${fresh()}`, sender), log)
            if (a.result) {
              resolved++
              if (kills.length) resolvedAfterKill++
            }
            // Three deaths, 0, 1 and 2 ms after an append resolved: the next batch is gathering
            // (1 ms), being committed or being answered.
            // A death comes after the thread started again has answered (the edit of a seq that
            // does not exist goes to both threads): one death per request, as the store retries
            // a search's or an edit's request to the indexer once.
            if (resolved === KILL_AT[kills.length]) {
              const delay = kills.length
              const previous = kills.at(-1) ?? Promise.resolve()
              kills.push(
                previous
                  .then(() => new Promise((resolve) => setTimeout(resolve, delay)))
                  .then(() => store[KILL_THREAD_FOR_TEST](thread))
                  .then(() => store.edit(CHATS[0] as string, 1e9, 'none', Date.now()))
                  .then(() => {
                    killsDone++
                  }),
              )
            }
          }
        }
        const editor = async () => {
          for (let k = 0; running(); k++) {
            const done = log.filter((a) => a.result && a.m.senderId === 'alice')
            const target = done[Math.floor(Math.random() * done.length)]
            if (!target) {
              await new Promise((resolve) => setImmediate(resolve))
              continue
            }
            const { chatId } = target.m
            const seq = target.result?.message.seq as number
            try {
              if (k % 4 === 3) await store.tombstone(chatId, seq, Date.now())
              else if (k % 10 === 9) await store.eraseSender(chatId, 'mallory', 3)
              else {
                const text = `${EDITED} ${fresh()}`
                used(chatId, text)
                await store.edit(chatId, seq, text, Date.now())
              }
              edits.push({ ok: true })
            } catch (error) {
              edits.push({ ok: false, error })
            }
          }
        }
        const searcher = async () => {
          for (let k = 0; running(); k++) {
            try {
              await store.search(CHATS[k % CHATS.length] as string, COMMON, 50)
              searches.push({ ok: true })
            } catch (error) {
              searches.push({ ok: false, error })
            }
            // A search that needs no handshake settles without leaving the microtask queue.
            await new Promise((resolve) => setTimeout(resolve, 1))
          }
        }
        await Promise.all([...[0, 1, 2, 3, 4, 5].map(appender), editor(), editor(), editor(), searcher()])
        assert.equal(kills.length, KILL_AT.length, 'the thread was killed mid-stream')
        await Promise.all(kills)

        const rejected = log.filter((a) => a.error)
        for (const a of rejected) {
          assert.ok(a.error instanceof Error)
          assert.match(a.error.message, DIED, 'a rejected append says the writer died')
        }
        if (thread === 'indexer') {
          assert.equal(rejected.length, 0, 'the indexer dying rejects no append')
          assert.deepEqual(
            edits.filter((e) => !e.ok).map((e) => (e.error as Error).message),
            [],
            'the indexer dying rejects no edit',
          )
          assert.deepEqual(
            searches.filter((s) => !s.ok).map((s) => (s.error as Error).message),
            [],
            'the indexer dying rejects no search',
          )
        }
        for (const e of [...edits, ...searches]) if (!e.ok) assert.match((e.error as Error).message, DIED)
        assert.ok(resolvedAfterKill > 0, 'appends after the restart are stored')
        // A client retries what was refused with the same clientMsgId: stored once either way
        // (a refused append may have been committed before the death: its retry is a duplicate).
        let storedBefore = 0
        for (const a of rejected) {
          const retry = await attempt(store, a.m, log)
          assert.ok(retry.result, 'a retry after the restart is answered')
          if (retry.result.duplicate) storedBefore++
        }
        const searched = await verifyThenReopen(store, dir, path, log)
        t.diagnostic(
          `${thread}: ${log.length} appends (${rejected.length} refused, ${storedBefore} of them committed), ${edits.length} edits (${edits.filter((e) => !e.ok).length} refused), ${searches.length} searches (${searches.filter((s) => !s.ok).length} refused), ${searched} checks by search`,
        )
      } finally {
        await store.close()
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }
})
