import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ChatStore, Cursor } from '../../services/chats/chat-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`

/** Shuffled with a fixed seed, so a failing order can be run again. */
function shuffled<T>(items: T[], seed = 7): T[] {
  const out = [...items]
  let s = seed
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

/** What every chat store must do, whatever holds the data. */
export function chatStoreContract(name: string, open: () => Promise<Harness<ChatStore>>): void {
  describe(`chat store contract: ${name}`, () => {
    let h: Harness<ChatStore>
    let store: ChatStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('creates a group with its creator as admin and the others as members, in join order', async () => {
      const [id, alice, bob, carol] = [unique('group'), unique('alice'), unique('bob'), unique('carol')]
      const chat = await store.createGroup({
        id,
        name: 'Trip',
        createdBy: alice,
        members: [carol, alice, bob, carol],
        at: 1000,
      })
      const expected = { id, kind: 'group', name: 'Trip', createdBy: alice, createdAt: 1000 }
      assert.deepEqual(chat, expected)
      assert.deepEqual(await store.getChat(id), expected)
      assert.deepEqual(await store.members(id), [
        { chatId: id, userId: alice, role: 'admin', joinedAt: 1000 },
        { chatId: id, userId: carol, role: 'member', joinedAt: 1000 },
        { chatId: id, userId: bob, role: 'member', joinedAt: 1000 },
      ])
    })

    it('knows nothing of a chat that was never created', async () => {
      const id = unique('nowhere')
      assert.equal(await store.getChat(id), null)
      assert.deepEqual(await store.members(id), [])
      assert.deepEqual(await store.cursors(id), [])
      assert.deepEqual(await store.chatsOf(unique('nobody')), [])
    })

    it('finds the one direct chat of two users in either order', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      const first = await store.findOrCreateDirect({ id: unique('direct'), a: alice, b: bob, at: 2000 })
      assert.equal(first.created, true)
      assert.deepEqual(first.chat, {
        id: first.chat.id,
        kind: 'direct',
        name: null,
        createdBy: alice,
        createdAt: 2000,
      })
      const unusedId = unique('direct')
      const again = await store.findOrCreateDirect({ id: unusedId, a: bob, b: alice, at: 3000 })
      assert.equal(again.created, false)
      assert.deepEqual(again.chat, first.chat)
      assert.equal(await store.getChat(unusedId), null)
      assert.deepEqual(await store.getChat(first.chat.id), first.chat)
      assert.deepEqual(await store.members(first.chat.id), [
        { chatId: first.chat.id, userId: alice, role: 'member', joinedAt: 2000 },
        { chatId: first.chat.id, userId: bob, role: 'member', joinedAt: 2000 },
      ])
    })

    it('keeps direct chats of different pairs apart, even when the ids run together', async () => {
      const x = unique('x')
      const one = await store.findOrCreateDirect({ id: unique('direct'), a: `${x}a`, b: 'b', at: 1 })
      const two = await store.findOrCreateDirect({ id: unique('direct'), a: x, b: 'ab', at: 1 })
      const three = await store.findOrCreateDirect({ id: unique('direct'), a: `${x}a`, b: 'c', at: 1 })
      assert.deepEqual([one.created, two.created, three.created], [true, true, true])
      assert.equal(new Set([one.chat.id, two.chat.id, three.chat.id]).size, 3)
    })

    it('keeps a pair’s encrypted direct chat apart from its plaintext one, one of each even when ten callers race', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      const plain = await store.findOrCreateDirect({ id: unique('direct'), a: alice, b: bob, at: 1 })
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          store.findOrCreateDirect({
            id: unique('e_d.'),
            a: i % 2 ? alice : bob,
            b: i % 2 ? bob : alice,
            at: 2 + i,
            encrypted: true,
          }),
        ),
      )
      assert.equal(results.filter((r) => r.created).length, 1)
      const secret = results.find((r) => r.created)?.chat
      for (const r of results) assert.deepEqual(r.chat, secret)
      assert.notEqual(secret?.id, plain.chat.id)
      assert.equal(secret?.kind, 'direct')
      // Each found again, by the kind asked for.
      const again = await store.findOrCreateDirect({ id: unique('direct'), a: bob, b: alice, at: 99 })
      assert.deepEqual(again, { chat: plain.chat, created: false })
      assert.deepEqual(
        (await store.members(secret?.id ?? '')).map((m) => m.userId).sort(),
        [alice, bob].sort(),
      )
    })

    it('creates one direct chat when ten callers race to create it', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          store.findOrCreateDirect({
            id: unique('direct'),
            a: i % 2 ? alice : bob,
            b: i % 2 ? bob : alice,
            at: 4000 + i,
          }),
        ),
      )
      assert.equal(results.filter((r) => r.created).length, 1)
      const chat = results.find((r) => r.created)?.chat
      for (const r of results) assert.deepEqual(r.chat, chat)
      const chatId = chat?.id ?? ''
      assert.deepEqual((await store.members(chatId)).map((m) => m.userId).sort(), [alice, bob].sort())
      assert.deepEqual(
        (await store.chatsOf(alice)).map((c) => c.id),
        [chatId],
      )
      assert.deepEqual(
        (await store.chatsOf(bob)).map((c) => c.id),
        [chatId],
      )
    })

    it('adds only those who are not members yet, and says which', async () => {
      const [id, alice, bob, carol, dave] = [
        unique('group'),
        unique('alice'),
        unique('bob'),
        unique('carol'),
        unique('dave'),
      ]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [bob], at: 1000 })
      assert.deepEqual(await store.addMembers(id, [bob, dave, alice, carol, dave], 5000), [dave, carol])
      assert.deepEqual(await store.addMembers(id, [bob, carol], 6000), [])
      assert.deepEqual(await store.members(id), [
        { chatId: id, userId: alice, role: 'admin', joinedAt: 1000 },
        { chatId: id, userId: bob, role: 'member', joinedAt: 1000 },
        { chatId: id, userId: dave, role: 'member', joinedAt: 5000 },
        { chatId: id, userId: carol, role: 'member', joinedAt: 5000 },
      ])
    })

    it('removes a member, keeping their cursor for when they come back, and says false for a non-member', async () => {
      const [id, alice, bob] = [unique('group'), unique('alice'), unique('bob')]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [bob], at: 1000 })
      await store.advanceCursor({ chatId: id, userId: bob, kind: 'delivered', seq: 9 })
      await store.advanceCursor({ chatId: id, userId: bob, kind: 'read', seq: 7 })
      assert.equal(await store.removeMember(id, bob), true)
      assert.equal(await store.removeMember(id, bob), false)
      assert.equal(await store.removeMember(id, unique('stranger')), false)
      assert.deepEqual(
        (await store.members(id)).map((m) => m.userId),
        [alice],
      )
      assert.deepEqual(await store.chatsOf(bob), [])
      assert.deepEqual(
        (await store.cursors(id)).map((c) => c.userId),
        [alice],
        'only members are listed',
      )
      // Back in the chat (with a start for newcomers), bob is no newcomer: his cursor is where he left it.
      assert.deepEqual(await store.addMembers(id, [bob], 2000, 12), [bob])
      assert.deepEqual(await store.cursors(id), [
        { chatId: id, userId: alice, deliveredSeq: 0, readSeq: 0 },
        { chatId: id, userId: bob, deliveredSeq: 9, readSeq: 7 },
      ])
    })

    it('starts a newcomer at the seq given, and a returning member who had read nothing at 0', async () => {
      const [id, alice, bob, carol, dave] = [
        unique('group'),
        unique('alice'),
        unique('bob'),
        unique('carol'),
        unique('dave'),
      ]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [bob], at: 1000 })
      // Bob, a creation member, never read anything, leaves and comes back: still at 0.
      assert.equal(await store.removeMember(id, bob), true)
      assert.deepEqual(await store.addMembers(id, [carol, bob, alice], 3000, 5), [carol, bob])
      assert.deepEqual(await store.cursor(id, carol), {
        chatId: id,
        userId: carol,
        deliveredSeq: 5,
        readSeq: 5,
      })
      assert.deepEqual(await store.cursor(id, bob), { chatId: id, userId: bob, deliveredSeq: 0, readSeq: 0 })
      assert.deepEqual(await store.cursor(id, alice), {
        chatId: id,
        userId: alice,
        deliveredSeq: 0,
        readSeq: 0,
      })
      // A start never moves a cursor: carol reads on, leaves and comes back with a later start.
      await store.advanceCursor({ chatId: id, userId: carol, kind: 'read', seq: 8 })
      await store.removeMember(id, carol)
      assert.deepEqual(await store.addMembers(id, [carol], 4000, 20), [carol])
      assert.deepEqual(await store.cursor(id, carol), {
        chatId: id,
        userId: carol,
        deliveredSeq: 8,
        readSeq: 8,
      })
      // Without a start, a newcomer has no cursor: 0 and 0.
      assert.deepEqual(await store.addMembers(id, [dave], 5000), [dave])
      assert.deepEqual(await store.cursor(id, dave), {
        chatId: id,
        userId: dave,
        deliveredSeq: 0,
        readSeq: 0,
      })
      // The start is a cursor like any other: it moves forward from there.
      assert.deepEqual(await store.advanceCursor({ chatId: id, userId: carol, kind: 'delivered', seq: 3 }), {
        cursor: { chatId: id, userId: carol, deliveredSeq: 8, readSeq: 8 },
        moved: false,
      })
    })

    it('changes the role of a member', async () => {
      const [id, alice, bob] = [unique('group'), unique('alice'), unique('bob')]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [bob], at: 1000 })
      await store.setRole(id, bob, 'admin')
      await store.setRole(id, alice, 'member')
      assert.deepEqual(
        (await store.members(id)).map((m) => [m.userId, m.role]),
        [
          [alice, 'member'],
          [bob, 'admin'],
        ],
      )
      assert.deepEqual(
        (await store.allMembers()).filter((m) => m.chatId === id).map((m) => [m.userId, m.role]),
        [
          [alice, 'member'],
          [bob, 'admin'],
        ],
      )
    })

    it('renames a group, keeps the name across a reopen, and never names a direct chat', async () => {
      const [id, alice, bob] = [unique('group'), unique('alice'), unique('bob')]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [bob], at: 1000 })
      assert.equal(await store.renameChat(id, 'Trip to Lisbon 🇵🇹'), true)
      assert.equal((await store.getChat(id))?.name, 'Trip to Lisbon 🇵🇹')
      assert.equal((await store.chatsOf(bob)).find((c) => c.id === id)?.name, 'Trip to Lisbon 🇵🇹')
      store = await h.reopen()
      assert.equal((await store.getChat(id))?.name, 'Trip to Lisbon 🇵🇹')
      const { chat: direct } = await store.findOrCreateDirect({
        id: unique('direct'),
        a: alice,
        b: bob,
        at: 1,
      })
      assert.equal(await store.renameChat(direct.id, 'Us'), false)
      assert.equal((await store.getChat(direct.id))?.name, null)
      assert.equal(await store.renameChat(unique('missing'), 'Nobody'), false)
    })

    it("lists a user's chats newest first, without those the user left", async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      const [oldest, newest, middle, left] = [unique('g'), unique('g'), unique('g'), unique('g')]
      await store.createGroup({ id: oldest, name: 'old', createdBy: alice, members: [], at: 1000 })
      await store.createGroup({ id: newest, name: 'new', createdBy: bob, members: [alice], at: 9000 })
      await store.createGroup({ id: middle, name: 'mid', createdBy: bob, members: [], at: 5000 })
      await store.addMembers(middle, [alice], 9500)
      await store.createGroup({ id: left, name: 'left', createdBy: bob, members: [alice], at: 8000 })
      await store.removeMember(left, alice)
      const direct = await store.findOrCreateDirect({ id: unique('direct'), a: bob, b: alice, at: 7000 })
      assert.deepEqual(
        (await store.chatsOf(alice)).map((c) => c.id),
        [newest, direct.chat.id, middle, oldest],
      )
      assert.deepEqual((await store.chatsOf(alice))[0], {
        id: newest,
        kind: 'group',
        name: 'new',
        createdBy: bob,
        createdAt: 9000,
      })
      assert.deepEqual(
        (await store.chatsOf(bob)).map((c) => c.id),
        [newest, left, direct.chat.id, middle],
      )
    })

    it('lists every membership of every chat', async () => {
      const [g, alice, bob] = [unique('group'), unique('alice'), unique('bob')]
      await store.createGroup({ id: g, name: 'G', createdBy: alice, members: [bob], at: 1000 })
      const { chat: d } = await store.findOrCreateDirect({ id: unique('direct'), a: alice, b: bob, at: 2000 })
      const all = await store.allMembers()
      assert.deepEqual(
        all.filter((m) => m.chatId === g || m.chatId === d.id),
        [...(await store.members(g)), ...(await store.members(d.id))].sort((x, y) =>
          x.chatId < y.chatId ? -1 : x.chatId > y.chatId ? 1 : 0,
        ),
      )
      assert.equal(all.filter((m) => m.userId === alice).length, 2)
    })

    it('moves cursors forward only, reading moving delivered along', async () => {
      const [id, alice] = [unique('group'), unique('alice')]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [], at: 1000 })
      const at = (deliveredSeq: number, readSeq: number): Cursor => ({
        chatId: id,
        userId: alice,
        deliveredSeq,
        readSeq,
      })
      const step = (kind: 'delivered' | 'read', seq: number) =>
        store.advanceCursor({ chatId: id, userId: alice, kind, seq })
      assert.deepEqual(await step('delivered', 0), { cursor: at(0, 0), moved: false })
      assert.deepEqual(await step('delivered', 5), { cursor: at(5, 0), moved: true })
      assert.deepEqual(await step('delivered', 3), { cursor: at(5, 0), moved: false })
      assert.deepEqual(await step('delivered', 5), { cursor: at(5, 0), moved: false })
      assert.deepEqual(await step('read', 2), { cursor: at(5, 2), moved: true })
      assert.deepEqual(await step('read', 8), { cursor: at(8, 8), moved: true })
      assert.deepEqual(await step('read', 8), { cursor: at(8, 8), moved: false })
      assert.deepEqual(await step('read', 1), { cursor: at(8, 8), moved: false })
      assert.deepEqual(await step('delivered', 8), { cursor: at(8, 8), moved: false })
      assert.deepEqual(await step('delivered', 10), { cursor: at(10, 8), moved: true })
      assert.deepEqual(await store.cursors(id), [at(10, 8)])
      assert.deepEqual(await store.cursor(id, alice), at(10, 8))
      const nobody = unique('nobody')
      assert.deepEqual(await store.cursor(id, nobody), {
        chatId: id,
        userId: nobody,
        deliveredSeq: 0,
        readSeq: 0,
      })
      // A first read creates the cursor with delivered at the same place.
      const bob = unique('bob')
      await store.addMembers(id, [bob], 2000)
      assert.deepEqual(await store.advanceCursor({ chatId: id, userId: bob, kind: 'read', seq: 4 }), {
        cursor: { chatId: id, userId: bob, deliveredSeq: 4, readSeq: 4 },
        moved: true,
      })
    })

    it('ends concurrent advances at the highest seq, never lower', async () => {
      const [id, alice] = [unique('group'), unique('alice')]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [], at: 1000 })
      const seqs = Array.from({ length: 50 }, (_, i) => i + 1)
      const calls = [
        ...shuffled(seqs, 11).map((seq) => ({ kind: 'delivered' as const, seq })),
        ...shuffled(seqs.slice(0, 40), 23).map((seq) => ({ kind: 'read' as const, seq })),
      ]
      const results = await Promise.all(
        shuffled(calls, 5).map(async (c) => ({
          ...c,
          ...(await store.advanceCursor({ chatId: id, userId: alice, ...c })),
        })),
      )
      for (const r of results) {
        assert.ok(r.cursor.deliveredSeq >= r.cursor.readSeq, `delivered behind read after ${r.kind} ${r.seq}`)
        const reached = r.kind === 'read' ? r.cursor.readSeq : r.cursor.deliveredSeq
        assert.ok(reached >= r.seq, `${r.kind} ${r.seq} left the cursor at ${reached}`)
      }
      assert.equal(results.find((r) => r.kind === 'delivered' && r.seq === 50)?.moved, true)
      assert.equal(results.find((r) => r.kind === 'read' && r.seq === 40)?.moved, true)
      assert.deepEqual(await store.cursors(id), [
        { chatId: id, userId: alice, deliveredSeq: 50, readSeq: 40 },
      ])
    })

    it("lists every member's cursor, with zeros for those who have none, and only members", async () => {
      const [id, alice, bob, carol] = [unique('group'), unique('alice'), unique('bob'), unique('carol')]
      await store.createGroup({ id, name: 'G', createdBy: alice, members: [bob, carol], at: 1000 })
      await store.advanceCursor({ chatId: id, userId: carol, kind: 'delivered', seq: 3 })
      await store.advanceCursor({ chatId: id, userId: alice, kind: 'read', seq: 2 })
      await store.advanceCursor({ chatId: id, userId: unique('stranger'), kind: 'read', seq: 9 })
      assert.deepEqual(await store.cursors(id), [
        { chatId: id, userId: alice, deliveredSeq: 2, readSeq: 2 },
        { chatId: id, userId: bob, deliveredSeq: 0, readSeq: 0 },
        { chatId: id, userId: carol, deliveredSeq: 3, readSeq: 0 },
      ])
    })

    it('keeps the latest presence of each user', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      await store.setPresence({ userId: alice, online: true, lastSeen: 1000 })
      await store.setPresence({ userId: bob, online: true, lastSeen: 1500 })
      await store.setPresence({ userId: alice, online: false, lastSeen: 2000 })
      const mine = (await store.allPresence()).filter((p) => p.userId === alice || p.userId === bob)
      assert.deepEqual(
        mine.sort((x, y) => (x.userId < y.userId ? -1 : 1)),
        [
          { userId: alice, online: false, lastSeen: 2000 },
          { userId: bob, online: true, lastSeen: 1500 },
        ].sort((x, y) => (x.userId < y.userId ? -1 : 1)),
      )
    })

    it('keeps chats, members, roles, cursors, direct pairs and presence across a close and reopen', async () => {
      const [g, alice, bob] = [unique('group'), unique('alice'), unique('bob')]
      const group = await store.createGroup({
        id: g,
        name: 'Kept',
        createdBy: alice,
        members: [bob],
        at: 1000,
      })
      await store.setRole(g, bob, 'admin')
      await store.advanceCursor({ chatId: g, userId: bob, kind: 'delivered', seq: 6 })
      await store.advanceCursor({ chatId: g, userId: bob, kind: 'read', seq: 4 })
      const { chat: direct } = await store.findOrCreateDirect({
        id: unique('direct'),
        a: alice,
        b: bob,
        at: 2000,
      })
      await store.setPresence({ userId: alice, online: true, lastSeen: 3000 })
      const members = await store.members(g)

      store = await h.reopen()
      assert.deepEqual(await store.getChat(g), group)
      assert.deepEqual(await store.members(g), members)
      assert.deepEqual(await store.cursors(g), [
        { chatId: g, userId: alice, deliveredSeq: 0, readSeq: 0 },
        { chatId: g, userId: bob, deliveredSeq: 6, readSeq: 4 },
      ])
      assert.deepEqual(await store.findOrCreateDirect({ id: unique('direct'), a: bob, b: alice, at: 9000 }), {
        chat: direct,
        created: false,
      })
      assert.deepEqual(
        (await store.chatsOf(alice)).map((c) => c.id),
        [direct.id, g],
      )
      assert.deepEqual(
        (await store.allPresence()).find((p) => p.userId === alice),
        { userId: alice, online: true, lastSeen: 3000 },
      )
    })

    it('lists every chat a user is or was in with chatsEver, with membership and read cursor', async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      // Ids in an order unlike creation: the list is by chat id.
      const [g1, g2, g3] = [unique('zz-group'), unique('aa-group'), unique('mm-group')]
      await store.createGroup({ id: g1, name: 'One', createdBy: alice, members: [bob], at: 1000 })
      await store.createGroup({ id: g2, name: 'Two', createdBy: bob, members: [alice], at: 2000 })
      await store.createGroup({ id: g3, name: 'Three', createdBy: bob, members: [], at: 3000 })
      const { chat: direct } = await store.findOrCreateDirect({
        id: unique('direct'),
        a: bob,
        b: alice,
        at: 4000,
      })
      await store.advanceCursor({ chatId: g2, userId: alice, kind: 'read', seq: 7 })
      await store.advanceCursor({ chatId: g2, userId: alice, kind: 'delivered', seq: 9 })
      await store.removeMember(g2, alice)
      await store.advanceCursor({ chatId: g1, userId: alice, kind: 'delivered', seq: 3 })

      const ever = await store.chatsEver(alice)
      const expected = [
        {
          chat: await store.getChat(g1),
          member: { chatId: g1, userId: alice, role: 'admin', joinedAt: 1000 },
          delivered: 3,
          read: 0,
        },
        { chat: await store.getChat(g2), member: null, delivered: 9, read: 7 },
        {
          chat: direct,
          member: { chatId: direct.id, userId: alice, role: 'member', joinedAt: 4000 },
          delivered: 0,
          read: 0,
        },
      ].sort((x, y) => ((x.chat?.id ?? '') < (y.chat?.id ?? '') ? -1 : 1))
      assert.deepEqual(
        ever,
        expected.map((e) => ({
          chat: e.chat,
          member: e.member,
          cursor: { chatId: e.chat?.id, userId: alice, deliveredSeq: e.delivered, readSeq: e.read },
        })),
      )
      assert.deepEqual(await store.chatsEver(unique('nobody')), [])
      // Removed and added back: a member again, the cursor kept.
      await store.addMembers(g2, [alice], 5000)
      const back = (await store.chatsEver(alice)).find((e) => e.chat.id === g2)
      assert.deepEqual(back?.member, { chatId: g2, userId: alice, role: 'member', joinedAt: 5000 })
      assert.equal(back?.cursor.readSeq, 7)
    })

    it("forgets a user's cursors and presence with forgetUser, and no one else's", async () => {
      const [alice, bob] = [unique('alice'), unique('bob')]
      const g = unique('group')
      await store.createGroup({ id: g, name: 'G', createdBy: alice, members: [bob], at: 1000 })
      await store.advanceCursor({ chatId: g, userId: alice, kind: 'read', seq: 4 })
      await store.advanceCursor({ chatId: g, userId: bob, kind: 'read', seq: 5 })
      await store.setPresence({ userId: alice, online: true, lastSeen: 2000 })
      await store.setPresence({ userId: bob, online: false, lastSeen: 3000 })
      await store.removeMember(g, alice)
      await store.forgetUser(alice)
      await store.forgetUser(alice)
      await store.purgeErased()
      assert.deepEqual(await store.chatsEver(alice), [])
      assert.deepEqual(await store.cursor(g, alice), {
        chatId: g,
        userId: alice,
        deliveredSeq: 0,
        readSeq: 0,
      })
      assert.equal(
        (await store.allPresence()).find((p) => p.userId === alice),
        undefined,
      )
      assert.deepEqual(await store.cursor(g, bob), { chatId: g, userId: bob, deliveredSeq: 5, readSeq: 5 })
      assert.deepEqual(
        (await store.allPresence()).find((p) => p.userId === bob),
        { userId: bob, online: false, lastSeen: 3000 },
      )
      assert.deepEqual(
        (await store.members(g)).map((m) => m.userId),
        [bob],
      )
    })
  })
}
