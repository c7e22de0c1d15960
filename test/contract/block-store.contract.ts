import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { BlockStore } from '../../services/blocks/block-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`

/** What every block store must do, whatever holds the data. */
export function blockStoreContract(name: string, open: () => Promise<Harness<BlockStore>>): void {
  describe(`block store contract: ${name}`, () => {
    let h: Harness<BlockStore>
    let store: BlockStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('records a block one way, keeps the first time when blocked again, and unblocks', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      assert.equal(await store.block({ blockerId: alice, blockedId: bob, at: 1000 }), true)
      assert.equal(await store.block({ blockerId: alice, blockedId: bob, at: 2000 }), false)
      assert.deepEqual(await store.get(alice, bob), { blockerId: alice, blockedId: bob, at: 1000 })
      assert.equal(await store.get(bob, alice), null, 'a block is one way')
      assert.equal(await store.unblock(bob, alice), false)
      assert.equal(await store.unblock(alice, bob), true)
      assert.equal(await store.unblock(alice, bob), false)
      assert.equal(await store.get(alice, bob), null)
    })

    it('lists whom a user blocks, oldest first, ties by blocked id', async () => {
      const [alice, x, y, z] = [unique('alice'), unique('x'), unique('y'), unique('z')]
      await store.block({ blockerId: alice, blockedId: z, at: 5 })
      await store.block({ blockerId: alice, blockedId: y, at: 3 })
      await store.block({ blockerId: alice, blockedId: x, at: 5 })
      await store.block({ blockerId: x, blockedId: alice, at: 1 })
      assert.deepEqual(
        (await store.blockedBy(alice)).map((b) => [b.blockedId, b.at]),
        [
          [y, 3],
          [x, 5],
          [z, 5],
        ],
      )
      assert.deepEqual(await store.blockedBy(unique('nobody')), [])
    })

    it('settles concurrent blocks of the same pair as one', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.block({ blockerId: alice, blockedId: bob, at: 100 + i })),
      )
      assert.equal(results.filter(Boolean).length, 1)
      assert.equal((await store.blockedBy(alice)).length, 1)
    })

    it('keeps blocks across a reopen, and lists them all', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      await store.block({ blockerId: alice, blockedId: bob, at: 7 })
      store = await h.reopen()
      assert.deepEqual(await store.get(alice, bob), { blockerId: alice, blockedId: bob, at: 7 })
      const all = await store.all()
      assert.ok(all.some((b) => b.blockerId === alice && b.blockedId === bob && b.at === 7))
    })

    it('removes every block by or of a user with removeUser, and no others', async () => {
      const [alice, bob, carol, dan] = [unique('alice'), unique('bob'), unique('carol'), unique('dan')]
      await store.block({ blockerId: alice, blockedId: bob, at: 1 })
      await store.block({ blockerId: alice, blockedId: carol, at: 2 })
      await store.block({ blockerId: carol, blockedId: alice, at: 3 })
      await store.block({ blockerId: bob, blockedId: carol, at: 4 })
      await store.block({ blockerId: dan, blockedId: bob, at: 5 })
      assert.equal(await store.removeUser(alice), 3)
      assert.equal(await store.removeUser(alice), 0, 'none left')
      await store.purgeErased()
      assert.deepEqual(await store.blockedBy(alice), [])
      assert.equal(await store.get(carol, alice), null)
      assert.deepEqual(await store.get(bob, carol), { blockerId: bob, blockedId: carol, at: 4 })
      assert.deepEqual(await store.get(dan, bob), { blockerId: dan, blockedId: bob, at: 5 })
    })
  })
}
