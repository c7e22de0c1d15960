import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'
import { messageStoreContract } from './contract/message-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

messageStoreContract('SQLite', () => sqliteHarness('messages.db', (path) => new SqliteMessageStore(path)))
