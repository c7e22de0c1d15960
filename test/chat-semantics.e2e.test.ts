import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Device, type InboxEvent } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

// Issue 18's chat semantics on a real node with real MQTT clients and fetch: a member who comes
// back keeps their read position, a newcomer starts at the join, replyTo names a message of the
// chat, edits and deletes of events and tombstones are refused, and `send` over HTTP is the
// same send path as c/<chatId>/send.

interface ChatView {
  lastSeq: number
  readSeq: number
  unread: number
}

interface SendResult {
  message: InboxEvent & { deviceId: string; replyTo?: number }
  duplicate: boolean
}

/** POST /v1/<op> with a Bearer token; the body as given (a string is sent as is). */
async function post(t: TestNode, token: string, op: string, body: unknown) {
  const res = await fetch(`${t.httpUrl}/v1/${op}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const json = (await res.json()) as { result?: unknown; error?: { code: string; message: string } }
  return { status: res.status, headers: res.headers, ...json }
}

const receiptsFrom = (d: Device, chatId: string, userId: string) =>
  d.inbox.filter((e) => e.type === 'receipt' && e.chatId === chatId && e.userId === userId) as Array<
    InboxEvent & { kind: 'delivered' | 'read' }
  >

for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`chat semantics on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let alice: Device
    let bob: Device
    let carol: Device
    let dave: Device

    before(async () => {
      if (backend === 'SQLite') t = await startTestNode()
      else {
        ferret = await startFerretDb()
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri })
      }
      alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
      carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
      dave = await Device.connect(t.mqttUrl, 'dave', 'phone', await t.token('dave'))
    })
    after(async () => {
      for (const d of [alice, bob, carol, dave]) await d.close().catch(() => {})
      await t.close()
      await ferret?.stop()
    })

    const group = async (members: string[]) =>
      (await alice.request<{ id: string }>('chat.create', { name: 'G', members })).id
    const lastSeq = (chatId: string) => t.node.stores.messages.lastSeq(chatId)

    describe('read positions across membership', () => {
      it('a member removed and added back keeps her read position; what she missed is unread and in history', async () => {
        // The input: bob sends 3, carol reads all, alice removes carol, bob sends 2,
        // alice adds carol back. Before: readSeq 0, unread 5.
        const g = await group(['bob', 'carol'])
        for (const text of ['one', 'two', 'three']) await bob.send(g, text)
        const readAll = await lastSeq(g)
        assert.equal(readAll, 4, 'chat_created is seq 1, bob’s three are 2-4')
        assert.deepEqual(await carol.request('read', { chatId: g, seq: readAll }), { readSeq: 4, unread: 0 })
        await carol.until(() => carol.seqs(g).includes(4), 'carol has bob’s third')
        await alice.request('chat.remove', { chatId: g, userId: 'carol' })
        const missed = [await bob.send(g, 'four'), await bob.send(g, 'five')]
        assert.deepEqual(await alice.request('chat.add', { chatId: g, members: ['carol'] }), {
          added: ['carol'],
        })

        const view = await carol.request<ChatView>('chat.get', { chatId: g })
        assert.equal(view.readSeq, 4)
        assert.equal(view.unread, 2)
        const listed = (
          await carol.request<{ chats: Array<ChatView & { id: string }> }>('chat.list')
        ).chats.find((c) => c.id === g)
        assert.deepEqual([listed?.readSeq, listed?.unread], [4, 2])
        // Her delivered cursor came back too (at least bob's three; the member_removed event she
        // was sent may have moved it one further).
        const cursors = await alice.request<{
          cursors: Array<{ userId: string; deliveredSeq: number; readSeq: number }>
        }>('receipts', { chatId: g })
        const hers = cursors.cursors.find((c) => c.userId === 'carol')
        assert.equal(hers?.readSeq, 4)
        assert.ok((hers?.deliveredSeq ?? 0) >= 4, `carol delivered ${hers?.deliveredSeq}`)
        // The two she missed are in history.
        const page = await carol.request<{ messages: Array<{ seq: number; clientMsgId: string }> }>(
          'history',
          {
            chatId: g,
          },
        )
        for (const id of missed)
          assert.ok(
            page.messages.some((m) => m.clientMsgId === id),
            `${id} in history`,
          )
        // Reading them tells bob, whose they are.
        const last = await lastSeq(g)
        assert.deepEqual(await carol.request('read', { chatId: g, seq: last }), { readSeq: last, unread: 0 })
        await bob.until(
          () => receiptsFrom(bob, g, 'carol').some((r) => r.kind === 'read' && r.seq === last),
          'carol’s read receipt',
        )
      })

      it('a newcomer starts at the join: what was sent before is history, not unread, and reads no one’s receipts', async () => {
        const g = await group(['bob', 'carol'])
        await carol.send(g, 'before dave 1')
        await carol.send(g, 'before dave 2')
        const beforeJoin = await lastSeq(g)
        await alice.request('chat.add', { chatId: g, members: ['dave'] })
        const joinSeq = await lastSeq(g)
        assert.equal(joinSeq, beforeJoin + 1, 'the members_added event')
        assert.deepEqual(
          await dave
            .request<ChatView>('chat.get', { chatId: g })
            .then((v) => [v.readSeq, v.unread, v.lastSeq]),
          [beforeJoin, 0, joinSeq],
        )
        // History still shows him everything.
        const page = await dave.request<{ messages: unknown[] }>('history', { chatId: g })
        assert.equal(page.messages.length, joinSeq)
        // What comes after the join is unread.
        await bob.send(g, 'welcome dave')
        const welcome = await lastSeq(g)
        assert.equal((await dave.request<ChatView>('chat.get', { chatId: g })).unread, 1)
        // "Reading" up to the start moves nothing and tells no one.
        assert.deepEqual(await dave.request('read', { chatId: g, seq: beforeJoin }), {
          readSeq: beforeJoin,
          unread: 1,
        })
        assert.deepEqual(await dave.request('read', { chatId: g, seq: welcome }), {
          readSeq: welcome,
          unread: 0,
        })
        await bob.until(
          () => receiptsFrom(bob, g, 'dave').some((r) => r.kind === 'read' && r.seq === welcome),
          'dave’s read receipt to bob',
        )
        // carol's messages are from before dave joined: no receipt of dave's may name them. A
        // receipt carol is owed later comes behind any earlier one on her inbox, so it fences.
        await carol.send(g, 'after dave')
        const fence = await lastSeq(g)
        await dave.request('read', { chatId: g, seq: fence })
        await carol.until(
          () => receiptsFrom(carol, g, 'dave').some((r) => r.kind === 'read' && r.seq === fence),
          'dave’s read receipt to carol',
        )
        assert.deepEqual(
          receiptsFrom(carol, g, 'dave').filter((r) => r.seq < fence),
          [],
          'no receipt from dave for what carol sent before he joined',
        )
      })
    })

    describe('replies', () => {
      let g: string
      before(async () => {
        g = await group(['bob'])
        for (let i = 0; i < 7; i++) await bob.send(g, `message ${i}`)
        assert.equal(await lastSeq(g), 8)
      })

      it('refuses replyTo 99999 in a chat whose last seq is 8, naming the last seq; nothing is stored', async () => {
        await alice.client.publishAsync(
          `c/${g}/send`,
          JSON.stringify({ clientMsgId: 'r99999', text: 'replying to nothing', replyTo: 99999 }),
          { qos: 1 },
        )
        await alice.until(() => alice.errors.some((e) => e.ref === 'r99999'), 'the refusal')
        const notice = alice.errors.find((e) => e.ref === 'r99999')
        assert.equal(notice?.code, 'not_found')
        assert.equal(notice?.topic, `c/${g}/send`)
        assert.match(notice?.message ?? '', /no message 99999.*last seq is 8/)
        assert.equal(await lastSeq(g), 8)
        // The same over HTTP: 404.
        const res = await post(t, await t.token('alice'), 'send', {
          chatId: g,
          clientMsgId: 'h99999',
          text: 'replying to nothing',
          replyTo: 99999,
        })
        assert.equal(res.status, 404)
        assert.equal(res.error?.code, 'not_found')
        assert.match(res.error?.message ?? '', /last seq is 8/)
        assert.equal(await lastSeq(g), 8)
      })

      it('refuses a reply to a chat event, and takes one to a message, a tombstone, or the next message', async () => {
        const token = await t.token('alice')
        const toEvent = await post(t, token, 'send', { chatId: g, clientMsgId: 'r1', text: 'hi', replyTo: 1 })
        assert.equal(toEvent.status, 400)
        assert.equal(toEvent.error?.code, 'bad_request')
        assert.match(toEvent.error?.message ?? '', /seq 1 is a chat event \(chat_created\)/)
        const toMessage = await post(t, token, 'send', {
          chatId: g,
          clientMsgId: 'r2',
          text: 'yes',
          replyTo: 2,
        })
        assert.equal(toMessage.status, 200)
        assert.equal((toMessage.result as SendResult).message.replyTo, 2)
        await bob.request('delete', { chatId: g, seq: 3 })
        const toTombstone = await post(t, token, 'send', {
          chatId: g,
          clientMsgId: 'r3',
          text: 'too late',
          replyTo: 3,
        })
        assert.equal(toTombstone.status, 200, 'deleting races with replying: the reply stays')
        const last = await lastSeq(g)
        const toLast = await post(t, token, 'send', {
          chatId: g,
          clientMsgId: 'r4',
          text: 'and',
          replyTo: last,
        })
        assert.equal(toLast.status, 200)
      })
    })

    describe('edits and deletes', () => {
      let g: string
      before(async () => {
        g = await group(['bob'])
      })

      it('refuses to edit or delete a chat event, saying it is one', async () => {
        const edit = alice.request('edit', { chatId: g, seq: 1, text: 'renamed' })
        await assert.rejects(edit, (err: Error & { code?: string }) => {
          assert.equal(err.code, 'not_allowed')
          assert.match(
            err.message,
            /seq 1 is a chat event \(chat_created\).*only text messages can be edited or deleted/,
          )
          return true
        })
        await assert.rejects(alice.request('delete', { chatId: g, seq: 1 }), { code: 'not_allowed' })
        // History does show seq 1: it is an event, not a missing message.
        const page = await alice.request<{ messages: Array<{ seq: number; kind: string }> }>('history', {
          chatId: g,
        })
        assert.deepEqual(
          page.messages.map((m) => [m.seq, m.kind]),
          [[1, 'event']],
        )
        await assert.rejects(
          alice.request('edit', { chatId: g, seq: 99, text: 'x' }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, 'not_found')
            assert.match(err.message, /no message 99 .*last seq is 1/)
            return true
          },
        )
      })

      it('answers a second delete with an error and fans out one delete event; a deleted message cannot be edited', async () => {
        await alice.send(g, 'oops')
        const seq = await lastSeq(g)
        const first = await alice.request<{ message: { deletedAt: number | null; text: string | null } }>(
          'delete',
          {
            chatId: g,
            seq,
          },
        )
        assert.ok(first.message.deletedAt)
        assert.equal(first.message.text, null)
        await assert.rejects(
          alice.request('delete', { chatId: g, seq }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, 'not_found')
            assert.match(
              err.message,
              new RegExp(`message ${seq} was deleted; a deleted message cannot be deleted`),
            )
            return true
          },
        )
        const overHttp = await post(t, await t.token('alice'), 'delete', { chatId: g, seq })
        assert.equal(overHttp.status, 404)
        await assert.rejects(
          alice.request('edit', { chatId: g, seq, text: 'fixed' }),
          (err: Error & { code?: string }) => {
            assert.equal(err.code, 'not_found')
            assert.match(err.message, /was deleted; a deleted message cannot be edited/)
            return true
          },
        )
        // A later delete comes on the same path behind any second event for seq: a fence.
        await alice.send(g, 'fence')
        const fence = await lastSeq(g)
        await bob.until(() => bob.seqs(g).includes(fence), 'bob has the fence')
        await alice.request('delete', { chatId: g, seq: fence })
        await bob.until(
          () => bob.inbox.some((e) => e.type === 'delete' && e.chatId === g && e.seq === fence),
          'fence deleted',
        )
        assert.equal(
          bob.inbox.filter((e) => e.type === 'delete' && e.chatId === g && e.seq === seq).length,
          1,
        )
      })
    })

    describe('send over HTTP', () => {
      let g: string
      let aliceLaptop: Device
      before(async () => {
        g = await group(['bob'])
        aliceLaptop = await Device.connect(t.wsUrl, 'alice', 'laptop', await t.token('alice'))
      })
      after(() => aliceLaptop.close())

      it('stores the message before answering and delivers it to the other member’s and the sender’s MQTT devices', async () => {
        const res = await post(t, await t.token('alice'), 'send', {
          chatId: g,
          clientMsgId: 'h1',
          text: 'from a script',
        })
        assert.equal(res.status, 200)
        const { message, duplicate } = res.result as SendResult
        assert.equal(duplicate, false)
        assert.equal(message.type, 'message')
        assert.deepEqual(
          [message.chatId, message.senderId, message.deviceId, message.text],
          [g, 'alice', 'http', 'from a script'],
        )
        // Durable before the answer.
        assert.equal((await t.node.stores.messages.get(g, message.seq))?.clientMsgId, 'h1')
        for (const d of [bob, alice, aliceLaptop]) {
          await d.until(() => d.messages(g).some((m) => m.clientMsgId === 'h1'), 'the HTTP message')
          assert.equal(d.messages(g).find((m) => m.clientMsgId === 'h1')?.seq, message.seq)
        }
        // The sender's own message is read.
        await bob.request('read', { chatId: g, seq: message.seq })
        const view = await alice.request<ChatView>('chat.get', { chatId: g })
        assert.equal(view.readSeq, message.seq)
      })

      it('stores a retried HTTP send once: the same seq, duplicate true, one inbox delivery', async () => {
        const token = await t.token('alice')
        const body = { chatId: g, clientMsgId: 'h2', text: 'sent twice' }
        const first = await post(t, token, 'send', body)
        const again = await post(t, token, 'send', body)
        assert.equal(again.status, 200)
        const [a, b] = [first.result as SendResult, again.result as SendResult]
        assert.equal(a.duplicate, false)
        assert.equal(b.duplicate, true)
        assert.equal(b.message.seq, a.message.seq)
        const stored = (await t.node.stores.messages.after(g, 0, 1000)).filter((m) => m.clientMsgId === 'h2')
        assert.equal(stored.length, 1)
        // Over MQTT req/send too: the same operation, the same clientMsgId of the same sender.
        const overMqtt = await alice.request<SendResult>('send', body)
        assert.deepEqual([overMqtt.duplicate, overMqtt.message.seq], [true, a.message.seq])
        // A later message fences what the retries may have fanned out again.
        const next = (await post(t, token, 'send', { chatId: g, clientMsgId: 'h3', text: 'next' }))
          .result as SendResult
        for (const d of [bob, aliceLaptop]) {
          await d.until(() => d.seqs(g).includes(next.message.seq), 'the next message')
          assert.equal(
            d.messages(g).filter((m) => m.clientMsgId === 'h2').length,
            1,
            `${d.userId}/${d.deviceId}`,
          )
        }
      })

      it('sends over MQTT req/send as well, with the device’s own id', async () => {
        const r = await bob.request<SendResult>('send', { chatId: g, clientMsgId: 'q1', text: 'by request' })
        assert.deepEqual([r.duplicate, r.message.deviceId, r.message.senderId], [false, 'phone', 'bob'])
        await alice.until(() => alice.messages(g).some((m) => m.clientMsgId === 'q1'), 'alice has it')
      })

      it('maps refusals to HTTP statuses and stores nothing', async () => {
        const before = await lastSeq(g)
        const daveToken = await t.token('dave')
        const token = await t.token('alice')
        const cases: Array<[string, string, unknown, number, string]> = [
          ['not a member', daveToken, { chatId: g, clientMsgId: 'x1', text: 'hi' }, 404, 'chat_not_found'],
          [
            'no such chat',
            token,
            { chatId: 'g_nosuchchat', clientMsgId: 'x2', text: 'hi' },
            404,
            'chat_not_found',
          ],
          ['bad JSON', token, '{"chatId": ', 400, 'bad_request'],
          ['no text or media', token, { chatId: g, clientMsgId: 'x3' }, 400, 'bad_request'],
          ['no clientMsgId', token, { chatId: g, text: 'hi' }, 400, 'bad_request'],
          [
            'an unknown key',
            token,
            { chatId: g, clientMsgId: 'x4', text: 'hi', extra: 1 },
            400,
            'bad_request',
          ],
          [
            'text too long',
            token,
            { chatId: g, clientMsgId: 'x5', text: 'y'.repeat(5000) },
            413,
            'too_large',
          ],
          [
            'media not uploaded',
            token,
            { chatId: g, clientMsgId: 'x6', media: ['m_nope'] },
            404,
            'media_not_found',
          ],
        ]
        for (const [what, tok, body, status, code] of cases) {
          const res = await post(t, tok, 'send', body)
          assert.equal(res.status, status, what)
          assert.equal(res.error?.code, code, what)
        }
        const unauthenticated = await fetch(`${t.httpUrl}/v1/send`, {
          method: 'POST',
          body: JSON.stringify({ chatId: g, clientMsgId: 'x7', text: 'hi' }),
        })
        assert.equal(unauthenticated.status, 401)
        await unauthenticated.body?.cancel()
        assert.equal(await lastSeq(g), before)
      })
    })

    // Last: retention removes old messages of every chat on this node.
    it('takes a reply to a message retention removed, and says it is gone when asked to edit it', async () => {
      const g = await group(['bob'])
      await alice.send(g, 'old news')
      const old = await lastSeq(g)
      await t.node.stores.messages.deleteOlderThan(Date.now() + 1)
      assert.equal(await t.node.stores.messages.get(g, old), null)
      const res = await post(t, await t.token('bob'), 'send', {
        chatId: g,
        clientMsgId: 'late',
        text: 'replying to old news',
        replyTo: old,
      })
      assert.equal(res.status, 200, 'a seq the chat had: the reply stays, as for a tombstone')
      await assert.rejects(
        alice.request('edit', { chatId: g, seq: old, text: 'x' }),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'not_found')
          assert.match(err.message, /no longer stored/)
          return true
        },
      )
    })
  })
}

describe('send over HTTP counts against the chat-send limits', () => {
  let t: TestNode
  let alice: Device
  let g: string
  before(async () => {
    t = await startTestNode({
      NATTER_LIMIT_SENDS_PER_DEVICE: '2/1s',
      NATTER_LIMIT_SENDS_PER_USER: '5/60s',
      NATTER_LIMIT_HOLD_MS: '2000',
    })
    alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    g = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
  })
  after(async () => {
    await alice.close()
    await t.close()
  })

  it('holds a send while its device limit has room soon, refuses one past the user limit with 429, and that user limit holds for c/<chatId>/send too', async () => {
    const token = await t.token('alice')
    const outcomes: Array<{ status: number; ms: number }> = []
    for (let i = 1; i <= 6; i++) {
      const started = performance.now()
      const res = await post(t, token, 'send', { chatId: g, clientMsgId: `l${i}`, text: `n ${i}` })
      outcomes.push({ status: res.status, ms: performance.now() - started })
      if (res.status === 429) {
        assert.equal(res.error?.code, 'rate_limited')
        assert.match(res.error?.message ?? '', /sends per user.*not stored/)
        const retryAfter = Number(res.headers.get('retry-after'))
        assert.ok(retryAfter > 2 && retryAfter <= 60, `Retry-After ${retryAfter}`)
      }
    }
    // Two per second for the device ("alice/http"), five a minute for alice: the 3rd and 5th
    // wait for the next second, the 6th would wait most of a minute and is refused at once.
    assert.deepEqual(
      outcomes.map((o) => o.status),
      [200, 200, 200, 200, 200, 429],
    )
    assert.ok((outcomes[2]?.ms ?? 0) > 50, `3rd held ${outcomes[2]?.ms} ms`)
    assert.ok((outcomes[5]?.ms ?? Infinity) < 1000, `6th refused in ${outcomes[5]?.ms} ms`)
    const stored = (await t.node.stores.messages.after(g, 0, 100)).map((m) => m.clientMsgId)
    assert.deepEqual(stored.slice(1), ['l1', 'l2', 'l3', 'l4', 'l5'])
    // The same user's MQTT send is over the same per-user limit: held, then refused.
    await alice.send(g, 'over mqtt', 'mq1')
    await alice.until(() => alice.errors.some((e) => e.ref === 'mq1'), 'the MQTT refusal')
    assert.equal(alice.errors.find((e) => e.ref === 'mq1')?.code, 'rate_limited')
    assert.equal(await t.node.stores.messages.lastSeq(g), 6)
  })
})
