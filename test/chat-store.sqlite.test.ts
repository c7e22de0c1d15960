import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqliteChatStore } from '../services/chats/sqlite-chat-store.ts'
import { chatStoreContract } from './contract/chat-store.contract.ts'

chatStoreContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-sqlite-'))
  const path = join(dir, 'chats.db')
  let store = new SqliteChatStore(path)
  return {
    store,
    reopen: async () => {
      await store.close()
      store = new SqliteChatStore(path)
      return store
    },
    cleanup: async () => {
      try {
        await store.close()
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
})
