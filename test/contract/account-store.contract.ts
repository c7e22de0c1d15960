import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { AccountStore } from '../../services/accounts/account-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`

/** What every account store must do, whatever holds the data. */
export function accountStoreContract(name: string, open: () => Promise<Harness<AccountStore>>): void {
  describe(`account store contract: ${name}`, () => {
    let h: Harness<AccountStore>
    let store: AccountStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('bans once (the first reason and time stay), unbans only a banned user', async () => {
      const alice = unique('alice')
      assert.equal(await store.get(alice), null)
      const first = await store.ban(alice, { reason: 'spam', by: 'ops', at: 1000 })
      assert.equal(first.changed, true)
      assert.deepEqual(first.record, {
        userId: alice,
        status: 'banned',
        since: 1000,
        reason: 'spam',
        by: 'ops',
      })
      const again = await store.ban(alice, { reason: 'other', by: 'ops2', at: 2000 })
      assert.equal(again.changed, false)
      assert.deepEqual(again.record, first.record)
      assert.deepEqual(await store.get(alice), first.record)
      assert.equal(await store.unban(alice), true)
      assert.equal(await store.unban(alice), false)
      assert.equal(await store.get(alice), null)
    })

    it('turns a ban into an erase; an erase is never restarted, and erasing or erased users are not banned or unbanned', async () => {
      const bob = unique('bob')
      await store.ban(bob, { reason: 'abuse', by: 'ops', at: 1 })
      const begun = await store.beginErase(bob, { by: 'dpo', at: 5, step: 'cut' })
      assert.equal(begun.changed, true)
      assert.deepEqual(begun.record, {
        userId: bob,
        status: 'erasing',
        since: 5,
        reason: null,
        by: 'dpo',
        erase: { step: 'cut', done: 0, owner: null, leaseUntil: 0 },
      })
      const claimed = await store.claimErase(bob, 'node-a', 10, 100)
      assert.deepEqual(claimed?.erase, { step: 'cut', done: 0, owner: 'node-a', leaseUntil: 110 })
      assert.equal(await store.progress(bob, 'node-a', { step: 'messages', done: 42, leaseUntil: 150 }), true)
      const resumed = await store.beginErase(bob, { by: 'other', at: 20, step: 'cut' })
      assert.equal(resumed.changed, false, 'an erase under way keeps its progress')
      assert.deepEqual(resumed.record.erase, { step: 'messages', done: 42, owner: 'node-a', leaseUntil: 150 })
      assert.equal((await store.ban(bob, { reason: null, by: 'ops', at: 30 })).changed, false)
      assert.equal(await store.unban(bob), false)
      assert.equal((await store.get(bob))?.status, 'erasing')
    })

    it('lets one owner hold an erase until its lease runs out', async () => {
      const carol = unique('carol')
      assert.equal(await store.claimErase(carol, 'node-a', 0, 100), null, 'nothing to claim')
      await store.beginErase(carol, { by: 'dpo', at: 1, step: 'cut' })
      assert.ok(await store.claimErase(carol, 'node-a', 100, 1000))
      assert.equal(await store.claimErase(carol, 'node-b', 500, 1000), null, 'a live lease is kept')
      assert.ok(await store.claimErase(carol, 'node-a', 600, 1000), 'the owner renews')
      assert.equal(await store.progress(carol, 'node-b', { step: 'media', done: 1, leaseUntil: 9999 }), false)
      const taken = await store.claimErase(carol, 'node-b', 1600, 1000)
      assert.equal(taken?.erase?.owner, 'node-b', 'a lease that ran out is taken over')
      assert.equal(
        await store.progress(carol, 'node-a', { step: 'media', done: 1, leaseUntil: 9999 }),
        false,
        'the old owner learns it lost the erase',
      )
      assert.equal(await store.finishErase(carol, 'node-a', 2000), false)
      assert.equal(await store.finishErase(carol, 'node-b', 2000), true)
      const erased = await store.get(carol)
      assert.equal(erased?.status, 'erased')
      assert.equal(erased?.since, 2000)
      assert.deepEqual(erased?.erase, { step: 'done', done: 0, owner: null, leaseUntil: 0 })
      assert.equal(
        await store.claimErase(carol, 'node-b', 5000, 1000),
        null,
        'an erased user has nothing left to claim',
      )
      assert.equal(
        (await store.beginErase(carol, { by: 'x', at: 9, step: 'cut' })).changed,
        false,
        'erased stays erased',
      )
      assert.equal((await store.get(carol))?.status, 'erased')
    })

    it('gives one claim to concurrent claimers', async () => {
      const dan = unique('dan')
      await store.beginErase(dan, { by: 'dpo', at: 1, step: 'cut' })
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.claimErase(dan, `node-${i}`, 10, 1000)),
      )
      assert.equal(results.filter((r) => r !== null).length, 1)
      const concurrentBans = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.ban(dan, { reason: null, by: `o${i}`, at: 1 })),
      )
      assert.equal(concurrentBans.filter((r) => r.changed).length, 0)
    })

    it('keeps records across a reopen, and lists them all', async () => {
      const [frank, grace] = [unique('frank'), unique('grace')]
      await store.ban(frank, { reason: null, by: 'ops', at: 7 })
      await store.beginErase(grace, { by: 'dpo', at: 8, step: 'cut' })
      store = await h.reopen()
      assert.deepEqual(await store.get(frank), {
        userId: frank,
        status: 'banned',
        since: 7,
        reason: null,
        by: 'ops',
      })
      const all = await store.all()
      assert.ok(all.some((r) => r.userId === frank && r.status === 'banned'))
      assert.ok(all.some((r) => r.userId === grace && r.status === 'erasing' && r.erase?.step === 'cut'))
    })
  })
}
