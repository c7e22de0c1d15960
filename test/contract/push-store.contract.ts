import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { PushStore, Registration } from '../../services/push/push-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`

function registration(o: Partial<Registration> = {}): Registration {
  return {
    userId: unique('bob'),
    deviceId: 'phone',
    platform: 'apns',
    token: unique('token'),
    apnsTopic: 'com.example.chat',
    sandbox: true,
    locale: 'en-GB',
    hideText: false,
    updatedAt: 1000,
    ...o,
  }
}

/** What every push store must do, whatever holds the data. */
export function pushStoreContract(name: string, open: () => Promise<Harness<PushStore>>): void {
  describe(`push store contract: ${name}`, () => {
    let h: Harness<PushStore>
    let store: PushStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('registers a device, replaces its token on re-registration, and removes it', async () => {
      const r = registration()
      await store.register(r)
      assert.deepEqual(await store.registration(r.userId, 'phone'), r)
      const renewed = {
        ...r,
        platform: 'fcm' as const,
        token: unique('fcm'),
        apnsTopic: null,
        updatedAt: 2000,
      }
      await store.register(renewed)
      assert.deepEqual(await store.registrations([r.userId]), [renewed])
      assert.equal(await store.unregister(r.userId, 'phone'), true)
      assert.equal(await store.registration(r.userId, 'phone'), null)
      assert.equal(await store.unregister(r.userId, 'phone'), false)
    })

    it('moves a token to the device that registers it last', async () => {
      const first = registration()
      await store.register(first)
      const second = registration({ token: first.token })
      await store.register(second)
      assert.equal(await store.registration(first.userId, 'phone'), null, 'the old owner lost the token')
      assert.deepEqual(await store.registration(second.userId, 'phone'), second)
    })

    it('removes a refused token only while the device still has it', async () => {
      const r = registration()
      await store.register(r)
      const renewed = { ...r, token: unique('fresh') }
      await store.register(renewed)
      assert.equal(
        await store.unregisterToken(r.userId, 'phone', r.token),
        false,
        'a stale token leaves the new one',
      )
      assert.equal(await store.unregisterToken(r.userId, 'phone', renewed.token), true)
      assert.equal(await store.registration(r.userId, 'phone'), null)
    })

    it('mutes and unmutes chats per user', async () => {
      const user = unique('carol')
      await store.setMuted(user, 'g1', true)
      await store.setMuted(user, 'g2', true)
      await store.setMuted(user, 'g1', true)
      const chats = async (u: string) => (await store.mutes([u])).map((m) => m.chatId).sort()
      assert.deepEqual(await chats(user), ['g1', 'g2'])
      await store.setMuted(user, 'g1', false)
      assert.deepEqual(await chats(user), ['g2'])
    })

    it('reads the devices and mutes of many users at once', async () => {
      const [a, b, c] = [registration(), registration({ deviceId: 'laptop' }), registration()]
      const b2 = { ...b, deviceId: 'phone', token: unique('token') }
      for (const r of [a, b, b2, c]) await store.register(r)
      await store.setMuted(a.userId, 'g1', true)
      await store.setMuted(b.userId, 'g2', true)
      const got = await store.registrations([b.userId, a.userId, unique('nobody')])
      assert.deepEqual(
        got.map((r) => `${r.userId}/${r.deviceId}`).sort(),
        [`${a.userId}/phone`, `${b.userId}/laptop`, `${b.userId}/phone`].sort(),
      )
      assert.deepEqual(
        (await store.mutes([a.userId, b.userId, c.userId])).map((m) => `${m.userId}:${m.chatId}`).sort(),
        [`${a.userId}:g1`, `${b.userId}:g2`].sort(),
      )
      assert.deepEqual(await store.registrations([]), [])
    })

    it('handles a batch of new, idle, covered and pending jobs in one call', async () => {
      const u = unique('ida')
      const job = (chatId: string, seq: number, dueAt: number) => ({
        userId: u,
        deviceId: 'phone',
        chatId,
        seq,
        dueAt,
      })
      await store.enqueue([job('idle', 1, 100), job('covered', 5, 100), job('pending', 1, 10_000)])
      const claimed = (await store.claim(150, 'w1', 1000, 100)).filter((j) => j.userId === u)
      assert.deepEqual(claimed.map((j) => j.chatId).sort(), ['covered', 'idle'])
      for (const j of claimed) await store.finish(j, 'w1', j.claimedSeq, 160)
      await store.enqueue([
        job('new', 7, 500),
        job('idle', 2, 500),
        job('covered', 4, 500),
        job('pending', 3, 500),
      ])
      const state = async (chatId: string) => {
        const j = await store.job(u, 'phone', chatId)
        return [j?.state, j?.lastSeq, j?.dueAt]
      }
      assert.deepEqual(await state('new'), ['pending', 7, 500])
      assert.deepEqual(await state('idle'), ['pending', 2, 500], 'an idle job wakes for a newer message')
      assert.deepEqual(
        await state('covered'),
        ['idle', 5, 160],
        'an older message than the one notified is ignored',
      )
      assert.deepEqual(await state('pending'), ['pending', 3, 10_000], 'a pending job keeps its due time')
    })

    it('collapses a burst into one job, due when its first message came', async () => {
      const userId = unique('dan')
      const job = { userId, deviceId: 'phone', chatId: 'g1' }
      await store.enqueue([{ ...job, seq: 5, dueAt: 100 }])
      await store.enqueue([
        { ...job, seq: 6, dueAt: 200 },
        { ...job, seq: 7, dueAt: 300 },
      ])
      const j = await store.job(userId, 'phone', 'g1')
      assert.equal(j?.state, 'pending')
      assert.equal(j?.lastSeq, 7)
      assert.equal(j?.dueAt, 100)
      assert.deepEqual(
        await store.claim(99, 'w1', 1000, 100).then((js) => js.filter((x) => x.userId === userId)),
        [],
      )
    })

    it('lets one worker claim a due job, sends once, and closes it', async () => {
      const userId = unique('eve')
      await store.enqueue([{ userId, deviceId: 'phone', chatId: 'g1', seq: 3, dueAt: 100 }])
      const mine = (await store.claim(150, 'w1', 1000, 100)).filter((j) => j.userId === userId)
      assert.equal(mine.length, 1)
      const [job] = mine as [NonNullable<(typeof mine)[0]>]
      assert.equal(job.claimedSeq, 3)
      const theirs = (await store.claim(150, 'w2', 1000, 100)).filter((j) => j.userId === userId)
      assert.deepEqual(theirs, [], 'a claimed job is not claimed twice')
      assert.equal(await store.markSending(job, 'w2'), false, 'only its owner may send it')
      assert.equal(await store.markSending(job, 'w1'), true)
      await store.finish(job, 'w1', 3, 160)
      const done = await store.job(userId, 'phone', 'g1')
      assert.equal(done?.state, 'idle')
      assert.equal(done?.coveredSeq, 3)
      await store.enqueue([{ userId, deviceId: 'phone', chatId: 'g1', seq: 3, dueAt: 170 }])
      assert.equal(
        (await store.job(userId, 'phone', 'g1'))?.state,
        'idle',
        'a covered message is not notified again',
      )
    })

    it('keeps messages that arrive during a send for the next push', async () => {
      const userId = unique('fay')
      await store.enqueue([{ userId, deviceId: 'phone', chatId: 'g1', seq: 1, dueAt: 100 }])
      const [job] = (await store.claim(150, 'w1', 1000, 100)).filter((j) => j.userId === userId)
      assert.ok(job)
      await store.markSending(job, 'w1')
      await store.enqueue([{ userId, deviceId: 'phone', chatId: 'g1', seq: 2, dueAt: 160 }])
      await store.finish(job, 'w1', job.claimedSeq, 170)
      const next = await store.job(userId, 'phone', 'g1')
      assert.equal(next?.state, 'pending')
      assert.equal(next?.coveredSeq, 1)
      assert.equal(next?.lastSeq, 2)
      assert.equal(next?.dueAt, 170)
    })

    it('retries later, and gives a claim whose worker died to another worker', async () => {
      const userId = unique('gil')
      await store.enqueue([{ userId, deviceId: 'phone', chatId: 'g1', seq: 1, dueAt: 100 }])
      const [job] = (await store.claim(150, 'w1', 1000, 100)).filter((j) => j.userId === userId)
      assert.ok(job)
      await store.retryAt(job, 'w1', 500, 1)
      const waiting = await store.job(userId, 'phone', 'g1')
      assert.deepEqual([waiting?.state, waiting?.dueAt, waiting?.attempts], ['pending', 500, 1])
      const [again] = (await store.claim(600, 'w1', 1000, 100)).filter((j) => j.userId === userId)
      assert.ok(again)
      // w1 dies before calling the provider; after its lease w2 takes the job.
      const [taken] = (await store.claim(1700, 'w2', 1000, 100)).filter((j) => j.userId === userId)
      assert.equal(taken?.owner, 'w2')
      assert.equal(await store.markSending(again, 'w1'), false)
    })

    it('closes a job whose worker died during the provider call without sending it again', async () => {
      const userId = unique('hal')
      await store.enqueue([{ userId, deviceId: 'phone', chatId: 'g1', seq: 4, dueAt: 100 }])
      const [job] = (await store.claim(150, 'w1', 1000, 100)).filter((j) => j.userId === userId)
      assert.ok(job)
      await store.markSending(job, 'w1')
      assert.deepEqual(
        (await store.claim(2000, 'w2', 1000, 100)).filter((j) => j.userId === userId),
        [],
      )
      const recovered = (await store.recoverInDoubt(2000, 100)).filter((j) => j.userId === userId)
      assert.equal(recovered.length, 1)
      const closed = await store.job(userId, 'phone', 'g1')
      assert.deepEqual([closed?.state, closed?.coveredSeq], ['idle', 4])
    })

    it('drops the jobs of a device that unregisters', async () => {
      const r = registration()
      await store.register(r)
      await store.enqueue([{ userId: r.userId, deviceId: 'phone', chatId: 'g1', seq: 1, dueAt: 100 }])
      await store.unregister(r.userId, 'phone')
      assert.equal(await store.job(r.userId, 'phone', 'g1'), null)
    })

    it('keeps registrations and jobs across a reopen', async () => {
      const r = registration()
      await store.register(r)
      await store.enqueue([{ userId: r.userId, deviceId: 'phone', chatId: 'g9', seq: 2, dueAt: 100 }])
      store = await h.reopen()
      assert.deepEqual(await store.registration(r.userId, 'phone'), r)
      assert.equal((await store.job(r.userId, 'phone', 'g9'))?.state, 'pending')
    })

    it("lists a user's registrations with registrationsOf and forgets them, mutes and jobs with forgetUser", async () => {
      const alice = unique('alice')
      const bob = unique('bob')
      const phone = registration({ userId: alice, deviceId: 'phone' })
      const tablet = registration({ userId: alice, deviceId: 'tablet', platform: 'fcm', apnsTopic: null })
      const bobs = registration({ userId: bob })
      for (const r of [tablet, phone, bobs]) await store.register(r)
      await store.setMuted(alice, 'g1', true)
      await store.setMuted(bob, 'g1', true)
      await store.enqueue([
        { userId: alice, deviceId: 'phone', chatId: 'g1', seq: 5, dueAt: 100 },
        { userId: alice, deviceId: 'tablet', chatId: 'g2', seq: 6, dueAt: 100 },
        { userId: bob, deviceId: 'phone', chatId: 'g1', seq: 5, dueAt: 100 },
      ])
      assert.deepEqual(await store.registrationsOf(alice), [phone, tablet])
      assert.equal(await store.forgetUser(alice), 5, 'two registrations, one mute, two jobs')
      assert.equal(await store.forgetUser(alice), 0, 'none left')
      await store.purgeErased()
      assert.deepEqual(await store.registrationsOf(alice), [])
      assert.deepEqual(await store.mutes([alice, bob]), [{ userId: bob, chatId: 'g1' }])
      assert.equal(await store.job(alice, 'phone', 'g1'), null)
      assert.equal(await store.job(alice, 'tablet', 'g2'), null)
      assert.equal((await store.job(bob, 'phone', 'g1'))?.lastSeq, 5)
      assert.deepEqual(await store.registrationsOf(bob), [bobs])
    })
  })
}
