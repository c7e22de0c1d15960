import { SqliteBlockStore } from '../services/blocks/sqlite-block-store.ts'
import { blockStoreContract } from './contract/block-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

blockStoreContract('SQLite', () => sqliteHarness('blocks.db', (path) => new SqliteBlockStore(path)))
