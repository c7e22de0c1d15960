import { MongoChatStore } from '../services/chats/mongo-chat-store.ts'
import { chatStoreContract } from './contract/chat-store.contract.ts'
import { startFerretDb } from './helpers/ferretdb.ts'

chatStoreContract('MongoDB (FerretDB)', async () => {
  const ferret = await startFerretDb()
  let store = await MongoChatStore.open(ferret.uri)
  return {
    store,
    reopen: async () => {
      await store.close()
      store = await MongoChatStore.open(ferret.uri)
      return store
    },
    cleanup: async () => {
      try {
        await store.close()
      } finally {
        await ferret.stop()
      }
    },
  }
})
