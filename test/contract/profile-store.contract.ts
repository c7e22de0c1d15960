import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ProfileStore } from '../../services/profiles/profile-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`

/** What every profile store must do, whatever holds the data. */
export function profileStoreContract(name: string, open: () => Promise<Harness<ProfileStore>>): void {
  describe(`profile store contract: ${name}`, () => {
    let h: Harness<ProfileStore>
    let store: ProfileStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('creates a profile on the first change, with what was not named empty', async () => {
      const userId = unique('ann')
      assert.deepEqual(await store.get([userId]), [])
      const p = await store.set({ userId, displayName: 'Ann Lee', at: 1000 })
      assert.deepEqual(p, { userId, displayName: 'Ann Lee', avatar: null, updatedAt: 1000 })
      assert.deepEqual(await store.get([userId]), [p])
    })

    it('keeps the fields a change leaves out, and clears those set to null', async () => {
      const userId = unique('bo')
      await store.set({ userId, displayName: 'Bo', avatar: 'm_1', at: 1000 })
      assert.deepEqual(await store.set({ userId, avatar: 'm_2', at: 2000 }), {
        userId,
        displayName: 'Bo',
        avatar: 'm_2',
        updatedAt: 2000,
      })
      assert.deepEqual(await store.set({ userId, displayName: null, at: 3000 }), {
        userId,
        displayName: null,
        avatar: 'm_2',
        updatedAt: 3000,
      })
      assert.deepEqual(await store.set({ userId, avatar: null, at: 4000 }), {
        userId,
        displayName: null,
        avatar: null,
        updatedAt: 4000,
      })
    })

    it('answers many users in one call, only those with a profile, each once', async () => {
      const a = unique('a')
      const b = unique('b')
      await store.set({ userId: a, displayName: 'A', at: 1 })
      await store.set({ userId: b, displayName: 'B', at: 2 })
      const got = await store.get([b, unique('nobody'), a, a])
      assert.deepEqual(
        got.sort((x, y) => x.updatedAt - y.updatedAt).map((p) => p.displayName),
        ['A', 'B'],
      )
      assert.deepEqual(await store.get([]), [])
    })

    it('knows which media are avatars, and whose', async () => {
      const userId = unique('cy')
      const media = unique('m')
      assert.equal(await store.isAvatar(media), false)
      await store.set({ userId, avatar: media, at: 1 })
      assert.equal(await store.isAvatar(media), true)
      assert.deepEqual(await store.avatarOwners(media), [userId])
      await store.set({ userId, avatar: null, at: 2 })
      assert.equal(await store.isAvatar(media), false)
      assert.deepEqual(await store.avatarOwners(media), [])
    })

    it('keeps names in any script exactly, and survives a reopen', async () => {
      const userId = unique('dee')
      await store.set({ userId, displayName: 'Zoë 李 👩‍👩‍👧', avatar: 'm_x', at: 5 })
      store = await h.reopen()
      assert.deepEqual(await store.get([userId]), [
        { userId, displayName: 'Zoë 李 👩‍👩‍👧', avatar: 'm_x', updatedAt: 5 },
      ])
    })

    it('applies concurrent first changes of different fields both', async () => {
      const userId = unique('eve')
      await Promise.all([
        store.set({ userId, displayName: 'Eve', at: 10 }),
        store.set({ userId, avatar: 'm_eve', at: 10 }),
      ])
      const [p] = await store.get([userId])
      assert.equal(p?.displayName, 'Eve')
      assert.equal(p?.avatar, 'm_eve')
    })

    it("removes a user's profile with remove, and no one else's", async () => {
      const [ann, ben] = [unique('ann'), unique('ben')]
      await store.set({ userId: ann, displayName: 'Ann', avatar: 'm_ann', at: 1 })
      await store.set({ userId: ben, displayName: 'Ben', at: 2 })
      assert.equal(await store.remove(ann), true)
      assert.equal(await store.remove(ann), false, 'gone already')
      await store.purgeErased()
      assert.deepEqual(await store.get([ann, ben]), [
        { userId: ben, displayName: 'Ben', avatar: null, updatedAt: 2 },
      ])
      assert.equal(await store.isAvatar('m_ann'), false)
      assert.equal(await store.remove(unique('nobody')), false)
    })
  })
}
