import { SqlitePushStore } from '../services/push/sqlite-push-store.ts'
import { pushStoreContract } from './contract/push-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

pushStoreContract('SQLite', () => sqliteHarness('push.db', (path) => new SqlitePushStore(path)))
