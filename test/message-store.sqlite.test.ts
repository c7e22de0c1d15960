import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'
import { messageStoreContract } from './contract/message-store.contract.ts'

messageStoreContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-sqlite-'))
  const path = join(dir, 'messages.db')
  let store = new SqliteMessageStore(path)
  return {
    store,
    reopen: async () => {
      await store.close()
      store = new SqliteMessageStore(path)
      return store
    },
    cleanup: async () => {
      await store.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})
