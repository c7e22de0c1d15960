import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MongoClient } from 'mongodb'
import type { CursorMove, DeliveryStore } from '../services/delivery/delivery-store.ts'
import { subscribe } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/**
 * Holds the delivery store's cursor writes (CursorBatch's `advance`) of one device until
 * release(): a batch of an old connection written late, as on a loaded machine, where the
 * 50 ms flush timer fired between a new clean session's CONNECT and its SUBSCRIBE (the
 * chat.e2e failure this covers), or on another node of a cluster.
 */
function holdCursorWrites(store: DeliveryStore, userId: string) {
  const advance = store.advance
  const held: Array<{ moves: CursorMove[]; done: (p: Promise<void>) => void }> = []
  let onHeld = () => {}
  store.advance = (moves) => {
    if (!moves.some((m) => m.userId === userId)) return advance.call(store, moves)
    return new Promise<void>((resolve, reject) => {
      held.push({ moves, done: (p) => p.then(resolve, reject) })
      onHeld()
    })
  }
  return {
    /** Resolves once a write with a move of the user, to at least this seq of the chat, is held. */
    until: (chatId: string, seq: number) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (held.some((h) => h.moves.some((m) => m.chatId === chatId && m.seq >= seq))) resolve()
        }
        onHeld = check
        check()
      }),
    /** Writes what was held, in order, and stops holding; resolves when the store has written it. */
    async release() {
      store.advance = advance
      for (const h of held.splice(0)) {
        const p = advance.call(store, h.moves)
        h.done(p)
        await p
      }
    },
  }
}

/**
 * Runs `then` right after the delivery store recorded the next CONNECT of this device, before
 * the delivery hears of it (a resumed session's feed reads its cursors at once).
 */
function afterNextConnect(
  store: DeliveryStore,
  userId: string,
  deviceId: string,
  then: () => Promise<void>,
): Promise<void> {
  const connect = store.connect
  return new Promise((resolve, reject) => {
    store.connect = async (d) => {
      const result = await connect.call(store, d)
      if (d.userId === userId && d.deviceId === deviceId) {
        store.connect = connect
        await then().then(resolve, reject)
      }
      return result
    }
  })
}

for (const kind of ['sqlite', 'mongodb'] as const) {
  describe(`where a session starts (${kind})`, () => {
    let ferret: FerretDb | undefined
    let t: TestNode
    let alice: Device
    let group: string

    before(async () => {
      if (kind === 'mongodb') {
        ferret = await startFerretDb()
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri })
      } else t = await startTestNode()
      alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      group = (
        await alice.request<{ id: string }>('chat.create', { name: 'start', members: ['bob', 'carol'] })
      ).id
    })
    after(async () => {
      await alice?.close()
      await t?.close()
      await ferret?.stop()
    })

    /** The seqs of the chat's messages a device got, with the clientMsgIds sent. */
    const got = (d: Device) => d.messages(group).map((m) => m.clientMsgId)

    it('a clean session skips what was stored before its CONNECT, though the old session’s cursor lands late', async () => {
      const store = t.node.stores.delivery
      let bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
      const hold = holdCursorWrites(store, 'bob')
      const first = await alice.send(group, 'seen by the old session')
      await bob.until(() => got(bob).includes(first), 'the first message')
      const firstSeq = bob.messages(group).find((m) => m.clientMsgId === first)?.seq ?? 0
      await hold.until(group, firstSeq)
      await bob.close()
      const before = [await alice.send(group, 'before 1'), await alice.send(group, 'before 2')]

      // The old connection's cursor batch is written after the new session began.
      const released = afterNextConnect(store, 'bob', 'phone', () => hold.release())
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'), {
        clean: true,
        subscribe: false,
      })
      await released
      // Stored after the CONNECT, before the SUBSCRIBE: the session's.
      const during = await alice.send(group, 'between connect and subscribe')
      assert.deepEqual(
        await subscribe(bob.client, ['u/bob/inbox', 'd/bob/phone/res', 'd/bob/phone/err']),
        [1, 1, 1],
      )
      const later = await alice.send(group, 'after subscribe')
      await bob.until(() => got(bob).includes(later), 'the message sent after the subscription')
      assert.deepEqual(got(bob), [during, later], `nothing stored before the CONNECT (${before.join(', ')})`)
      await bob.close()
    })

    it('the delivery store takes a cursor move only in the session it was made in', async () => {
      const store = t.node.stores.delivery
      const dev = { userId: 'dave', deviceId: 'tablet' }
      const s1 = (await store.connect({ ...dev, clean: false, conn: 'c1', at: 1000 })).session.since
      await store.advance([{ ...dev, chatId: 'x', seq: 5, since: s1 }])
      // A new session in the same ms (or after the clock stepped back) still gets a newer since.
      const s2 = (await store.connect({ ...dev, clean: true, conn: 'c2', at: 1000 })).session.since
      assert.ok(s2 > s1)
      await store.advance([{ ...dev, chatId: 'x', seq: 7, since: s1 }])
      assert.deepEqual(await store.cursors({ ...dev, since: s2 }), new Map())
      await store.advance([{ ...dev, chatId: 'x', seq: 2, since: s2 }])
      assert.deepEqual(await store.cursors({ ...dev, since: s2 }), new Map([['x', 2]]))
      if (!ferret) return
      // On MongoDB a move checked against the old session can still land after the new one was
      // recorded (another node): its cursor names the old session and is skipped, then replaced.
      const client = await MongoClient.connect(ferret.uri)
      try {
        const cursors = client.db().collection<{
          _id: string
          userId: string
          deviceId: string
          chatId: string
          seq: number
          since?: number
        }>('device_cursors')
        const key = (chatId: string) => JSON.stringify([dev.userId, dev.deviceId, chatId])
        await cursors.insertMany([
          { _id: key('late'), ...dev, chatId: 'late', seq: 9, since: s1 },
          // Written before cursors named their session: taken as the current one's.
          { _id: key('legacy'), ...dev, chatId: 'legacy', seq: 4 },
        ])
        assert.deepEqual(
          await store.cursors({ ...dev, since: s2 }),
          new Map([
            ['x', 2],
            ['legacy', 4],
          ]),
        )
        await store.advance([
          { ...dev, chatId: 'late', seq: 3, since: s2 },
          { ...dev, chatId: 'legacy', seq: 1, since: s2 },
        ])
        assert.deepEqual(
          await store.cursors({ ...dev, since: s2 }),
          new Map([
            ['x', 2],
            ['late', 3],
            ['legacy', 4],
          ]),
        )
        const s3 = (await store.connect({ ...dev, clean: true, conn: 'c3', at: 5000 })).session.since
        await store.advance([{ ...dev, chatId: 'x', seq: 1, since: s3 }])
        await cursors.insertOne({ _id: key('stale'), ...dev, chatId: 'stale', seq: 8, since: s3 })
        // A newer session's cursor is never replaced by an older session's move.
        await store.advance([{ ...dev, chatId: 'x', seq: 6, since: s2 }])
        assert.deepEqual(
          await store.cursors({ ...dev, since: s3 }),
          new Map([
            ['x', 1],
            ['stale', 8],
          ]),
        )
      } finally {
        await client.close()
      }
    })

    it('a resumed session keeps a cursor its earlier connection wrote late', async () => {
      const store = t.node.stores.delivery
      let carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
      const hold = holdCursorWrites(store, 'carol')
      const first = await alice.send(group, 'for carol')
      await carol.until(() => got(carol).includes(first), 'the first message')
      const firstSeq = carol.messages(group).find((m) => m.clientMsgId === first)?.seq ?? 0
      await hold.until(group, firstSeq)
      await carol.close()
      const away = await alice.send(group, 'while carol is away')

      const released = afterNextConnect(store, 'carol', 'phone', () => hold.release())
      carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'), { subscribe: false })
      await released
      assert.equal((await store.cursors({ userId: 'carol', deviceId: 'phone' })).get(group), firstSeq)
      assert.deepEqual(
        await subscribe(carol.client, ['u/carol/inbox', 'd/carol/phone/res', 'd/carol/phone/err']),
        [1, 1, 1],
      )
      const later = await alice.send(group, 'after carol is back')
      await carol.until(() => got(carol).includes(later), 'the message sent after the subscription')
      // The acknowledged one is not sent again; what she missed comes first.
      assert.deepEqual(got(carol), [away, later])
      await carol.close()
    })
  })
}
