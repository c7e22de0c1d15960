import { join } from 'node:path'
import type { AccountStore } from './account-store.ts'
import { MongoAccountStore } from './mongo-account-store.ts'
import { SqliteAccountStore } from './sqlite-account-store.ts'

/** MongoDB when mongodbUri is set, otherwise accounts.db in the data directory (as broker/stores.ts does). */
export async function openAccountStore(s: {
  mongodbUri?: string | undefined
  dataDir: string
}): Promise<AccountStore> {
  return s.mongodbUri
    ? MongoAccountStore.open(s.mongodbUri)
    : new SqliteAccountStore(join(s.dataDir, 'accounts.db'))
}
