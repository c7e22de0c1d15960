import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { DeliveryStore, DeviceRef } from '../../services/delivery/delivery-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`
const device = (deviceId = 'phone'): DeviceRef => ({ userId: unique('alice'), deviceId })

/** What every delivery store must do, whatever holds the data (the aedes-persistence way). */
export function deliveryStoreContract(name: string, open: () => Promise<Harness<DeliveryStore>>): void {
  describe(`delivery store contract: ${name}`, () => {
    let h: Harness<DeliveryStore>
    let store: DeliveryStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    const seqs = async (d: DeviceRef) => Object.fromEntries(await store.cursors(d))

    it('starts a fresh session at the first CONNECT of a device', async () => {
      const d = device()
      assert.equal(await store.session(d), null)
      const r = await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      const session = {
        ...d,
        since: 1000,
        lastSeen: 1000,
        connected: true,
        conn: 'c1',
        clean: false,
        inboxQos: null,
      }
      assert.deepEqual(r, { session, previous: null, fresh: true })
      assert.deepEqual(await store.session(d), session)
      assert.deepEqual(await seqs(d), {})
    })

    it('resumes a session: since and cursors kept [MQTT-3.1.2-4]', async () => {
      const d = device()
      await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      await store.advance([{ ...d, chatId: 'g1', seq: 4 }])
      await store.disconnect({ ...d, conn: 'c1', at: 1500 })
      const r = await store.connect({ ...d, clean: false, conn: 'c2', at: 2000 })
      assert.equal(r.fresh, false)
      assert.deepEqual(r.previous, {
        ...d,
        since: 1000,
        lastSeen: 1500,
        connected: false,
        conn: 'c1',
        clean: false,
        inboxQos: null,
      })
      assert.deepEqual(r.session, {
        ...d,
        since: 1000,
        lastSeen: 2000,
        connected: true,
        conn: 'c2',
        clean: false,
        inboxQos: null,
      })
      assert.deepEqual(await store.session(d), r.session)
      assert.deepEqual(await seqs(d), { g1: 4 })
    })

    it('keeps the inbox subscription with a resumed session, and drops it with a new one', async () => {
      const d = device()
      await store.subscribe({ ...d, qos: 1 })
      assert.equal(await store.session(d), null, 'no session: nothing recorded')
      await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      await store.subscribe({ ...d, qos: 1 })
      const resumed = await store.connect({ ...d, clean: false, conn: 'c2', at: 2000 })
      assert.equal(resumed.session.inboxQos, 1)
      assert.equal((await store.session(d))?.inboxQos, 1)
      await store.subscribe({ ...d, qos: null })
      assert.equal((await store.session(d))?.inboxQos, null)
      await store.subscribe({ ...d, qos: 0 })
      const clean = await store.connect({ ...d, clean: true, conn: 'c3', at: 3000 })
      assert.equal(clean.session.inboxQos, null)
      assert.equal(clean.previous?.inboxQos, 0)
    })

    it('resumes a session whose node died without recording the disconnect', async () => {
      const d = device()
      await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      const r = await store.connect({ ...d, clean: false, conn: 'c2', at: 3000 })
      assert.equal(r.fresh, false)
      assert.equal(r.previous?.connected, true)
      assert.equal(r.session.since, 1000)
    })

    it('starts over on a clean CONNECT: cursors gone [MQTT-3.1.2-6]', async () => {
      const d = device()
      const other = { ...d, deviceId: 'laptop' }
      await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      await store.connect({ ...other, clean: false, conn: 'o1', at: 1000 })
      await store.advance([
        { ...d, chatId: 'g1', seq: 4 },
        { ...d, chatId: 'g2', seq: 9 },
        { ...other, chatId: 'g1', seq: 2 },
      ])
      const r = await store.connect({ ...d, clean: true, conn: 'c2', at: 2000 })
      assert.equal(r.fresh, true)
      assert.equal(r.previous?.since, 1000)
      assert.deepEqual(r.session, {
        ...d,
        since: 2000,
        lastSeen: 2000,
        connected: true,
        conn: 'c2',
        clean: true,
        inboxQos: null,
      })
      assert.deepEqual(await seqs(d), {})
      assert.deepEqual(await seqs(other), { g1: 2 }, 'another device of the user keeps its own')
    })

    it('starts over on any CONNECT after a clean session [MQTT-3.1.2-5]', async () => {
      const d = device()
      await store.connect({ ...d, clean: true, conn: 'c1', at: 1000 })
      await store.advance([{ ...d, chatId: 'g1', seq: 3 }])
      await store.disconnect({ ...d, conn: 'c1', at: 1500 })
      const r = await store.connect({ ...d, clean: false, conn: 'c2', at: 2000 })
      assert.equal(r.fresh, true)
      assert.equal(r.previous?.clean, true)
      assert.deepEqual(r.session, {
        ...d,
        since: 2000,
        lastSeen: 2000,
        connected: true,
        conn: 'c2',
        clean: false,
        inboxQos: null,
      })
      assert.deepEqual(await seqs(d), {})
      const again = await store.connect({ ...d, clean: false, conn: 'c3', at: 3000 })
      assert.equal(again.fresh, false, 'the persistent session that followed resumes')
      assert.equal(again.session.since, 2000)
    })

    it('ignores the late disconnect of a connection that was taken over', async () => {
      const d = device()
      await store.connect({ ...d, clean: false, conn: 'node-a', at: 1000 })
      await store.connect({ ...d, clean: false, conn: 'node-b', at: 2000 })
      await store.disconnect({ ...d, conn: 'node-a', at: 2500 })
      assert.deepEqual(await store.session(d), {
        ...d,
        since: 1000,
        lastSeen: 2000,
        connected: true,
        conn: 'node-b',
        clean: false,
        inboxQos: null,
      })
      await store.disconnect({ ...d, conn: 'node-b', at: 3000 })
      const s = await store.session(d)
      assert.deepEqual([s?.connected, s?.lastSeen], [false, 3000])
      await store.disconnect({ ...device(), conn: 'x', at: 3000 })
    })

    it('moves cursors forward only, and creates the missing ones', async () => {
      const d = device()
      await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      await store.advance([{ ...d, chatId: 'g1', seq: 5 }])
      await store.advance([{ ...d, chatId: 'g1', seq: 3 }])
      assert.deepEqual(await seqs(d), { g1: 5 }, 'never back')
      await store.advance([{ ...d, chatId: 'g1', seq: 5 }])
      await store.advance([{ ...d, chatId: 'g1', seq: 6 }])
      assert.deepEqual(await seqs(d), { g1: 6 })
      await store.advance([])
    })

    it('moves many cursors of many devices in one call, skipping devices without a session', async () => {
      const [a, b, gone] = [device(), device('laptop'), device()]
      await store.connect({ ...a, clean: false, conn: 'a', at: 1000 })
      await store.connect({ ...b, clean: false, conn: 'b', at: 1000 })
      await store.advance([{ ...a, chatId: 'g1', seq: 10 }])
      await store.advance([
        { ...a, chatId: 'g1', seq: 7 },
        { ...a, chatId: 'g2', seq: 1 },
        { ...a, chatId: 'g2', seq: 3 },
        { ...a, chatId: 'g2', seq: 2 },
        { ...b, chatId: 'g1', seq: 8 },
        { ...gone, chatId: 'g1', seq: 9 },
      ])
      assert.deepEqual(await seqs(a), { g1: 10, g2: 3 })
      assert.deepEqual(await seqs(b), { g1: 8 })
      assert.deepEqual(await seqs(gone), {}, 'a device without a session gets no cursor')
      assert.equal(await store.session(gone), null)
    })

    it('never moves a cursor back under concurrent moves, the first ones included', async () => {
      const d = device()
      await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      const order = [7, 20, 3, 19, 1, 12, 20, 5, 18, 2]
      await Promise.all(
        order.map((seq) =>
          store.advance([
            { ...d, chatId: 'g1', seq },
            { ...d, chatId: 'g2', seq: 21 - seq },
          ]),
        ),
      )
      assert.deepEqual(await seqs(d), { g1: 20, g2: 20 })
    })

    it("lists a chat's cursors across users and devices, and forgets one", async () => {
      const chatId = unique('chat')
      const a = device()
      const a2 = { ...a, deviceId: 'laptop' }
      const b = device()
      for (const d of [a, a2, b]) await store.connect({ ...d, clean: false, conn: 'c', at: 1000 })
      await store.advance([
        { ...a, chatId, seq: 3 },
        { ...a2, chatId, seq: 1 },
        { ...b, chatId, seq: 2 },
        { ...b, chatId: unique('chat'), seq: 7 },
      ])
      const byDevice = async () =>
        (await store.chatCursors(chatId)).map((c) => `${c.userId}/${c.deviceId}:${c.chatId}:${c.seq}`).sort()
      assert.deepEqual(
        await byDevice(),
        [
          `${a.userId}/phone:${chatId}:3`,
          `${a.userId}/laptop:${chatId}:1`,
          `${b.userId}/phone:${chatId}:2`,
        ].sort(),
      )
      await store.forgetCursor({ ...a, chatId })
      await store.forgetCursor({ ...a, chatId: 'never-there' })
      assert.deepEqual(
        await byDevice(),
        [`${a.userId}/laptop:${chatId}:1`, `${b.userId}/phone:${chatId}:2`].sort(),
      )
      assert.deepEqual(await seqs(a), {})
      assert.deepEqual(await store.chatCursors(unique('empty')), [])
    })

    it('moves lastSeen of the devices touched, and only theirs', async () => {
      const [a, b, c] = [device(), device(), device()]
      for (const d of [a, b, c]) await store.connect({ ...d, clean: false, conn: 'c', at: 1000 })
      await store.touch([a, b, device()], 5000)
      await store.touch([], 6000)
      assert.equal((await store.session(a))?.lastSeen, 5000)
      assert.equal((await store.session(b))?.lastSeen, 5000)
      assert.equal((await store.session(c))?.lastSeen, 1000)
      assert.equal((await store.session(a))?.connected, true, 'touch changes nothing else')
    })

    it('expires the sessions not seen since a cutoff, with their cursors', async () => {
      // Times far above the other cases', so the cutoff picks this case's devices only.
      const t = 1_000_000_000
      const [old, older, recent, touched] = [device(), device(), device(), device()]
      await store.connect({ ...old, clean: false, conn: 'c', at: t + 100 })
      await store.connect({ ...older, clean: true, conn: 'c', at: t + 50 })
      await store.disconnect({ ...older, conn: 'c', at: t + 60 })
      await store.connect({ ...recent, clean: false, conn: 'c', at: t + 200 })
      await store.connect({ ...touched, clean: false, conn: 'c', at: t + 100 })
      await store.touch([touched], t + 300)
      await store.advance([
        { ...old, chatId: 'g1', seq: 2 },
        { ...recent, chatId: 'g1', seq: 5 },
      ])
      const removed = await store.expire(t + 200)
      const mine = new Set([old, older, recent, touched].map((d) => d.userId))
      assert.deepEqual(
        removed
          .filter((d) => mine.has(d.userId))
          .map((d) => `${d.userId}/${d.deviceId}`)
          .sort(),
        [old, older].map((d) => `${d.userId}/${d.deviceId}`).sort(),
        'exactly at the cutoff is kept',
      )
      assert.equal(await store.session(old), null)
      assert.equal(await store.session(older), null)
      assert.deepEqual(await seqs(old), {})
      assert.equal((await store.session(recent))?.since, t + 200)
      assert.deepEqual(await seqs(recent), { g1: 5 })
      assert.ok(await store.session(touched))
      assert.deepEqual(
        (await store.expire(t + 200)).filter((d) => mine.has(d.userId)),
        [],
        'nothing left to expire',
      )
      await store.advance([{ ...old, chatId: 'g1', seq: 9 }])
      assert.deepEqual(await seqs(old), {}, 'an expired device no longer moves')
      assert.equal((await store.connect({ ...old, clean: false, conn: 'c2', at: t + 400 })).fresh, true)
    })

    it('keeps sessions and cursors across a reopen', async () => {
      const d = device()
      const chatId = unique('chat')
      await store.connect({ ...d, clean: false, conn: 'c1', at: 1000 })
      await store.advance([
        { ...d, chatId, seq: 12 },
        { ...d, chatId: 'g2', seq: 1 },
      ])
      await store.disconnect({ ...d, conn: 'c1', at: 1100 })
      store = await h.reopen()
      assert.deepEqual(await store.session(d), {
        ...d,
        since: 1000,
        lastSeen: 1100,
        connected: false,
        conn: 'c1',
        clean: false,
        inboxQos: null,
      })
      assert.deepEqual(await seqs(d), { [chatId]: 12, g2: 1 })
      assert.deepEqual(await store.chatCursors(chatId), [{ ...d, chatId, seq: 12 }])
      const r = await store.connect({ ...d, clean: false, conn: 'c2', at: 2000 })
      assert.equal(r.fresh, false)
      assert.equal(r.session.since, 1000)
    })

    it('lists a user’s devices with first seen kept across sessions, and counts them', async () => {
      const userId = unique('dana')
      await store.connect({ userId, deviceId: 'phone', clean: true, conn: 'c1', at: 1000 })
      await store.disconnect({ userId, deviceId: 'phone', conn: 'c1', at: 1100 })
      // A clean session starts anew at the next CONNECT: since moves, first seen does not.
      await store.connect({ userId, deviceId: 'phone', clean: true, conn: 'c2', at: 2000 })
      await store.connect({ userId, deviceId: 'laptop', clean: false, conn: 'c3', at: 1500 })
      await store.disconnect({ userId, deviceId: 'laptop', conn: 'c3', at: 1600 })
      await store.connect({ userId: unique('other'), deviceId: 'phone', clean: false, conn: 'c4', at: 1 })
      assert.equal((await store.session({ userId, deviceId: 'phone' }))?.since, 2000)
      assert.deepEqual(await store.devices(userId), [
        { deviceId: 'laptop', firstSeen: 1500, lastSeen: 1600, connected: false },
        { deviceId: 'phone', firstSeen: 1000, lastSeen: 2000, connected: true },
      ])
      assert.equal(await store.deviceCount(userId), 2)
      assert.deepEqual(await store.devices(unique('nobody')), [])
    })

    it('removes one device with its cursors, and nothing of the others', async () => {
      const userId = unique('eve')
      const phone = { userId, deviceId: 'phone' }
      const laptop = { userId, deviceId: 'laptop' }
      await store.connect({ ...phone, clean: false, conn: 'c1', at: 1000 })
      await store.connect({ ...laptop, clean: false, conn: 'c2', at: 1000 })
      await store.advance([
        { ...phone, chatId: 'g1', seq: 3 },
        { ...laptop, chatId: 'g1', seq: 4 },
      ])
      assert.equal(await store.remove(phone), true)
      assert.equal(await store.remove(phone), false)
      assert.equal(await store.session(phone), null)
      assert.deepEqual(await seqs(phone), {})
      assert.deepEqual(await seqs(laptop), { g1: 4 })
      assert.equal(await store.deviceCount(userId), 1)
      // A device that comes back after its removal is a new one.
      await store.connect({ ...phone, clean: false, conn: 'c3', at: 5000 })
      assert.deepEqual((await store.devices(userId)).find((x) => x.deviceId === 'phone')?.firstSeen, 5000)
    })

    it('keeps revocations: the greater before per device, the latest "every device but one"', async () => {
      const userId = unique('fay')
      await store.revoke({ userId, deviceId: 'phone', before: 2000, except: null })
      await store.revoke({ userId, deviceId: 'phone', before: 1000, except: null })
      await store.revoke({ userId, deviceId: null, before: 3000, except: 'laptop' })
      await store.revoke({ userId, deviceId: null, before: 4000, except: 'tablet' })
      store = await h.reopen()
      const mine = (await store.revocations()).filter((r) => r.userId === userId)
      assert.deepEqual(
        mine.sort((a, b) => String(a.deviceId).localeCompare(String(b.deviceId))),
        [
          { userId, deviceId: null, before: 4000, except: 'tablet' },
          { userId, deviceId: 'phone', before: 2000, except: null },
        ].sort((a, b) => String(a.deviceId).localeCompare(String(b.deviceId))),
      )
    })

    it("forgets every session, cursor and revocation of a user with forgetUser, and no one else's", async () => {
      const alice = unique('alice')
      const bob = unique('bob')
      const [phone, laptop] = [
        { userId: alice, deviceId: 'phone' },
        { userId: alice, deviceId: 'laptop' },
      ]
      const bobs = { userId: bob, deviceId: 'phone' }
      for (const d of [phone, laptop, bobs]) {
        await store.connect({ ...d, clean: false, conn: 'c', at: 1000 })
        await store.advance([{ ...d, chatId: 'g', seq: 3 }])
      }
      await store.revoke({ userId: alice, deviceId: 'tablet', before: 500, except: null })
      await store.revoke({ userId: alice, deviceId: null, before: 600, except: 'phone' })
      await store.revoke({ userId: bob, deviceId: 'old', before: 700, except: null })
      assert.deepEqual(await store.forgetUser(alice), [laptop, phone])
      assert.deepEqual(await store.forgetUser(alice), [], 'nothing left')
      await store.purgeErased()
      assert.deepEqual(await store.devices(alice), [])
      assert.equal(await store.session(phone), null)
      assert.deepEqual(await seqs(phone), {})
      assert.deepEqual(await seqs(laptop), {})
      assert.deepEqual(
        (await store.revocations()).filter((r) => r.userId === alice || r.userId === bob),
        [{ userId: bob, deviceId: 'old', before: 700, except: null }],
      )
      assert.equal((await store.session(bobs))?.connected, true)
      assert.deepEqual(await seqs(bobs), { g: 3 })
      assert.deepEqual(
        (await store.chatCursors('g')).filter((c) => c.userId === alice || c.userId === bob),
        [{ ...bobs, chatId: 'g', seq: 3 }],
      )
    })
  })
}
