import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { AuditStore, NewAuditEntry } from '../../services/admin/audit-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`

const entry = (o: Partial<NewAuditEntry> = {}): NewAuditEntry => ({
  at: 1_700_000_000_000,
  actor: 'ops',
  action: 'user.ban',
  target: `user:${unique('u')}`,
  params: { reason: 'spam' },
  result: 'ok',
  status: 200,
  remote: '127.0.0.1',
  ...o,
})

/** What every audit store must do, whatever holds the data. */
export function auditStoreContract(name: string, open: () => Promise<Harness<AuditStore>>): void {
  describe(`audit store contract: ${name}`, () => {
    let h: Harness<AuditStore>
    let store: AuditStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('gives ascending ids and returns entries as written, in order, after a cursor', async () => {
      const first = await store.append(entry())
      const second = await store.append(
        entry({ actor: null, result: 'unauthorized', status: 401, params: {} }),
      )
      assert.ok(second.id > first.id)
      const listed = await store.list({ afterId: first.id - 1, limit: 10 })
      assert.deepEqual(listed.slice(0, 2), [first, second])
      assert.deepEqual(await store.list({ afterId: first.id, limit: 1 }), [second])
    })

    it('filters by actor, action and target, and pages with limit', async () => {
      const target = `chat:${unique('c')}`
      const written = []
      for (let i = 0; i < 5; i++)
        written.push(
          await store.append(entry({ target, action: i % 2 ? 'message.delete' : 'member.remove' })),
        )
      await store.append(entry({ actor: 'backup', target }))
      const ofTarget = await store.list({ afterId: 0, limit: 100, target })
      assert.equal(ofTarget.length, 6)
      const deletes = await store.list({ afterId: 0, limit: 100, target, action: 'message.delete' })
      assert.deepEqual(
        deletes.map((e) => e.id),
        written.filter((e) => e.action === 'message.delete').map((e) => e.id),
      )
      const byBackup = await store.list({ afterId: 0, limit: 100, target, actor: 'backup' })
      assert.equal(byBackup.length, 1)
      const page1 = await store.list({ afterId: 0, limit: 2, target })
      const page2 = await store.list({ afterId: (page1.at(-1) as { id: number }).id, limit: 2, target })
      assert.deepEqual(
        [...page1, ...page2].map((e) => e.id),
        ofTarget.slice(0, 4).map((e) => e.id),
      )
    })

    it('keeps every entry across a reopen, and goes on numbering after the last', async () => {
      const target = `user:${unique('kept')}`
      const before = await store.append(entry({ target }))
      store = await h.reopen()
      const afterReopen = await store.append(entry({ target }))
      assert.ok(afterReopen.id > before.id)
      assert.deepEqual(await store.list({ afterId: 0, limit: 10, target }), [before, afterReopen])
    })

    it('numbers concurrent appends uniquely', async () => {
      const target = `user:${unique('busy')}`
      const ids = await Promise.all(
        Array.from({ length: 20 }, () => store.append(entry({ target })).then((e) => e.id)),
      )
      assert.equal(new Set(ids).size, 20)
      assert.equal((await store.list({ afterId: 0, limit: 100, target })).length, 20)
    })
  })
}
