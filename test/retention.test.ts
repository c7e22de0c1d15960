import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import pino from 'pino'
import { startRetention } from '../services/messages/retention.ts'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'

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
})
