import { SqliteAccountStore } from '../services/accounts/sqlite-account-store.ts'
import { accountStoreContract } from './contract/account-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

accountStoreContract('SQLite', () => sqliteHarness('accounts.db', (path) => new SqliteAccountStore(path)))
