import { MongoMessageStore } from '../services/messages/mongo-message-store.ts'
import { messageStoreContract } from './contract/message-store.contract.ts'
import { startFerretDb } from './helpers/ferretdb.ts'

messageStoreContract('MongoDB (FerretDB)', async () => {
  const ferret = await startFerretDb()
  let store = await MongoMessageStore.open(ferret.uri)
  return {
    store,
    reopen: async () => {
      await store.close()
      store = await MongoMessageStore.open(ferret.uri)
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
