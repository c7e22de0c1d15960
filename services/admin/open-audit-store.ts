import { join } from 'node:path'
import type { AuditStore } from './audit-store.ts'
import { MongoAuditStore } from './mongo-audit-store.ts'
import { SqliteAuditStore } from './sqlite-audit-store.ts'

/** MongoDB when mongodbUri is set, otherwise audit.db in the data directory (as broker/stores.ts does). */
export async function openAuditStore(s: {
  mongodbUri?: string | undefined
  dataDir: string
}): Promise<AuditStore> {
  return s.mongodbUri ? MongoAuditStore.open(s.mongodbUri) : new SqliteAuditStore(join(s.dataDir, 'audit.db'))
}
