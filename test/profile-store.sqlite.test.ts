import { SqliteProfileStore } from '../services/profiles/sqlite-profile-store.ts'
import { profileStoreContract } from './contract/profile-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

profileStoreContract('SQLite', () => sqliteHarness('profiles.db', (path) => new SqliteProfileStore(path)))
