import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { subscribe } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const REFUSED = 128
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`chat core on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let alicePhone: Device
    let aliceLaptop: Device
    let bob: Device
    let carol: Device
    let group: string
    let direct: string

    before(async () => {
      if (backend === 'SQLite') t = await startTestNode()
      else {
        ferret = await startFerretDb()
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri })
      }
      alicePhone = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      aliceLaptop = await Device.connect(t.wsUrl, 'alice', 'laptop', await t.token('alice'))
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
      carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
      direct = (await alicePhone.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      group = (
        await alicePhone.request<{ id: string }>('chat.create', { name: 'Trip', members: ['bob', 'carol'] })
      ).id
    })
    after(async () => {
      for (const d of [alicePhone, aliceLaptop, bob, carol]) await d.close().catch(() => {})
      await t.close()
      await ferret?.stop()
    })

    it('finds the one direct chat again, from either side', async () => {
      const again = await bob.request<{ id: string; kind: string }>('chat.direct', { with: 'alice' })
      assert.equal(again.id, direct)
      assert.equal(again.kind, 'direct')
    })

    it('delivers every message to every member device in sequence order, the sender’s other device too', async () => {
      const sends: Promise<string>[] = []
      for (let i = 0; i < 15; i++) {
        sends.push(alicePhone.send(group, `alice ${i}`))
        sends.push(bob.send(group, `bob ${i}`))
      }
      for (let i = 0; i < 10; i++) sends.push(aliceLaptop.send(direct, `direct ${i}`))
      await Promise.all(sends)
      // Seq 1 of each chat is its chat_created event.
      const groupSeqs = range(1, 31)
      const directSeqs = range(1, 11)
      for (const d of [alicePhone, aliceLaptop, bob, carol]) {
        await d.until(() => d.seqs(group).length >= 31, 'all group messages')
        assert.deepEqual(d.seqs(group), groupSeqs, `${d.userId}/${d.deviceId} group order`)
      }
      for (const d of [alicePhone, aliceLaptop, bob]) {
        await d.until(() => d.seqs(direct).length >= 11, 'all direct messages')
        assert.deepEqual(d.seqs(direct), directSeqs, `${d.userId}/${d.deviceId} direct order`)
      }
      assert.deepEqual(carol.messages(direct), [], 'carol is not in the direct chat')
      const texts = carol.messages(group).filter((m) => m.kind === 'text')
      assert.deepEqual(
        texts.filter((m) => m.senderId === 'alice').map((m) => m.text),
        range(0, 14).map((i) => `alice ${i}`),
      )
    })

    it('acknowledges a message only once the store has it, and stores a retried clientMsgId once', async () => {
      const id = await alicePhone.send(group, 'durable')
      // The PUBACK has arrived: the store must already hold the message.
      const [last] = await t.node.stores.messages.before(group, null, 1)
      assert.equal(last?.clientMsgId, id)
      assert.equal(last?.text, 'durable')
      await alicePhone.send(group, 'durable (retried)', id)
      const stored = (await t.node.stores.messages.after(group, 0, 1000)).filter((m) => m.clientMsgId === id)
      assert.equal(stored.length, 1)
      await alicePhone.until(
        () => alicePhone.messages(group).filter((m) => m.clientMsgId === id).length >= 2,
        'the retry answered with the first seq',
      )
      const echoes = alicePhone.messages(group).filter((m) => m.clientMsgId === id)
      assert.equal(new Set(echoes.map((e) => e.seq)).size, 1)
    })

    describe('refusals, none of which disconnects anyone', () => {
      let outsider: Device
      before(async () => {
        outsider = await Device.connect(t.mqttUrl, 'dave', 'phone', await t.token('dave'))
      })
      after(async () => {
        assert.equal(outsider.client.connected, true)
        assert.equal(alicePhone.client.connected, true)
        await outsider.close()
      })

      it('a non-member cannot send; the error names the clientMsgId and nothing is stored', async () => {
        await outsider.send(group, 'let me in', 'x1')
        await outsider.until(() => outsider.errors.some((e) => e.ref === 'x1'), 'error for x1')
        assert.equal(outsider.errors.find((e) => e.ref === 'x1')?.code, 'chat_not_found')
        const stored = await t.node.stores.messages.after(group, 0, 1000)
        assert.ok(!stored.some((m) => m.clientMsgId === 'x1'))
      })

      it('bad JSON, a missing text, too long a text and an unknown chat each get their error', async () => {
        const from = alicePhone.errors.length
        await alicePhone.client.publishAsync(`c/${group}/send`, '{not json', { qos: 1 })
        await alicePhone.client.publishAsync(`c/${group}/send`, JSON.stringify({ clientMsgId: 'e1' }), {
          qos: 1,
        })
        await alicePhone.send(group, 'y'.repeat(5000), 'big1')
        await alicePhone.send('g_nosuchchat', 'hello?', 'nochat1')
        await alicePhone.until(() => alicePhone.errors.length >= from + 4, 'four errors')
        assert.deepEqual(
          alicePhone.errors.slice(from).map((e) => [e.code, e.ref]),
          [
            ['bad_request', undefined],
            ['bad_request', 'e1'],
            ['too_large', 'big1'],
            ['chat_not_found', 'nochat1'],
          ],
        )
        const stored = await t.node.stores.messages.after(group, 0, 1000)
        assert.ok(!stored.some((m) => ['e1', 'big1'].includes(m.clientMsgId)))
      })

      it('a non-member cannot read history, sync or search', async () => {
        await assert.rejects(outsider.request('history', { chatId: group }), { code: 'chat_not_found' })
        await assert.rejects(outsider.request('sync', { chatId: group, after: 0 }), {
          code: 'chat_not_found',
        })
        await assert.rejects(outsider.request('search', { chatId: group, query: 'alice' }), {
          code: 'chat_not_found',
        })
        await assert.rejects(outsider.request('chat.get', { chatId: group }), { code: 'chat_not_found' })
      })

      it('a non-member cannot see or send typing', async () => {
        assert.deepEqual(await subscribe(outsider.client, [`c/${group}/typing`], 0), [REFUSED])
        await outsider.client.publishAsync(`c/${group}/typing`, JSON.stringify({ state: 'typing' }), {
          qos: 0,
        })
        await outsider.until(
          () => outsider.errors.some((e) => e.code === 'forbidden_topic'),
          'typing refused',
        )
      })

      it('a user who shares no chat cannot see presence', async () => {
        assert.deepEqual(await subscribe(outsider.client, ['u/alice/presence']), [REFUSED])
      })
    })

    it('sends delivered and read receipts to the sender, with group read state and unread counts', async () => {
      const before = alicePhone.inbox.length
      await alicePhone.send(group, 'did you get this?')
      const seq = (await t.node.stores.messages.lastSeq(group)) as number
      await bob.until(() => bob.messages(group).some((m) => m.seq === seq), 'bob has it')
      await carol.until(() => carol.messages(group).some((m) => m.seq === seq), 'carol has it')
      await alicePhone.until(
        () =>
          ['bob', 'carol'].every((u) =>
            alicePhone.inbox
              .slice(before)
              .some(
                (e) =>
                  e.type === 'receipt' &&
                  e.userId === u &&
                  (e as { kind?: string }).kind === 'delivered' &&
                  e.seq >= seq,
              ),
          ),
        'delivered receipts from bob and carol',
      )
      const bobList = await bob.request<{ chats: Array<{ id: string; unread: number }> }>('chat.list')
      assert.ok((bobList.chats.find((c) => c.id === group)?.unread ?? 0) > 0)
      const read = await bob.request<{ readSeq: number; unread: number }>('read', { chatId: group, seq })
      assert.deepEqual(read, { readSeq: seq, unread: 0 })
      await alicePhone.until(
        () =>
          alicePhone.inbox.some(
            (e) =>
              e.type === 'receipt' &&
              e.userId === 'bob' &&
              (e as { kind?: string }).kind === 'read' &&
              e.seq === seq,
          ),
        'read receipt from bob',
      )
      const state = await alicePhone.request<{
        cursors: Array<{ userId: string; readSeq: number; deliveredSeq: number }>
      }>('receipts', { chatId: group })
      const byUser = new Map(state.cursors.map((c) => [c.userId, c]))
      assert.equal(byUser.get('bob')?.readSeq, seq)
      assert.equal(byUser.get('alice')?.readSeq, seq, 'one’s own message counts as read')
      assert.ok((byUser.get('carol')?.deliveredSeq ?? 0) >= seq)
      assert.ok((byUser.get('carol')?.readSeq ?? 0) < seq)
      const carolList = await carol.request<{ chats: Array<{ id: string; unread: number }> }>('chat.list')
      assert.ok((carolList.chats.find((c) => c.id === group)?.unread ?? 0) >= 1)
      assert.equal(
        (await bob.request<{ chats: Array<{ id: string; unread: number }> }>('chat.list')).chats.find(
          (c) => c.id === group,
        )?.unread,
        0,
      )
    })

    it('relays typing to members, stamped with the sender, and never stores it', async () => {
      assert.deepEqual(await subscribe(bob.client, [`c/${group}/typing`], 0), [0])
      const lastSeq = await t.node.stores.messages.lastSeq(group)
      await alicePhone.client.publishAsync(`c/${group}/typing`, JSON.stringify({ state: 'typing' }), {
        qos: 0,
      })
      await bob.until(() => bob.other.some((o) => o.topic === `c/${group}/typing`), 'typing')
      const typing = bob.other.find((o) => o.topic === `c/${group}/typing`)
      assert.deepEqual(typing?.body, {
        userId: 'alice',
        deviceId: 'phone',
        state: 'typing',
        expiresInMs: 6000,
      })
      assert.equal(await t.node.stores.messages.lastSeq(group), lastSeq)
    })

    it('lets members see each other’s retained presence, turned offline when the socket is cut', async () => {
      const dan = await Device.connect(t.mqttUrl, 'dan', 'phone', await t.token('dan'))
      await alicePhone.request('chat.add', { chatId: group, members: ['dan'] })
      assert.deepEqual(await subscribe(carol.client, ['u/dan/presence']), [1])
      await carol.until(
        () => carol.other.some((o) => o.topic === 'u/dan/presence' && (o.body as { online: boolean }).online),
        'dan online',
      )
      dan.client.stream.destroy()
      await carol.until(
        () =>
          carol.other.some((o) => o.topic === 'u/dan/presence' && !(o.body as { online: boolean }).online),
        'dan offline',
      )
      const offline = carol.other.findLast((o) => o.topic === 'u/dan/presence')?.body as {
        lastSeenAt: number
        lastSeen: string
      }
      assert.ok(Date.now() - offline.lastSeenAt < 60_000)
      assert.equal(
        Date.parse(offline.lastSeen),
        offline.lastSeenAt,
        'the deprecated ISO field is the same instant',
      )
      dan.client.end(true)
    })

    it('queues messages for an offline device and syncs a device whose session is gone', async () => {
      await bob.close()
      const sent = [
        await alicePhone.send(group, 'while away 1'),
        await alicePhone.send(group, 'while away 2'),
      ]
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'), { subscribe: false })
      await bob.until(
        () => sent.every((id) => bob.messages(group).some((m) => m.clientMsgId === id)),
        'queued messages',
      )
      // Bob's session expires (a clean session discards it and its queue) while he is away:
      // what was sent meanwhile comes back through sync, from the last seq he had.
      const lastSeen = Math.max(...bob.seqs(group))
      await bob.close()
      const missed = [
        await alicePhone.send(group, 'after expiry 1'),
        await alicePhone.send(group, 'after expiry 2'),
      ]
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'), { clean: true })
      assert.deepEqual(bob.messages(group), [])
      const synced = await bob.request<{
        messages: Array<{ seq: number; clientMsgId: string }>
        lastSeq: number
      }>('sync', {
        chatId: group,
        after: lastSeen,
        limit: 200,
      })
      assert.deepEqual(
        synced.messages.map((m) => m.seq),
        range(lastSeen + 1, synced.lastSeq),
      )
      assert.deepEqual(
        synced.messages.map((m) => m.clientMsgId),
        missed,
      )
    })

    it('edits, deletes (leaving a tombstone) and searches', async () => {
      await alicePhone.send(group, 'meet at the old harbour')
      const seq = await t.node.stores.messages.lastSeq(group)
      const edited = await alicePhone.request<{ message: { text: string } }>('edit', {
        chatId: group,
        seq,
        text: 'meet at the new harbour',
      })
      assert.equal(edited.message.text, 'meet at the new harbour')
      await assert.rejects(bob.request('edit', { chatId: group, seq, text: 'hijack' }), {
        code: 'not_allowed',
      })
      await carol.until(() => carol.inbox.some((e) => e.type === 'edit' && e.seq === seq), 'edit event')
      const found = await carol.request<{ messages: Array<{ seq: number }> }>('search', {
        chatId: group,
        query: 'new harbour',
      })
      assert.deepEqual(
        found.messages.map((m) => m.seq),
        [seq],
      )
      await alicePhone.request('delete', { chatId: group, seq })
      await carol.until(() => carol.inbox.some((e) => e.type === 'delete' && e.seq === seq), 'delete event')
      const page = await carol.request<{
        messages: Array<{ seq: number; text: string | null; deletedAt: number | null }>
      }>('history', { chatId: group, before: seq + 1, limit: 1 })
      assert.equal(page.messages[0]?.text, null)
      assert.ok(page.messages[0]?.deletedAt)
      assert.deepEqual(
        (await carol.request<{ messages: unknown[] }>('search', { chatId: group, query: 'harbour' }))
          .messages,
        [],
      )
    })

    it('lets admins add and remove, members leave, and promotes a new admin when the last one leaves', async () => {
      const g = (
        await alicePhone.request<{ id: string }>('chat.create', { name: 'Club', members: ['bob', 'carol'] })
      ).id
      await assert.rejects(bob.request('chat.add', { chatId: g, members: ['dave'] }), { code: 'not_allowed' })
      await alicePhone.request('chat.remove', { chatId: g, userId: 'carol' })
      await carol.until(
        () => carol.messages(g).some((m) => m.event?.type === 'member_removed' && m.event.userId === 'carol'),
        'carol hears she was removed',
      )
      await assert.rejects(
        carol.send(g, 'still here?').then(() => carol.request('history', { chatId: g })),
        {
          code: 'chat_not_found',
        },
      )
      await alicePhone.request('chat.leave', { chatId: g })
      const info = await bob.request<{ members: Array<{ userId: string; role: string }> }>('chat.get', {
        chatId: g,
      })
      assert.deepEqual(info.members, [{ userId: 'bob', role: 'admin' }])
      await bob.until(
        () => bob.messages(g).some((m) => m.event?.type === 'member_left' && m.event.promoted === 'bob'),
        'bob promoted',
      )
    })

    it('serves the same operations over HTTP with a Bearer token', async () => {
      const res = await fetch(`${t.httpUrl}/v1/chat.list`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token('carol')}`, 'content-type': 'application/json' },
        body: '{}',
      })
      assert.equal(res.status, 200)
      const body = (await res.json()) as { result: { chats: Array<{ id: string }> } }
      assert.ok(body.result.chats.some((c) => c.id === group))
      const denied = await fetch(`${t.httpUrl}/v1/history`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token('mallory')}` },
        body: JSON.stringify({ chatId: group }),
      })
      assert.equal(denied.status, 404)
      assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'chat_not_found')
      assert.equal((await fetch(`${t.httpUrl}/v1/chat.list`, { method: 'POST' })).status, 401)
    })
  })
}
