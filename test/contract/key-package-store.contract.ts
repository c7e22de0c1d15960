import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { KeyPackageStore } from '../../services/mls/key-package-store.ts'
import { storable } from '../helpers/mls.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`
const MAX = 100
/** How many an add stored; -1 when it was over the cap. */
const storedOf = (r: { stored: number } | { overCap: number }) => ('stored' in r ? r.stored : -1)
const refs = (xs: { ref: string }[]) => xs.map((x) => x.ref)

/**
 * What every KeyPackage directory must do, whatever holds the data. `another` opens a second
 * store on the same data (another connection, or another node's client) for the races.
 */
export function keyPackageStoreContract(
  name: string,
  open: () => Promise<Harness<KeyPackageStore> & { another(): Promise<KeyPackageStore> }>,
): void {
  describe(`key package store contract: ${name}`, () => {
    let h: Awaited<ReturnType<typeof open>>
    let store: KeyPackageStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('stores a batch, counts it, and hands each package out once, oldest first', async () => {
      const userId = unique('ann')
      const now = Date.now()
      const kps = await storable(`${userId}/phone`, 3)
      assert.deepEqual(await store.count(userId, 'phone', now), { count: 0, lastResort: false })
      assert.deepEqual(await store.add({ userId, deviceId: 'phone', packages: kps, max: MAX, now }), {
        stored: 3,
        count: 3,
        lastResort: false,
      })
      const got: string[] = []
      for (let i = 0; i < 3; i++) {
        const claimed = await store.claim(userId, now)
        assert.equal(claimed.length, 1)
        assert.equal(claimed[0]?.deviceId, 'phone')
        assert.equal(claimed[0]?.lastResort, false)
        assert.deepEqual(claimed[0]?.bytes, kps[i]?.bytes)
        got.push(claimed[0]?.ref ?? '')
      }
      assert.deepEqual(got, refs(kps))
      assert.deepEqual(await store.claim(userId, now), [], 'none left, no last resort')
      assert.deepEqual(await store.count(userId, 'phone', now), { count: 0, lastResort: false })
    })

    it('stores a package uploaded twice (in one batch or two) once', async () => {
      const userId = unique('bo')
      const now = Date.now()
      const [a, b] = await storable(`${userId}/d1`, 2)
      assert.ok(a && b)
      assert.equal(
        storedOf(await store.add({ userId, deviceId: 'd1', packages: [a, a, b], max: MAX, now })),
        2,
      )
      assert.deepEqual(await store.add({ userId, deviceId: 'd1', packages: [b], max: MAX, now }), {
        stored: 0,
        count: 2,
        lastResort: false,
      })
    })

    it('never stores again a package it handed out', async () => {
      const userId = unique('bea')
      const now = Date.now()
      const [a, b] = await storable(`${userId}/d`, 2)
      assert.ok(a && b)
      await store.add({ userId, deviceId: 'd', packages: [a], max: MAX, now })
      assert.deepEqual(refs(await store.claim(userId, now)), [a.ref])
      assert.deepEqual(await store.add({ userId, deviceId: 'd', packages: [a, b], max: MAX, now }), {
        stored: 1,
        count: 1,
        lastResort: false,
      })
      assert.deepEqual(refs(await store.claim(userId, now)), [b.ref])
    })

    it('refuses a batch that would pass the cap, storing none of it', async () => {
      const userId = unique('cy')
      const now = Date.now()
      const kps = await storable(`${userId}/d`, 5)
      await store.add({ userId, deviceId: 'd', packages: kps.slice(0, 3), max: 4, now })
      assert.deepEqual(await store.add({ userId, deviceId: 'd', packages: kps.slice(3), max: 4, now }), {
        overCap: 3,
      })
      assert.deepEqual(await store.count(userId, 'd', now), { count: 3, lastResort: false })
      assert.equal(
        storedOf(await store.add({ userId, deviceId: 'd', packages: kps.slice(3, 4), max: 4, now })),
        1,
      )
    })

    it('hands out the last-resort package when none is left, and keeps it', async () => {
      const userId = unique('dee')
      const now = Date.now()
      const [one, lr, lr2] = await storable(`${userId}/tab`, 3)
      assert.ok(one && lr && lr2)
      assert.deepEqual(
        await store.add({ userId, deviceId: 'tab', packages: [one], lastResort: lr, max: MAX, now }),
        { stored: 1, count: 1, lastResort: true },
      )
      assert.deepEqual(refs(await store.claim(userId, now)), [one.ref])
      for (let i = 0; i < 3; i++) {
        const [c] = await store.claim(userId, now)
        assert.equal(c?.ref, lr.ref)
        assert.equal(c?.lastResort, true)
      }
      assert.deepEqual(await store.count(userId, 'tab', now), { count: 0, lastResort: true })
      // A new last resort replaces the old one.
      await store.add({ userId, deviceId: 'tab', packages: [], lastResort: lr2, max: MAX, now })
      assert.deepEqual(refs(await store.claim(userId, now)), [lr2.ref])
      // Uploading the last resort again as a one-time package does not make it consumable.
      assert.equal(storedOf(await store.add({ userId, deviceId: 'tab', packages: [lr2], max: MAX, now })), 0)
    })

    it('claims one package for every device of the user, ordered by device, and no one else’s', async () => {
      const userId = unique('eve')
      const other = unique('fay')
      const now = Date.now()
      for (const d of ['tablet', 'laptop', 'phone']) {
        await store.add({ userId, deviceId: d, packages: await storable(`${userId}/${d}`, 2), max: MAX, now })
      }
      await store.add({
        userId: other,
        deviceId: 'phone',
        packages: await storable(`${other}/phone`, 1),
        max: MAX,
        now,
      })
      const claimed = await store.claim(userId, now)
      assert.deepEqual(
        claimed.map((c) => c.deviceId),
        ['laptop', 'phone', 'tablet'],
      )
      assert.equal(new Set(refs(claimed)).size, 3)
      assert.deepEqual(await store.count(other, 'phone', now), { count: 1, lastResort: false })
    })

    it('neither counts nor hands out an expired package, and drops it on the next upload', async () => {
      const userId = unique('gus')
      const now = Date.now()
      const soon = now + 60_000
      const [live, dying] = await storable(`${userId}/d`, 2)
      assert.ok(live && dying)
      await store.add({ userId, deviceId: 'd', packages: [{ ...dying, notAfter: soon }, live], max: 2, now })
      const later = soon + 1
      assert.deepEqual(await store.count(userId, 'd', later), { count: 1, lastResort: false })
      // At `later` the expired one no longer counts against the cap.
      const [third] = await storable(`${userId}/d`, 1)
      assert.ok(third)
      assert.equal(
        storedOf(await store.add({ userId, deviceId: 'd', packages: [third], max: 2, now: later })),
        1,
      )
      assert.deepEqual(refs(await store.claim(userId, later)), [live.ref])
      assert.deepEqual(refs(await store.claim(userId, later)), [third.ref])
      assert.deepEqual(await store.claim(userId, later), [])
    })

    it('removes a device’s packages, or every device’s but one', async () => {
      const userId = unique('hal')
      const now = Date.now()
      for (const d of ['a', 'b', 'c']) {
        const [lr, ...kps] = await storable(`${userId}/${d}`, 3)
        await store.add({ userId, deviceId: d, packages: kps, lastResort: lr, max: MAX, now })
      }
      assert.equal(await store.removeDevice(userId, 'a'), 3)
      assert.equal(await store.removeDevice(userId, 'a'), 0)
      assert.deepEqual(
        (await store.claim(userId, now)).map((c) => c.deviceId),
        ['b', 'c'],
      )
      assert.equal(await store.removeOtherDevices(userId, 'c'), 2, "b's last resort and its one left")
      assert.deepEqual(
        (await store.claim(userId, now)).map((c) => c.deviceId),
        ['c'],
      )
    })

    it('removes every package of a user (account erase), and no one else’s', async () => {
      const userId = unique('kai')
      const other = unique('lou')
      const now = Date.now()
      const [lr, kp] = await storable(`${userId}/a`, 2)
      assert.ok(lr && kp)
      await store.add({ userId, deviceId: 'a', packages: [kp], lastResort: lr, max: MAX, now })
      await store.add({ userId, deviceId: 'b', packages: await storable(`${userId}/b`, 1), max: MAX, now })
      await store.add({
        userId: other,
        deviceId: 'a',
        packages: await storable(`${other}/a`, 1),
        max: MAX,
        now,
      })
      await store.claim(userId, now)
      await store.removeUser(userId)
      await store.purgeErased()
      assert.deepEqual(await store.claim(userId, now), [])
      assert.deepEqual(await store.count(userId, 'a', now), { count: 0, lastResort: false })
      assert.deepEqual(await store.count(other, 'a', now), { count: 1, lastResort: false })
      // Its claim records are gone too: the same package may be stored again after an erase.
      assert.equal(storedOf(await store.add({ userId, deviceId: 'a', packages: [kp], max: MAX, now })), 1)
    })

    it('never hands one package to two claimers at the same instant, through two connections', async () => {
      const userId = unique('ivy')
      const now = Date.now()
      const PACKAGES = 20
      const [lr, ...kps] = await storable(`${userId}/phone`, PACKAGES + 1)
      await store.add({ userId, deviceId: 'phone', packages: kps, lastResort: lr, max: MAX, now })
      const second = await h.another()
      try {
        // 30 claims for 20 packages, alternating connections, all in flight at once.
        const claims = await Promise.all(
          Array.from({ length: 30 }, (_, i) => (i % 2 ? second : store).claim(userId, now)),
        )
        const handed = claims.map(([c]) => c)
        const oneTime = handed.filter((c) => c && !c.lastResort).map((c) => c?.ref)
        assert.equal(oneTime.length, PACKAGES, 'every one-time package handed out')
        assert.equal(new Set(oneTime).size, PACKAGES, 'none twice')
        assert.ok(handed.filter((c) => c?.lastResort).every((c) => c?.ref === lr?.ref))
        assert.equal(handed.filter((c) => c?.lastResort).length, 10)
      } finally {
        await second.close()
      }
    })

    it('knows which packages a device uploaded: held, last-resort or handed out, until the device goes', async () => {
      const userId = unique('uma')
      const now = Date.now()
      const [held, handedOut, last] = await storable(`${userId}/phone`, 3)
      const [never] = await storable(`${userId}/phone`, 1)
      assert.ok(held && handedOut && last && never)
      await store.add({
        userId,
        deviceId: 'phone',
        packages: [handedOut, held],
        lastResort: last,
        max: MAX,
        now,
      })
      assert.deepEqual(refs(await store.claim(userId, now)), [handedOut.ref])
      for (const kp of [held, handedOut, last])
        assert.equal(await store.uploaded(userId, 'phone', kp.ref), true)
      assert.equal(await store.uploaded(userId, 'phone', never.ref), false)
      // Another device of the user, or the same device id of another user, did not upload it.
      assert.equal(await store.uploaded(userId, 'laptop', held.ref), false)
      assert.equal(await store.uploaded(unique('uma'), 'phone', held.ref), false)
      await store.removeDevice(userId, 'phone')
      assert.equal(await store.uploaded(userId, 'phone', handedOut.ref), false)
    })

    it('keeps packages across a reopen', async () => {
      const userId = unique('jo')
      const now = Date.now()
      const [lr, kp] = await storable(`${userId}/d`, 2)
      assert.ok(lr && kp)
      await store.add({ userId, deviceId: 'd', packages: [kp], lastResort: lr, max: MAX, now })
      store = await h.reopen()
      assert.deepEqual(await store.count(userId, 'd', now), { count: 1, lastResort: true })
      const [c] = await store.claim(userId, now)
      assert.deepEqual(c, { deviceId: 'd', ref: kp.ref, bytes: kp.bytes, lastResort: false })
    })
  })
}
