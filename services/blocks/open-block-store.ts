import { join } from 'node:path'
import type { BlockStore } from './block-store.ts'
import { MongoBlockStore } from './mongo-block-store.ts'
import { SqliteBlockStore } from './sqlite-block-store.ts'

/** MongoDB when mongodbUri is set, otherwise blocks.db in the data directory (as broker/stores.ts does). */
export async function openBlockStore(s: {
  mongodbUri?: string | undefined
  dataDir: string
}): Promise<BlockStore> {
  return s.mongodbUri
    ? MongoBlockStore.open(s.mongodbUri)
    : new SqliteBlockStore(join(s.dataDir, 'blocks.db'))
}
