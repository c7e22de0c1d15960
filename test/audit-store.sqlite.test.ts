import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { it } from 'node:test'
import { SqliteAuditStore } from '../services/admin/sqlite-audit-store.ts'
import { auditStoreContract } from './contract/audit-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

auditStoreContract('SQLite', () => sqliteHarness('audit.db', (path) => new SqliteAuditStore(path)))

it('SQLite: the audit log refuses UPDATE and DELETE, from any connection to the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-audit-'))
  try {
    const path = join(dir, 'audit.db')
    const store = new SqliteAuditStore(path)
    await store.append({
      at: 1,
      actor: 'ops',
      action: 'user.ban',
      target: 'user:mallory',
      params: {},
      result: 'ok',
      status: 200,
      remote: null,
    })
    const other = new DatabaseSync(path)
    assert.throws(() => other.exec("UPDATE audit_log SET actor = 'nobody'"), /append-only/)
    assert.throws(() => other.exec('DELETE FROM audit_log'), /append-only/)
    other.close()
    assert.equal((await store.list({ afterId: 0, limit: 10 }))[0]?.actor, 'ops')
    await store.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
