import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import pino from 'pino'
import { startRetention } from '../services/messages/retention.ts'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'
import { chatTag, searchIndexPath } from '../services/messages/sqlite-search-index.ts'

describe('retention job', () => {
  it('deletes messages older than the retention age and keeps the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'natter-retention-'))
    const store = new SqliteMessageStore(join(dir, 'm.db'))
    try {
      const day = 24 * 3600_000
      const base = { chatId: 'c', senderId: 'a', deviceId: 'd', kind: 'text' as const, body: {} }
      await store.append({ ...base, clientMsgId: 'old', text: 'old' }, Date.now() - 31 * day)
      await store.append({ ...base, clientMsgId: 'recent', text: 'recent' }, Date.now() - 29 * day)
      const job = startRetention({ store, days: 30, log: pino({ level: 'silent' }) })
      job.stop()
      // The run at start may still be going: a second run waits behind it on the same store.
      await job.runOnce()
      assert.deepEqual(
        (await store.after('c', 0, 10)).map((m) => m.clientMsgId),
        ['recent'],
      )
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
  it('deletes old messages of every chat with their search terms, written or still pending', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'natter-retention-'))
    const path = join(dir, 'm.db')
    const store = new SqliteMessageStore(path)
    try {
      const day = 24 * 3600_000
      const old = Date.now() - 31 * day
      const base = { senderId: 'a', deviceId: 'd', kind: 'text' as const, body: {} }
      for (const chatId of ['c1', 'c2', 'c3']) {
        await store.append({ ...base, chatId, clientMsgId: 'old', text: 'ancient words' }, old)
        await store.append({ ...base, chatId, clientMsgId: 'new', text: 'fresh words' })
      }
      // A search writes the terms of every message so far; those of 'ancient too' are still pending.
      assert.equal((await store.search('c1', 'ancient', 10)).length, 1)
      await store.append({ ...base, chatId: 'c2', clientMsgId: 'old2', text: 'ancient too' }, old)
      const job = startRetention({ store, days: 30, log: pino({ level: 'silent' }) })
      job.stop()
      await job.runOnce()
      for (const chatId of ['c1', 'c2', 'c3']) {
        assert.deepEqual(
          (await store.after(chatId, 0, 10)).map((m) => m.clientMsgId),
          ['new'],
        )
        assert.deepEqual(await store.search(chatId, 'ancient', 10), [])
        assert.equal((await store.search(chatId, 'words', 10)).length, 1)
      }
      const db = new DatabaseSync(searchIndexPath(path), { readOnly: true })
      // Tokens carry their chat's tag (sqlite-message-rows.ts): count each chat's.
      const count = db.prepare('SELECT count(*) AS n FROM message_search WHERE message_search MATCH ?')
      let terms = 0
      let kept = 0
      for (const { num } of db.prepare('SELECT num FROM search_chats').all() as Array<{ num: number }>) {
        terms += (count.get(`"${chatTag(num)}ancient" OR "${chatTag(num)}too"`) as { n: number }).n
        kept += (count.get(`"${chatTag(num)}words"`) as { n: number }).n
      }
      db.close()
      assert.equal(terms, 0)
      assert.equal(kept, 3, "the new messages' terms stay")
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
  it('goes through chats a slice at a time and reaches all of them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'natter-retention-'))
    const store = new SqliteMessageStore(join(dir, 'm.db'))
    try {
      const old = Date.now() - 31 * 24 * 3600_000
      const base = { senderId: 'a', deviceId: 'd', kind: 'text' as const, body: {} }
      const chats = Array.from({ length: 2_500 }, (_, i) => `chat-${i}`)
      await Promise.all(
        chats.flatMap((chatId) => [
          store.append({ ...base, chatId, clientMsgId: 'old', text: 'old words' }, old),
          store.append({ ...base, chatId, clientMsgId: 'new', text: 'new words' }),
        ]),
      )
      assert.equal(await store.deleteOlderThan(Date.now() - 30 * 24 * 3600_000), 2_500)
      for (const chatId of [chats[0], chats[999], chats[1_000], chats[2_499]] as string[]) {
        assert.deepEqual(
          (await store.after(chatId, 0, 10)).map((m) => m.clientMsgId),
          ['new'],
        )
        assert.deepEqual(await store.search(chatId, 'old', 10), [])
      }
    } finally {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
