import { SqliteCommitStore } from '../services/mls/sqlite-commit-store.ts'
import { commitStoreContract } from './contract/commit-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

commitStoreContract('SQLite', async () => {
  let file = ''
  const h = await sqliteHarness('mls.db', (path) => {
    file = path
    return new SqliteCommitStore(path)
  })
  return { ...h, another: async () => new SqliteCommitStore(file) }
})
