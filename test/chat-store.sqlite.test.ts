import { SqliteChatStore } from '../services/chats/sqlite-chat-store.ts'
import { chatStoreContract } from './contract/chat-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

chatStoreContract('SQLite', () => sqliteHarness('chats.db', (path) => new SqliteChatStore(path)))
