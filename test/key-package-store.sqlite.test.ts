import { SqliteKeyPackageStore } from '../services/mls/sqlite-key-package-store.ts'
import { keyPackageStoreContract } from './contract/key-package-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

keyPackageStoreContract('SQLite', async () => {
  let file = ''
  const h = await sqliteHarness('mls.db', (path) => {
    file = path
    return new SqliteKeyPackageStore(path)
  })
  return { ...h, another: async () => new SqliteKeyPackageStore(file) }
})
