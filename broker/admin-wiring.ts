import type { Logger } from 'pino'
import type { Settings } from '../config/schema.ts'
import { createAdminApi } from '../services/admin/admin-api.ts'
import { parseAdminKeys } from '../services/admin/admin-keys.ts'
import { type AdminDeps, adminRoutes } from '../services/admin/admin-routes.ts'
import { openAuditStore } from '../services/admin/open-audit-store.ts'
import type { BlockStore } from '../services/blocks/block-store.ts'
import type { ObjectStore } from '../services/media/object-store.ts'
import { exportUser } from '../services/privacy/user-export.ts'
import type { Stores } from './stores.ts'

/**
 * The admin API of a node (docs/admin.md): its audit log, its credentials (NATTER_ADMIN_KEYS) and
 * its routes over the node's stores and services. Without credentials the routes answer 404,
 * but the audit log is opened all the same, so `natter admin audit` reads it on any node.
 *
 * @returns the HTTP handler of /admin/v1/ paths, and close (the audit store)
 */
export async function wireAdmin(d: {
  settings: Settings
  stores: Stores
  blocks: BlockStore
  objects: ObjectStore
  accounts: AdminDeps['accounts']
  moderation: AdminDeps['moderation']
  log: Logger
}) {
  const audit = await openAuditStore(d.settings)
  const parsed = d.settings.adminKeys === undefined ? { keys: [] } : parseAdminKeys(d.settings.adminKeys)
  // The settings were validated at load (config/schema.ts), so a malformed list cannot get here.
  const keys = 'keys' in parsed ? parsed.keys : []
  const { stores } = d
  const handle = createAdminApi({
    keys,
    audit,
    log: d.log,
    routes: adminRoutes({
      audit,
      chats: stores.chats,
      messages: stores.messages,
      profiles: stores.profiles,
      delivery: stores.delivery,
      accounts: d.accounts,
      moderation: d.moderation,
      exportUser: (userId, out) =>
        exportUser(userId, { ...stores, blocks: d.blocks, objects: d.objects, accounts: d.accounts }, out),
    }),
  })
  return { handle, close: () => audit.close() }
}
