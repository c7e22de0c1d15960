import { MongoCommitStore } from '../services/mls/mongo-commit-store.ts'
import { commitStoreContract } from './contract/commit-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

commitStoreContract('MongoDB (FerretDB)', async () => {
  let uri = ''
  const h = await mongoHarness((u) => {
    uri = u
    return MongoCommitStore.open(u)
  })
  return { ...h, another: () => MongoCommitStore.open(uri) }
})
