import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient, type NatterClient } from '../client-sdk/src/index.ts'
import { subscribe } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const typingOf = (d: Device, chatId: string) =>
  d.other.filter((o) => o.topic === `c/${chatId}/typing`).map((o) => (o.body as { userId: string }).userId)
const presenceOf = (d: Device, userId: string) => d.other.filter((o) => o.topic === `u/${userId}/presence`)
const typing = (d: Device, chatId: string) =>
  d.client.publishAsync(`c/${chatId}/typing`, JSON.stringify({ state: 'typing' }), { qos: 1 })

/**
 * Blocking on a real node over real MQTT clients (docs/protocol.md#blocking): alice blocks bob;
 * carol shares a group with both and sees everything, which tells the test when a packet that
 * must not reach alice or bob would have reached them. A request answered on the same
 * connection afterwards shows nothing was still on its way.
 */
for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`blocking on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let alice: Device
    let bob: Device
    let carol: Device
    let direct: string
    let group: string
    const extra: Device[] = []
    const apps: NatterClient[] = []

    before(async () => {
      // No typing interval: each indicator in these tests is relayed or dropped on its own merits.
      const env: Record<string, string> = { NATTER_TYPING_INTERVAL_MS: '0' }
      if (backend !== 'SQLite') {
        ferret = await startFerretDb()
        env.NATTER_MONGODB_URI = ferret.uri
      }
      t = await startTestNode(env)
      alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
      carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
      direct = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      group = (
        await alice.request<{ id: string }>('chat.create', { name: 'Trip', members: ['bob', 'carol'] })
      ).id
      await subscribe(alice.client, ['u/bob/presence', `c/${direct}/typing`, `c/${group}/typing`])
      await subscribe(bob.client, ['u/alice/presence', `c/${direct}/typing`, `c/${group}/typing`])
      await subscribe(carol.client, ['u/alice/presence', 'u/bob/presence', `c/${group}/typing`])
    })

    after(async () => {
      for (const app of apps) await app.close()
      for (const d of [alice, bob, carol, ...extra]) await d.client.endAsync()
      await t.close()
      await ferret?.stop()
    })

    let sent = 0
    /** Sends a text over MQTT (c/<chatId>/send) and resolves with its seq, from the sender's own inbox. */
    async function send(d: Device, chatId: string, text: string): Promise<number> {
      const clientMsgId = `m${++sent}`
      await d.client.publishAsync(`c/${chatId}/send`, JSON.stringify({ clientMsgId, text }), { qos: 1 })
      await d.until(() => d.inbox.some((e) => e.clientMsgId === clientMsgId), `${clientMsgId} in own inbox`)
      return d.inbox.find((e) => e.clientMsgId === clientMsgId)?.seq as number
    }
    const inChat = (d: Device, chatId: string) => d.inbox.filter((e) => e.chatId === chatId)

    /** The device leaves and comes back on its persistent session: its user goes offline, then online. */
    async function cycle(d: Device): Promise<Device> {
      await d.client.endAsync()
      return Device.connect(t.mqttUrl, d.userId, d.deviceId, await t.token(d.userId))
    }
    const online = (d: Device, userId: string, from: number, is: boolean) =>
      presenceOf(d, userId)
        .slice(from)
        .some((o) => (o.body as { online: boolean }).online === is)

    it('lists, and answers the blocker alone; the blocked user is told nothing', async () => {
      const bobInbox = bob.inbox.length
      const before = Date.now()
      const blocked = await alice.request<{ userId: string; at: number }>('user.block', { userId: 'bob' })
      assert.equal(blocked.userId, 'bob')
      assert.ok(blocked.at >= before && blocked.at <= Date.now())
      // Blocking again keeps the first block.
      assert.deepEqual(await alice.request('user.block', { userId: 'bob' }), blocked)
      assert.deepEqual(await alice.request('user.blocked'), { users: [{ userId: 'bob', at: blocked.at }] })
      assert.deepEqual(await bob.request('user.blocked'), { users: [] })
      await assert.rejects(alice.request('user.block', { userId: 'alice' }), { code: 'bad_request' })
      assert.equal(bob.inbox.length, bobInbox, 'nothing reached the blocked user’s inbox')
      assert.deepEqual(bob.errors, [])
    })

    it('hides presence both ways, while a chat partner in common still sees both', async () => {
      const carolSawBob = presenceOf(carol, 'bob').length
      const aliceSawBob = presenceOf(alice, 'bob').length
      bob = await cycle(bob)
      await carol.until(
        () => online(carol, 'bob', carolSawBob, false) && online(carol, 'bob', carolSawBob, true),
        'bob offline and online at carol',
      )
      await alice.request('user.blocked')
      assert.equal(
        presenceOf(alice, 'bob').length,
        aliceSawBob,
        'the blocker sees no presence of the blocked',
      )

      const carolSawAlice = presenceOf(carol, 'alice').length
      const bobSawAlice = presenceOf(bob, 'alice').length
      alice = await cycle(alice)
      await carol.until(
        () => online(carol, 'alice', carolSawAlice, false) && online(carol, 'alice', carolSawAlice, true),
        'alice offline and online at carol',
      )
      await bob.request('user.blocked')
      assert.equal(
        presenceOf(bob, 'alice').length,
        bobSawAlice,
        'the blocked sees no presence of the blocker',
      )
    })

    it('answers the blocked user’s presence subscription as before, with no retained presence in it', async () => {
      const fresh = await Device.connect(t.mqttUrl, 'bob', 'laptop', await t.token('bob'))
      extra.push(fresh)
      // Granted as it is to any chat partner: a refusal would tell bob.
      assert.deepEqual(await subscribe(fresh.client, ['u/alice/presence', 'u/carol/presence']), [1, 1])
      await fresh.until(() => presenceOf(fresh, 'carol').length > 0, 'carol’s retained presence')
      await fresh.request('user.blocked')
      assert.deepEqual(presenceOf(fresh, 'alice'), [])
      // Gone again, so that bob's presence follows his phone alone.
      await fresh.client.endAsync()
    })

    it('hides typing both ways in the direct chat, and the sender is told nothing', async () => {
      await typing(bob, direct)
      await typing(alice, direct)
      // In the group both still see each other (groups are not affected by a block).
      await typing(bob, group)
      await typing(alice, group)
      await alice.until(() => typingOf(alice, group).includes('bob'), 'bob typing in the group')
      await bob.until(() => typingOf(bob, group).includes('alice'), 'alice typing in the group')
      await alice.request('user.blocked')
      await bob.request('user.blocked')
      assert.deepEqual(typingOf(alice, direct), [])
      assert.deepEqual(typingOf(bob, direct), [])
      assert.deepEqual(bob.errors, [])
    })

    it('refuses a new direct chat both ways with one neutral answer, and keeps the existing one', async () => {
      await alice.request('user.block', { userId: 'dan' })
      const dan = await Device.connect(t.mqttUrl, 'dan', 'phone', await t.token('dan'))
      extra.push(dan)
      const fromBlocked = await dan.request('chat.direct', { with: 'alice' }).then(
        () => null,
        (err: { code: string; message: string }) => err,
      )
      const fromBlocker = await alice.request('chat.direct', { with: 'dan' }).then(
        () => null,
        (err: { code: string; message: string }) => err,
      )
      assert.equal(fromBlocked?.code, 'not_allowed')
      assert.equal(fromBlocked?.message, 'a direct chat with alice cannot be started')
      assert.equal(fromBlocker?.code, 'not_allowed')
      assert.equal(fromBlocker?.message, 'a direct chat with dan cannot be started')
      // The chat they had before the block is found again, not refused.
      assert.equal((await bob.request<{ id: string }>('chat.direct', { with: 'alice' })).id, direct)
    })

    let hidden: number[] = []
    it('stores the blocked user’s direct messages as sent for them, and never shows them to the blocker', async () => {
      const aliceDirect = inChat(alice, direct).length
      hidden = [await send(bob, direct, 'are you there?'), await send(bob, direct, 'hello?')]
      // Alice still gets bob's group messages; they are written after anything of his before them.
      const inGroup = await send(bob, group, 'hi all')
      await alice.until(() => inChat(alice, group).some((e) => e.seq === inGroup), 'bob’s group message')
      assert.equal(
        inChat(alice, direct).length,
        aliceDirect,
        `nothing of the direct chat reached alice: ${JSON.stringify(inChat(alice, direct))}`,
      )
      assert.deepEqual(bob.errors, [])
      // Bob's own view: stored, in his history, his own.
      const bobHistory = await bob.request<{ messages: Array<{ seq: number }> }>('history', {
        chatId: direct,
      })
      assert.deepEqual(
        bobHistory.messages.slice(0, 2).map((m) => m.seq),
        [...hidden].reverse(),
      )
      // Nothing in what bob gets marks them: his own echoes and history look as they always do.
      const echoes = inChat(bob, direct).filter((e) => e.type === 'message' && hidden.includes(e.seq))
      assert.equal(echoes.length, 2)
      for (const e of [...echoes, ...bobHistory.messages]) assert.ok(!('hiddenFrom' in e), JSON.stringify(e))
      // Alice's: not in history, sync or search, not unread, not the last message.
      const aliceHistory = await alice.request<{ messages: Array<{ seq: number }> }>('history', {
        chatId: direct,
      })
      assert.ok(aliceHistory.messages.every((m) => !hidden.includes(m.seq)))
      const aliceSync = await alice.request<{ messages: Array<{ seq: number }>; lastSeq: number }>('sync', {
        chatId: direct,
        after: 0,
      })
      assert.ok(aliceSync.messages.every((m) => !hidden.includes(m.seq)))
      assert.deepEqual(await alice.request('search', { chatId: direct, query: 'hello' }), { messages: [] })
      assert.equal(
        (await bob.request<{ messages: unknown[] }>('search', { chatId: direct, query: 'hello' })).messages
          .length,
        1,
      )
      const chat = await alice.request<{ unread: number; lastMessage: { seq: number } | null }>('chat.get', {
        chatId: direct,
      })
      assert.equal(chat.unread, 0)
      assert.ok(!hidden.includes(chat.lastMessage?.seq ?? 0))
    })

    it('sends the blocked user no receipt, and passes over their hidden messages on a reconnect', async () => {
      // Alice reads the direct chat to its end: bob is not told (his messages stay "sent").
      await alice.request('read', { chatId: direct, seq: hidden[1] })
      const readGroup = inChat(bob, group).at(-1)?.seq as number
      await alice.request('read', { chatId: group, seq: readGroup })
      await bob.until(
        () => bob.inbox.some((e) => e.type === 'receipt' && e.chatId === group && e.userId === 'alice'),
        'alice’s receipt in the group',
      )
      assert.ok(!bob.inbox.some((e) => e.type === 'receipt' && e.chatId === direct && e.userId === 'alice'))
      // While alice is away, bob writes again: her feed reads the store on return and skips it.
      await alice.client.endAsync()
      hidden.push(await send(bob, direct, 'still there?'))
      const later = await send(carol, group, 'welcome back')
      alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      await alice.until(() => inChat(alice, group).some((e) => e.seq === later), 'carol’s group message')
      assert.deepEqual(inChat(alice, direct), [])
      // An edit and a delete of a hidden message reach bob, not alice.
      await bob.request('edit', { chatId: direct, seq: hidden[0], text: 'edited' })
      await bob.request('delete', { chatId: direct, seq: hidden[1] })
      const last = await send(carol, group, 'after the edits')
      await alice.until(() => inChat(alice, group).some((e) => e.seq === last), 'the message after the edits')
      assert.deepEqual(inChat(alice, direct), [])
      const aliceHistory = await alice.request<{ messages: Array<{ seq: number }> }>('history', {
        chatId: direct,
      })
      assert.ok(
        aliceHistory.messages.every((m) => !hidden.includes(m.seq)),
        'nor the tombstone',
      )
    })

    it('pushes the blocker nothing of the blocked user’s direct messages', async () => {
      // A device of alice's that is never connected: every message of her chats is pushed to it.
      await alice.request('push.register', { platform: 'fcm', token: 'alice-tablet', deviceId: 'tablet' })
      const pushJob = (chatId: string) => t.node.stores.push.job('alice', 'tablet', chatId)
      const jobAt = async (chatId: string, seq: number) => {
        for (let i = 0; i < 200 && ((await pushJob(chatId))?.lastSeq ?? 0) < seq; i++)
          await new Promise((resolve) => setTimeout(resolve, 10))
        return (await pushJob(chatId))?.lastSeq
      }
      const first = await send(bob, group, 'push me')
      assert.equal(await jobAt(group, first), first, 'group messages are pushed to the tablet')
      hidden.push(await send(bob, direct, 'and this?'))
      // Enqueued one after the other in send order, so the group job shows the direct one's is done.
      const second = await send(bob, group, 'push me too')
      assert.equal(await jobAt(group, second), second)
      assert.equal(await pushJob(direct), null)
      await alice.request('push.unregister', { deviceId: 'tablet' })
    })

    it('tells the blocker to unblock before sending in the direct chat', async () => {
      await assert.rejects(alice.request('send', { chatId: direct, clientMsgId: 'x1', text: 'hi' }), {
        code: 'not_allowed',
        message: 'you block bob: unblock them to send in this chat',
      })
    })

    it('restores presence and typing on unblock', async () => {
      // Alice's app (the SDK) follows the direct chat from before the unblock: the seqs hidden from
      // her must not look like a gap it keeps fetching, nor hold her unread count up.
      const app: NatterClient = await createClient({
        url: t.mqttUrl,
        userId: 'alice',
        deviceId: 'app',
        getToken: () => t.token('alice'),
        reconnect: { minMs: 50, maxMs: 500 },
      })
      apps.push(app)
      const opened = await app.open(direct)
      assert.ok(opened.every((m) => !hidden.includes(m.seq)))
      assert.deepEqual(await alice.request('user.unblock', { userId: 'bob' }), {
        userId: 'bob',
        wasBlocked: true,
      })
      assert.deepEqual(await alice.request('user.unblock', { userId: 'bob' }), {
        userId: 'bob',
        wasBlocked: false,
      })
      assert.deepEqual(
        (await alice.request<{ users: Array<{ userId: string }> }>('user.blocked')).users.map(
          (u) => u.userId,
        ),
        ['dan'],
      )
      const aliceSawBob = presenceOf(alice, 'bob').length
      bob = await cycle(bob)
      await alice.until(
        () => online(alice, 'bob', aliceSawBob, false) && online(alice, 'bob', aliceSawBob, true),
        'bob offline and online at alice',
      )
      await typing(bob, direct)
      await alice.until(() => typingOf(alice, direct).includes('bob'), 'bob typing in the direct chat')
      await typing(alice, direct)
      await bob.until(() => typingOf(bob, direct).includes('alice'), 'alice typing in the direct chat')
      // Messages flow again, while those sent during the block stay hidden from alice.
      const seq = await send(bob, direct, 'back?')
      await alice.until(() => inChat(alice, direct).some((e) => e.seq === seq), 'bob’s new message')
      const history = await alice.request<{ messages: Array<{ seq: number }> }>('history', { chatId: direct })
      assert.ok(history.messages.some((m) => m.seq === seq))
      assert.ok(history.messages.every((m) => !hidden.includes(m.seq)))
      // The feed went past the hidden seqs in order: the new message came, the hidden ones never did.
      assert.ok(inChat(alice, direct).every((e) => !hidden.includes(e.seq)))
      await new Promise<void>((resolve) => {
        const check = () => app.messages(direct).some((m) => m.seq === seq) && resolve()
        app.on('message', check)
        check()
      })
      assert.ok(app.messages(direct).every((m) => !hidden.includes(m.seq)))
      // What the app does on a gap (it runs in the background too): the hidden seqs are passed over.
      await app.sync(direct)
      assert.deepEqual(await app.markRead(direct), { readSeq: seq, unread: 0 })
      const reply = await send(alice, direct, 'yes')
      await bob.until(() => inChat(bob, direct).some((e) => e.seq === reply), 'alice’s reply')
    })
  })
}
