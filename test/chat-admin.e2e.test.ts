import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient, type MembershipEvent, type NatterClient } from '../client-sdk/src/index.ts'
import { Device, type InboxEvent } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

type Described = { name: string | null; members: { userId: string; role: string }[]; lastSeq: number }

const refusal = (code: string, message?: RegExp) => (err: { code?: string; message: string }) => {
  assert.equal(err.code, code, err.message)
  if (message) assert.match(err.message, message)
  return true
}
const eventsOf = (d: Device, chatId: string, type: string): InboxEvent[] =>
  d.messages(chatId).filter((m) => m.kind === 'event' && m.event?.type === type)

/**
 * Group admins and names (docs/protocol.md#chats): chat.role and chat.rename, their events
 * in history and on every member's inbox, the last admin kept, and the SDK's view of them; and
 * an edit that changes nothing.
 */
for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`group admins and names on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    const devices: Device[] = []
    const clients: NatterClient[] = []
    const device = async (userId: string) => {
      const d = await Device.connect(t.mqttUrl, userId, 'phone', await t.token(userId))
      devices.push(d)
      return d
    }
    const client = async (userId: string) => {
      const c = await createClient({
        url: t.mqttUrl,
        userId,
        deviceId: 'sdk',
        getToken: () => t.token(userId),
        reconnect: { minMs: 50, maxMs: 500 },
      })
      clients.push(c)
      return c
    }

    before(async () => {
      if (backend === 'SQLite') t = await startTestNode()
      else {
        ferret = await startFerretDb()
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri })
      }
    })
    after(async () => {
      for (const c of clients) await c.close().catch(() => {})
      for (const d of devices) await d.close().catch(() => {})
      await t.close()
      await ferret?.stop()
    })

    it('makes admins and members with chat.role, shown to every member and in history, keeping one admin', async () => {
      const [alice, bob, carol] = [await device('alice'), await device('bob'), await device('carol')]
      const group = (
        await alice.request<{ id: string }>('chat.create', { name: 'Trip', members: ['bob', 'carol'] })
      ).id
      const direct = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id

      // Only admins, only groups, only members.
      await assert.rejects(
        bob.request('chat.role', { chatId: group, userId: 'bob', role: 'admin' }),
        refusal('not_allowed', /admin/),
      )
      await assert.rejects(
        alice.request('chat.role', { chatId: direct, userId: 'bob', role: 'admin' }),
        refusal('not_allowed', /direct/),
      )
      await assert.rejects(
        alice.request('chat.role', { chatId: group, userId: 'dave', role: 'admin' }),
        refusal('not_found', /dave/),
      )
      await assert.rejects(
        alice.request('chat.role', { chatId: group, userId: 'bob', role: 'owner' }),
        refusal('bad_request'),
      )
      // The only admin cannot step down, and changes nothing trying.
      await assert.rejects(
        alice.request('chat.role', { chatId: group, userId: 'alice', role: 'member' }),
        refusal('last_admin', /only admin/),
      )

      assert.deepEqual(await alice.request('chat.role', { chatId: group, userId: 'bob', role: 'admin' }), {
        userId: 'bob',
        role: 'admin',
        changed: true,
      })
      for (const d of [alice, bob, carol]) {
        await d.until(() => eventsOf(d, group, 'member_role').length === 1, `${d.userId} hears bob is admin`)
        assert.deepEqual(eventsOf(d, group, 'member_role')[0]?.event, {
          type: 'member_role',
          userId: 'bob',
          role: 'admin',
        })
        assert.equal(eventsOf(d, group, 'member_role')[0]?.senderId, 'alice')
      }
      // The same role again: answered, no event (the next event seen is the demotion's).
      assert.deepEqual(await alice.request('chat.role', { chatId: group, userId: 'bob', role: 'admin' }), {
        userId: 'bob',
        role: 'admin',
        changed: false,
      })

      // The new admin acts as one: adds dave and makes alice a member; alice no longer can.
      assert.deepEqual(await bob.request('chat.add', { chatId: group, members: ['dave'] }), {
        added: ['dave'],
      })
      await bob.request('chat.role', { chatId: group, userId: 'alice', role: 'member' })
      await carol.until(
        () => eventsOf(carol, group, 'member_role').length === 2,
        'carol hears alice stepped down',
      )
      assert.deepEqual(eventsOf(carol, group, 'member_role')[1]?.event, {
        type: 'member_role',
        userId: 'alice',
        role: 'member',
      })
      await assert.rejects(
        alice.request('chat.add', { chatId: group, members: ['erin'] }),
        refusal('not_allowed'),
      )
      await assert.rejects(
        bob.request('chat.role', { chatId: group, userId: 'bob', role: 'member' }),
        refusal('last_admin'),
      )

      const seen = await carol.request<Described>('chat.get', { chatId: group })
      assert.deepEqual(seen.members, [
        { userId: 'alice', role: 'member' },
        { userId: 'bob', role: 'admin' },
        { userId: 'carol', role: 'member' },
        { userId: 'dave', role: 'member' },
      ])
      const listed = (await alice.request<{ chats: ({ id: string } & Described)[] }>('chat.list')).chats
      assert.deepEqual(listed.find((c) => c.id === group)?.members, seen.members)
      const history = await carol.request<{ messages: InboxEvent[] }>('history', { chatId: group })
      assert.deepEqual(
        history.messages
          .filter((m) => m.event?.type === 'member_role')
          .map((m) => [m.event?.userId, m.event?.role])
          .reverse(),
        [
          ['bob', 'admin'],
          ['alice', 'member'],
        ],
      )

      // Two admins making each other members at once: one goes first, the other is no admin by then.
      await bob.request('chat.role', { chatId: group, userId: 'carol', role: 'admin' })
      const both = await Promise.allSettled([
        bob.request('chat.role', { chatId: group, userId: 'carol', role: 'member' }),
        carol.request('chat.role', { chatId: group, userId: 'bob', role: 'member' }),
      ])
      assert.deepEqual(
        both.map((r) => r.status).sort(),
        ['fulfilled', 'rejected'],
        'one of the two goes through',
      )
      const loser = both.find((r) => r.status === 'rejected') as PromiseRejectedResult
      assert.equal((loser.reason as { code: string }).code, 'not_allowed')
      const admins = (await carol.request<Described>('chat.get', { chatId: group })).members.filter(
        (m) => m.role === 'admin',
      )
      assert.equal(admins.length, 1, 'exactly one admin is left')
      if (admins[0]?.userId === 'carol') {
        // Put bob back as the only admin, for what follows.
        await carol.request('chat.role', { chatId: group, userId: 'bob', role: 'admin' })
        await bob.request('chat.role', { chatId: group, userId: 'carol', role: 'member' })
      }

      // The last admin leaving still hands over, with promoted in the event.
      await bob.request('chat.leave', { chatId: group })
      await carol.until(() => eventsOf(carol, group, 'member_left').length === 1, 'carol hears bob left')
      assert.deepEqual(eventsOf(carol, group, 'member_left')[0]?.event, {
        type: 'member_left',
        userId: 'bob',
        promoted: 'alice',
      })
    })

    it('renames a group with chat.rename under chat.create’s rules, shown to every member and in history', async () => {
      const [alice, bob] = [await device('ann'), await device('ben')]
      const group = (await alice.request<{ id: string }>('chat.create', { name: 'Trip', members: ['ben'] }))
        .id
      const direct = (await alice.request<{ id: string }>('chat.direct', { with: 'ben' })).id

      await assert.rejects(
        bob.request('chat.rename', { chatId: group, name: 'Mine' }),
        refusal('not_allowed'),
      )
      await assert.rejects(
        alice.request('chat.rename', { chatId: direct, name: 'Us' }),
        refusal('not_allowed'),
      )
      for (const name of ['', ' ', 'x'.repeat(101), 'a\u0000b']) {
        await assert.rejects(alice.request('chat.rename', { chatId: group, name }), refusal('bad_request'))
      }
      await assert.rejects(
        alice.request('chat.rename', { chatId: 'g_none', name: 'Nope' }),
        refusal('chat_not_found'),
      )

      const renamed = await alice.request<Described>('chat.rename', {
        chatId: group,
        name: 'Trip to Lisbon 🇵🇹',
      })
      assert.equal(renamed.name, 'Trip to Lisbon 🇵🇹')
      for (const d of [alice, bob]) {
        await d.until(
          () => eventsOf(d, group, 'chat_renamed').length === 1,
          `${d.userId} hears of the rename`,
        )
        assert.deepEqual(eventsOf(d, group, 'chat_renamed')[0]?.event, {
          type: 'chat_renamed',
          name: 'Trip to Lisbon 🇵🇹',
          previous: 'Trip',
        })
      }
      // The same name again: the chat as it is, no event.
      const same = await alice.request<Described>('chat.rename', { chatId: group, name: 'Trip to Lisbon 🇵🇹' })
      assert.equal(same.lastSeq, renamed.lastSeq)
      assert.equal((await bob.request<Described>('chat.get', { chatId: group })).name, 'Trip to Lisbon 🇵🇹')
      const listed = (await bob.request<{ chats: ({ id: string } & Described)[] }>('chat.list')).chats
      assert.equal(listed.find((c) => c.id === group)?.name, 'Trip to Lisbon 🇵🇹')
      const history = await bob.request<{ messages: InboxEvent[] }>('history', { chatId: group })
      assert.equal(history.messages.filter((m) => m.event?.type === 'chat_renamed').length, 1)
    })

    it('answers an edit to the text the message has already with the message unchanged, and no event', async () => {
      const [alice, bob] = [await device('cleo'), await device('dan')]
      const chatId = (await alice.request<{ id: string }>('chat.direct', { with: 'dan' })).id
      const sent = await alice.request<{ message: { seq: number } }>('send', {
        chatId,
        clientMsgId: 'same-1',
        text: 'hello',
      })
      const seq = sent.message.seq
      const same = await alice.request<{ message: { text: string; editedAt: number | null } }>('edit', {
        chatId,
        seq,
        text: 'hello',
      })
      assert.deepEqual([same.message.text, same.message.editedAt], ['hello', null])
      const changed = await alice.request<{ message: { editedAt: number | null } }>('edit', {
        chatId,
        seq,
        text: 'hello!',
      })
      assert.equal(typeof changed.message.editedAt, 'number')
      // The inbox is in order: the real edit's event arrives, with none before it.
      await bob.until(() => bob.inbox.some((e) => e.type === 'edit' && e.chatId === chatId), 'the real edit')
      assert.deepEqual(
        bob.inbox.filter((e) => e.type === 'edit' && e.chatId === chatId).map((e) => e.text),
        ['hello!'],
      )
      // And the same text as the edited one is no second edit.
      const again = await alice.request<{ message: { editedAt: number | null } }>('edit', {
        chatId,
        seq,
        text: 'hello!',
      })
      assert.equal(again.message.editedAt, changed.message.editedAt)
    })

    it('gives the SDK setRole and rename, the name and members as they change, and typed membership events', async () => {
      const [fay, gus] = [await client('fay'), await client('gus')]
      await Promise.all([fay.loadChats(), gus.loadChats()])
      const gusAdded = gus.next('chat.added')
      const group = await fay.createGroup('team', ['gus'])
      const f = fay.chat(group.id)
      await f.open()
      const g = await gusAdded
      await g.open()

      // A rename: the renamer's state at once, the other's from the event.
      const gusName = g.next('name.updated')
      const gusRenamed = g.next('membership', (e) => e.type === 'chat_renamed')
      const fayName = f.next('name.updated')
      const answer = await f.rename('team blue')
      assert.equal(answer.name, 'team blue')
      assert.deepEqual(await fayName, { chatId: group.id, name: 'team blue' })
      assert.equal(f.name, 'team blue')
      assert.deepEqual(await gusName, { chatId: group.id, name: 'team blue' })
      assert.equal(g.getSnapshot().name, 'team blue')
      const renamed = (await gusRenamed) as Extract<MembershipEvent, { type: 'chat_renamed' }>
      assert.deepEqual([renamed.name, renamed.previous, renamed.by], ['team blue', 'team', 'fay'])

      // A role change: members follow, on both sides.
      const gusSeesAdmin = g.next('members.updated', (u) => u.members.every((m) => m.role === 'admin'))
      const roleEvent = g.next('membership', (e) => e.type === 'member_role')
      assert.deepEqual(await f.setRole('gus', 'admin'), { userId: 'gus', role: 'admin', changed: true })
      await gusSeesAdmin
      assert.deepEqual(await roleEvent, {
        chatId: group.id,
        seq: (await roleEvent).seq,
        by: 'fay',
        at: (await roleEvent).at,
        type: 'member_role',
        userId: 'gus',
        role: 'admin',
        promoted: null,
      })
      // gus steps down; fay, the only admin then, cannot.
      const fayAlone = f.next('members.updated', (u) => u.members.some((m) => m.role === 'member'))
      assert.deepEqual(await g.setRole('gus', 'member'), { userId: 'gus', role: 'member', changed: true })
      await fayAlone
      await assert.rejects(f.setRole('fay', 'member'), refusal('last_admin'))

      // The only admin leaves: the event says who took over, and members show it.
      const gusPromoted = g.next('membership', (e) => e.type === 'member_left')
      await f.leave()
      const left = (await gusPromoted) as Extract<MembershipEvent, { type: 'member_left' }>
      assert.deepEqual([left.userId, left.promoted, left.by], ['fay', 'gus', 'fay'])
      assert.deepEqual(g.members, [{ userId: 'gus', role: 'admin' }])
    })
  })
}
