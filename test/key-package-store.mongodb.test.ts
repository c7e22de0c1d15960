import { MongoKeyPackageStore } from '../services/mls/mongo-key-package-store.ts'
import { keyPackageStoreContract } from './contract/key-package-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

keyPackageStoreContract('MongoDB (FerretDB)', async () => {
  let uri = ''
  const h = await mongoHarness((u) => {
    uri = u
    return MongoKeyPackageStore.open(u)
  })
  return { ...h, another: () => MongoKeyPackageStore.open(uri) }
})
