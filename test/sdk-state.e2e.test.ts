import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  type ChatMessage,
  type ChatState,
  type ClientEvents,
  createClient,
  MemoryOutboxStorage,
  type NatterClient,
  type NatterRequestError,
  type OutboxItem,
  type OutboxStorage,
} from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/** Cuts a client's connection as a network drop would: the socket dies, no DISCONNECT. */
function cut(c: NatterClient): void {
  ;(c.mqtt.stream as unknown as { destroy(): void }).destroy()
}

/** Every event a client emits, in order, from now on. */
function record(c: NatterClient): { name: keyof ClientEvents; value: unknown }[] {
  const seen: { name: keyof ClientEvents; value: unknown }[] = []
  const names: (keyof ClientEvents)[] = [
    'message.new',
    'message.updated',
    'message.deleted',
    'members.updated',
    'unread.updated',
    'muted.updated',
    'chat.added',
    'chat.removed',
    'status',
  ]
  for (const name of names) c.on(name, (value) => seen.push({ name, value }))
  return seen
}

/**
 * Resolves when the condition holds: now, or after one of the state's events. For what may have
 * happened before the caller could listen (a message that reached the other side before its
 * sender's own echo).
 */
function until(s: ChatState, condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  if (condition()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const offs = (['message.new', 'message.updated', 'message.deleted', 'unread.updated'] as const).map((e) =>
      s.on(e, () => {
        if (!condition()) return
        done()
        resolve()
      }),
    )
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${s.id}: ${what} did not happen within ${ms} ms`))
    }, ms)
    const done = () => {
      clearTimeout(timer)
      for (const off of offs) off()
    }
  })
}

const texts = (ms: readonly ChatMessage[]) => ms.filter((m) => m.kind === 'text').map((m) => m.text)

describe('the SDK’s chat states and events against a real node', () => {
  let t: TestNode
  const clients: NatterClient[] = []
  const client = async (
    userId: string,
    o: { outbox?: OutboxStorage; deviceId?: string; minMs?: number } = {},
  ) => {
    const c = await createClient({
      url: t.mqttUrl,
      userId,
      deviceId: o.deviceId ?? 'phone',
      ...(o.outbox ? { outbox: o.outbox } : {}),
      getToken: () => t.token(userId),
      reconnect: { minMs: o.minMs ?? 50, maxMs: Math.max(500, o.minMs ?? 0) },
    })
    clients.push(c)
    return c
  }
  before(async () => {
    t = await startTestNode()
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    await t.close()
  })

  it('fires message.new, message.updated, message.deleted and unread changes once each', async () => {
    const alice = await client('alice')
    const bob = await client('bob')
    assert.deepEqual(await alice.loadChats(), [])
    assert.deepEqual(await bob.loadChats(), [])
    const bobSaw = record(bob)
    const aliceSaw = record(alice)

    const bobAdded = bob.next('chat.added')
    const direct = await alice.direct('bob')
    const chatId = direct.id
    const bobChat = await bobAdded
    assert.equal(bobChat.id, chatId)
    assert.equal(bobChat.kind, 'direct')
    assert.equal(bobChat.loaded, true)
    assert.deepEqual(bobChat.members.map((m) => m.userId).sort(), ['alice', 'bob'])
    const a = alice.chat(chatId)
    assert.equal(a, alice.chat(chatId), 'one object per chat')
    await Promise.all([a.open(), bobChat.open()])

    // A new message from alice: new on both sides, unread for bob only.
    const arrived = bobChat.next('message.new', (m) => m.kind === 'text')
    const first = a.send('hello bob')
    const { seq: s1 } = await first.sent
    const m1 = await arrived
    assert.equal(m1.text, 'hello bob')
    assert.equal(bobChat.unread, 1)
    assert.equal(bobChat.lastMessage?.seq, s1)
    const s2 = (await a.send({ text: 'second' }).sent).seq
    await until(bobChat, () => bobChat.unread === 2, 'two unread')

    // An edit and a delete of alice's messages, through her chat state.
    const updated = bobChat.next('message.updated')
    const edited = await a.edit(s1, 'hello bob (edited)')
    assert.equal(edited?.text, 'hello bob (edited)')
    assert.equal((await updated).text, 'hello bob (edited)')
    const deleted = bobChat.next('message.deleted')
    const tombstone = await a.delete(s2)
    assert.equal(tombstone?.deletedAt !== null, true)
    assert.equal((await deleted).seq, s2)
    // The deleted message no longer counts, as on the server.
    assert.equal(bobChat.unread, 1)
    assert.equal((await bob.getChat(chatId)).unread, 1)

    // markRead: down to 0 from the server's answer.
    const read = await bobChat.markRead()
    assert.deepEqual(read, { readSeq: s2, unread: 0 })
    assert.equal(bobChat.unread, 0)
    assert.equal(bobChat.readSeq, s2)

    // Each event once, with the chat's id, in the order it happened (bob's side).
    const bobEvents = bobSaw
      .filter((e) => e.name !== 'status' && e.name !== 'members.updated' && e.name !== 'chat.added')
      .map((e) => {
        const v = e.value as { chatId: string; seq?: number; unread?: number; kind?: string }
        assert.equal(v.chatId, chatId)
        return String(e.name).startsWith('message.')
          ? `${e.name} ${v.kind} ${v.seq}`
          : `${e.name} ${v.unread}`
      })
    assert.deepEqual(bobEvents, [
      'message.new event 1',
      `message.new text ${s1}`,
      'unread.updated 1',
      `message.new text ${s2}`,
      'unread.updated 2',
      `message.updated text ${s1}`,
      `message.deleted text ${s2}`,
      'unread.updated 1',
      'unread.updated 0',
    ])
    assert.equal(bobSaw.filter((e) => e.name === 'chat.added').length, 1)
    // Alice's own messages are not unread; her chat.added came from her own chat.direct.
    assert.equal(a.unread, 0)
    assert.equal(aliceSaw.filter((e) => e.name === 'chat.added').length, 1)
    assert.equal(
      aliceSaw.filter((e) => e.name === 'message.new' && (e.value as ChatMessage).seq === s1).length,
      1,
    )
    assert.deepEqual(texts(bobChat.messages), texts(a.messages), 'both timelines hold the same messages')
    assert.deepEqual(texts(bobChat.messages), ['hello bob (edited)', null])

    // A reply names the message it answers.
    const r = await bobChat.reply(s1, 'hi alice').sent
    const reply = bobChat.messages.find((m) => m.seq === r.seq)
    assert.equal(reply?.replyTo, s1)
  })

  it('catches up after a reconnect: each message new once, counted once; markReadSoon sends one read', async () => {
    const uma = await client('uma')
    const vic = await client('vic', { minMs: 1500 })
    const chatId = (await uma.direct('vic')).id
    const v = vic.chat(chatId)
    await Promise.all([uma.chat(chatId).open(), v.open()])
    const fresh: number[] = []
    v.on('message.new', (m) => fresh.push(m.seq))
    const down = vic.next('state', (s) => s === 'reconnecting')
    cut(vic)
    await down
    const seqs: number[] = []
    for (const text of ['while', 'you', 'were', 'away'])
      seqs.push((await uma.chat(chatId).send(text).sent).seq)
    await until(v, () => v.unread === 4, 'four unread')
    // Both the session's queue and the sync bring them: still once each.
    await vic.sync(chatId)
    assert.deepEqual(fresh, seqs)
    assert.equal(v.unread, 4)
    assert.equal((await vic.getChat(chatId)).unread, 4)
    assert.equal(v.unread, 4)

    const reads: string[] = []
    vic.mqtt.on('packetsend', (p) => {
      if (p.cmd === 'publish' && p.topic === 'req/read') reads.push(p.topic)
    })
    const zero = v.next('unread.updated', (u) => u.unread === 0)
    for (const seq of seqs) v.markReadSoon(seq, 100)
    await zero
    assert.equal(reads.length, 1)
    assert.equal(v.readSeq, seqs.at(-1))
  })

  it('keeps the chat list in activity order, and says when it changed', async () => {
    const dan = await client('dan')
    await client('erin')
    await dan.loadChats()
    const older = (await dan.createGroup('older', ['erin'])).id
    const newer = (await dan.direct('erin')).id
    await dan.chat(newer).send('latest').sent
    assert.deepEqual(
      dan.chats().map((c) => c.id),
      [newer, older],
    )
    const reordered = dan.next('chats.updated', (list) => list[0]?.id === older)
    await dan.chat(older).send('now this one').sent
    const list = await reordered
    assert.deepEqual(
      list.map((c) => c.id),
      [older, newer],
    )
    assert.equal(list[0]?.lastMessage?.text, 'now this one')
  })

  it('follows members added, removed and leaving, and drops a chat the user is removed from', async () => {
    const fay = await client('fay')
    const gus = await client('gus')
    const hal = await client('hal')
    await Promise.all([fay.loadChats(), gus.loadChats(), hal.loadChats()])
    const gusAdded = gus.next('chat.added')
    const group = await fay.createGroup('team', ['gus'])
    const f = fay.chat(group.id)
    await f.open()
    const g = await gusAdded
    assert.equal(g.id, group.id)
    assert.equal(g.name, 'team')
    await g.open()
    const fayMembers: string[][] = []
    f.on('members.updated', (u) => fayMembers.push(u.members.map((m) => m.userId)))
    const gusMembers: string[][] = []
    g.on('members.updated', (u) => gusMembers.push(u.members.map((m) => m.userId)))

    // hal is added: both members see it, hal gets the chat.
    const halAdded = hal.next('chat.added')
    const gusSees = g.next('members.updated', (u) => u.members.some((m) => m.userId === 'hal'))
    assert.deepEqual(await f.addMembers(['hal']), { added: ['hal'] })
    const h = await halAdded
    await gusSees
    assert.equal(h.id, group.id)
    assert.deepEqual(h.members.map((m) => m.userId).sort(), ['fay', 'gus', 'hal'])
    assert.equal(h.unread, 0, 'a newcomer starts at the join')

    // hal is removed: hal's client forgets the chat.
    const halRemoved = hal.next('chat.removed')
    const gusSeesRemoval = g.next('members.updated', (u) => !u.members.some((m) => m.userId === 'hal'))
    await f.removeMember('hal')
    assert.deepEqual(await halRemoved, { chatId: group.id, reason: 'removed' })
    await gusSeesRemoval
    assert.equal(h.removed, true)
    assert.ok(!hal.chats().some((c) => c.id === group.id))
    assert.deepEqual(hal.messages(group.id), [])
    // The removed state keeps what hal saw (a UI shows it read-only), and is the one chat(id)
    // gives back; its snapshot too.
    assert.ok(
      h.messages.some((m) => m.kind === 'event'),
      'the removed state keeps its timeline',
    )
    assert.equal(hal.chat(group.id), h)
    assert.deepEqual(h.getSnapshot().messages, h.messages)

    // gus leaves.
    const fayAfterLeave = f.next('members.updated', (u) => u.members.length === 1)
    const gusGone = gus.next('chat.removed')
    await g.leave()
    assert.deepEqual(await gusGone, { chatId: group.id, reason: 'left' })
    await fayAfterLeave
    assert.deepEqual(f.members, [{ userId: 'fay', role: 'admin' }])
    assert.deepEqual(fayMembers, [['fay', 'gus', 'hal'], ['fay', 'gus'], ['fay']])
    assert.deepEqual(gusMembers, [
      ['fay', 'gus', 'hal'],
      ['fay', 'gus'],
    ])
  })

  it('finds a chat added while the device was offline, once', async () => {
    const ida = await client('ida')
    const jon = await client('jon', { minMs: 1500 })
    await jon.loadChats()
    const added: string[] = []
    jon.on('chat.added', (c) => added.push(c.id))
    const down = jon.next('state', (s) => s === 'reconnecting')
    cut(jon)
    await down
    const group = await ida.createGroup('while away', ['jon'])
    const found = await (added.length ? Promise.resolve(jon.chat(group.id)) : jon.next('chat.added'))
    assert.equal(found.id, group.id)
    assert.equal(found.name, 'while away')
    await jon.loadChats()
    assert.deepEqual(added, [group.id])
  })

  it('mutes and unmutes a chat', async () => {
    const kim = await client('kim')
    const chat = kim.chat((await kim.direct('lou')).id)
    assert.equal(chat.muted, false, 'as chat.direct answered it')
    const events: boolean[] = []
    chat.on('muted.updated', (m) => events.push(m.muted))
    await chat.mute()
    assert.equal(chat.muted, true)
    await chat.unmute()
    assert.equal(chat.muted, false)
    assert.deepEqual(events, [true, false])
    // The server holds it: push.mute answers with what it stored.
    assert.deepEqual(await kim.setMuted(chat.id, true), { chatId: chat.id, muted: true })
    // Kim's other device learns it with the chat (chat.list says muted).
    const tablet = await client('kim', { deviceId: 'tablet' })
    await tablet.loadChats()
    assert.equal(tablet.chat(chat.id).muted, true)
  })

  it('keeps a refused message failed with its text; retry sends it, cancel removes it', async () => {
    const max = await client('max')
    const ned = await client('ned')
    const chat = max.chat((await max.direct('ned')).id)
    const n = ned.chat(chat.id)
    await Promise.all([chat.open(), n.open()])
    const long = 'x'.repeat(5000)
    const refused = chat.send(long)
    await assert.rejects(refused.sent, (e: NatterRequestError) => e.code === 'too_large')
    assert.equal(max.statusOf(refused.localId), 'failed')
    assert.deepEqual(
      chat.pending.map((i) => [i.localId, i.text, i.failed?.code]),
      [[refused.localId, long, 'too_large']],
    )
    // A failed message holds no one up.
    await chat.send('after it').sent

    // retry with a text that fits: same clientMsgId, stored once.
    const statuses: string[] = []
    chat.on('status', (s) => s.localId === refused.localId && statuses.push(s.status))
    const again = chat.retry(refused.localId, { text: 'shorter now' })
    assert.equal(again.localId, refused.localId)
    const { seq } = await again.sent
    assert.deepEqual(statuses.slice(0, 2), ['sending', 'sent'])
    assert.deepEqual(chat.pending, [])
    const stored = (await t.node.stores.messages.after(chat.id, 0, 100)).filter((m) => m.kind === 'text')
    assert.deepEqual(
      stored.map((m) => [m.text, m.clientMsgId]),
      [
        ['after it', stored[0]?.clientMsgId],
        ['shorter now', refused.localId],
      ],
    )
    assert.equal(stored[1]?.seq, seq)

    // cancel: gone from the outbox, its sent rejects, status cancelled.
    const other = chat.send(long)
    await assert.rejects(other.sent)
    const cancelled = chat.next('status', (s) => s.localId === other.localId && s.status === 'cancelled')
    await chat.cancel(other.localId)
    await cancelled
    assert.equal(max.statusOf(other.localId), undefined)
    assert.deepEqual(chat.pending, [])
    assert.throws(
      () => chat.retry(other.localId),
      (e: NatterRequestError) => e.code === 'not_found',
    )

    // An edit the server refuses rejects, and stays in pendingChanges as failed with its text
    // and target (as a refused send does), holding nothing up; cancel removes it.
    const nedsOwn = chat.next('message.new', (m) => m.text === 'ned’s own')
    n.send('ned’s own')
    const nedSeq = (await nedsOwn).seq
    const editFailed = chat.next('status', (s) => s.op === 'edit' && s.status === 'failed')
    await assert.rejects(
      chat.edit(nedSeq, 'not mine to edit'),
      (e: NatterRequestError) => e.code === 'not_allowed',
    )
    const failedEdit = await editFailed
    assert.equal(failedEdit.error?.code, 'not_allowed')
    assert.deepEqual(
      chat.pendingChanges.map((i) => [i.localId, i.op, i.seq, i.text, i.failed?.code]),
      [[failedEdit.localId, 'edit', nedSeq, 'not mine to edit', 'not_allowed']],
    )
    assert.equal(max.statusOf(failedEdit.localId), 'failed')
    await chat.send('still flowing').sent
    await chat.cancel(failedEdit.localId)
    assert.deepEqual(chat.pendingChanges, [])
    assert.equal(max.statusOf(failedEdit.localId), undefined)

    // An edit too long for the server: failed, then retried with a text that fits.
    const { seq: mine } = await chat.send('to be edited').sent
    await assert.rejects(chat.edit(mine, long), (e: NatterRequestError) => e.code === 'too_large')
    // (Read through the client: TypeScript took chat.pendingChanges for the [] asserted above.)
    const [tooLong] = max.pendingChanges(chat.id)
    assert.equal(tooLong?.text, long)
    assert.equal(tooLong?.failed?.code, 'too_large')
    const edited = n.next('message.updated', (m) => m.seq === mine)
    const retried = chat.retry(tooLong?.localId as string, { text: 'edited, shorter' })
    assert.deepEqual(await retried.sent, { seq: mine })
    assert.equal((await edited).text, 'edited, shorter')
    assert.deepEqual(chat.pendingChanges, [])
  })

  it('deletes a message deleted already (on another device): the queued delete is done', async () => {
    const sam = await client('sam')
    const tablet = await client('sam', { deviceId: 'tablet' })
    const s = sam.chat((await sam.direct('tia')).id)
    await s.open()
    const { seq } = await s.send('delete me twice').sent
    // The user's other device deletes it first; this one's delete is queued offline.
    const down = sam.next('state', (st) => st === 'reconnecting')
    cut(sam)
    await down
    const queued = s.delete(seq)
    await tablet.deleteMessage(s.id, seq)
    const tombstone = await queued
    assert.equal(tombstone?.seq, seq)
    assert.equal(tombstone?.text, null)
    assert.notEqual(tombstone?.deletedAt, null)
    assert.deepEqual(s.pendingChanges, [])
    // Online, the same: a delete of a tombstone resolves with it.
    assert.equal((await s.delete(seq))?.seq, seq)
    assert.equal(s.messages.find((m) => m.seq === seq)?.deletedAt !== null, true)
    // A message that does not exist is still not_found (and kept failed, to cancel).
    await assert.rejects(s.delete(seq + 100), (e: NatterRequestError) => e.code === 'not_found')
    await s.cancel(sam.pendingChanges(s.id)[0]?.localId as string)
  })

  it('queues edits and deletes made offline; each runs after what came before it for its message', async () => {
    // Reconnects wait 0.75–1.5 s: time to queue everything while offline.
    const ola = await client('ola', { minMs: 1500 })
    const pia = await client('pia')
    const o = ola.chat((await ola.direct('pia')).id)
    const p = pia.chat(o.id)
    await Promise.all([o.open(), p.open()])
    const seqs: number[] = []
    for (const text of ['one', 'two', 'three']) seqs.push((await o.send(text).sent).seq)
    await until(p, () => p.messages.some((m) => m.seq === seqs[2]), 'pia has three')
    const seen: string[] = []
    for (const e of ['message.new', 'message.updated', 'message.deleted'] as const) {
      p.on(e, (m) => m.kind === 'text' && seen.push(`${e} ${m.text}`))
    }

    // What goes out and what comes back, once connected again: the sends are not held back
    // until the edit and delete before them are answered.
    const wire: string[] = []
    ola.mqtt.on('packetsend', (pk) => {
      if (pk.cmd === 'publish' && pk.topic.endsWith('/send'))
        wire.push(`send ${JSON.parse(String(pk.payload)).text}`)
      if (pk.cmd === 'publish' && (pk.topic === 'req/edit' || pk.topic === 'req/delete')) wire.push(pk.topic)
    })
    ola.mqtt.on('packetreceive', (pk) => {
      if (pk.cmd === 'publish' && pk.topic === `d/${ola.clientId}/res`) wire.push('reply')
    })
    const down = ola.next('state', (s) => s === 'reconnecting')
    cut(ola)
    await down
    const sendBefore = o.send('four')
    const editOne = o.edit(seqs[0] as number, 'one (edited offline)')
    const deleteTwo = o.delete(seqs[1] as number)
    const late = o.send('five')
    // A message not sent yet is changed where it waits: stored once, with the new text.
    assert.equal(await o.edit(late.localId, 'five (edited before it left)'), null)
    const gone = o.send('never')
    assert.equal(await o.delete(gone.localId), null)
    await assert.rejects(gone.sent, (e: NatterRequestError) => e.code === 'cancelled')
    assert.deepEqual(
      o.pending.map((i) => i.text),
      ['four', 'five (edited before it left)'],
    )
    assert.deepEqual(
      o.pendingChanges.map((i) => [i.op, i.seq, i.text ?? null]),
      [
        ['edit', seqs[0], 'one (edited offline)'],
        ['delete', seqs[1], null],
      ],
    )
    const [edited, tombstone] = await Promise.all([editOne, deleteTwo, sendBefore.sent, late.sent])
    assert.equal(edited?.text, 'one (edited offline)')
    assert.equal(tombstone?.deletedAt !== null, true)
    await until(p, () => p.messages.some((m) => m.text === 'five (edited before it left)'), 'pia has five')
    // Sends keep their order, and go without waiting for the changes of other messages.
    assert.deepEqual([...seen].sort(), [
      'message.deleted null',
      'message.new five (edited before it left)',
      'message.new four',
      'message.updated one (edited offline)',
    ])
    assert.ok(seen.indexOf('message.new four') < seen.indexOf('message.new five (edited before it left)'))
    const five = wire.indexOf('send five (edited before it left)')
    assert.ok(five >= 0 && five < wire.indexOf('reply'), wire.join(', '))
    // The edit and the delete, one at a time: the delete went once the edit was answered.
    assert.ok(wire.indexOf('req/delete') > wire.indexOf('reply'), wire.join(', '))
    assert.deepEqual(texts(p.messages), [
      'one (edited offline)',
      null,
      'three',
      'four',
      'five (edited before it left)',
    ])
    assert.deepEqual(o.pending, [])
    assert.deepEqual(o.pendingChanges, [])
  })

  it('keeps offline edits and deletes across an app restart, in the outbox storage', async () => {
    const storage = new MemoryOutboxStorage()
    const quin = await client('quin', { outbox: storage, minMs: 1500 })
    const ray = await client('ray')
    const chatId = (await quin.direct('ray')).id
    const r = ray.chat(chatId)
    await r.open()
    const s1 = (await quin.chat(chatId).send('to edit').sent).seq
    const s2 = (await quin.chat(chatId).send('to delete').sent).seq
    await until(r, () => r.messages.some((m) => m.seq === s2), 'ray has both')

    const down = quin.next('state', (s) => s === 'reconnecting')
    cut(quin)
    await down
    const q = quin.chat(chatId)
    // This run of the app is gone before the server answers: close tells them (disconnected).
    const edited = q.edit(s1, 'edited, then the app quit').catch((e: NatterRequestError) => e.code)
    const deleted = q.delete(s2).catch((e: NatterRequestError) => e.code)
    const draft = q.send('a draft')
    await draft.queued
    // The app quits before the connection comes back: the edit and delete wait in the storage.
    await quin.close()
    assert.deepEqual(await Promise.all([edited, deleted]), ['disconnected', 'disconnected'])
    const saved = await storage.load()
    assert.deepEqual(
      saved.map((i: OutboxItem) => [i.op ?? 'send', i.seq ?? null, i.text ?? null]),
      [
        ['edit', s1, 'edited, then the app quit'],
        ['delete', s2, null],
        ['send', null, 'a draft'],
      ],
    )

    const seen: string[] = []
    for (const e of ['message.new', 'message.updated', 'message.deleted'] as const) {
      r.on(e, (m) => m.kind === 'text' && seen.push(`${e} ${m.seq} ${m.text}`))
    }
    const restarted = await client('quin', { outbox: storage })
    // The draft was sent by the restarted app before this edit: it may be stored already, so
    // the edit waits for it and names it by seq.
    const editDraft = restarted.edit(chatId, draft.localId, 'a draft, edited after the restart')
    await r.next('message.updated', (m) => m.text === 'a draft, edited after the restart')
    assert.equal((await editDraft)?.text, 'a draft, edited after the restart')
    const draftSeq = r.messages.find((m) => m.clientMsgId === draft.localId)?.seq
    assert.deepEqual(
      [...seen].sort(),
      [
        `message.deleted ${s2} null`,
        `message.new ${draftSeq} a draft`,
        `message.updated ${draftSeq} a draft, edited after the restart`,
        `message.updated ${s1} edited, then the app quit`,
      ].sort(),
    )
    // The draft's edit waited for the draft.
    assert.ok(
      seen.indexOf(`message.new ${draftSeq} a draft`) <
        seen.indexOf(`message.updated ${draftSeq} a draft, edited after the restart`),
    )
    assert.deepEqual(restarted.pending(chatId), [])
    assert.deepEqual(await storage.load(), [])
  })

  it('edits and deletes by local id only in the chat the id belongs to', async () => {
    const alice = await client('alice', { deviceId: 'tablet' })
    const one = await alice.createGroup('one', ['bob'])
    const two = await alice.createGroup('two', ['bob'])
    // The same seq in both chats: a local id from chat two must never touch chat one's message.
    const inOne = alice.send(one.id, { text: 'first in one' })
    const inTwo = alice.send(two.id, { text: 'first in two' })
    const [seqOne, seqTwo] = [(await inOne.sent).seq, (await inTwo.sent).seq]
    assert.equal(seqOne, seqTwo)
    await assert.rejects(
      alice.chat(one.id).edit(inTwo.localId, 'edited through the wrong chat'),
      (err: NatterRequestError) => err.code === 'not_found' && /is not in chat/.test(err.message),
    )
    await assert.rejects(
      alice.chat(one.id).delete(inTwo.localId),
      (err: NatterRequestError) => err.code === 'not_found',
    )
    const history = await alice.request<{ messages: ChatMessage[] }>('history', { chatId: one.id })
    assert.deepEqual(texts(history.messages), ['first in one'])
    // Its own chat takes it.
    const edited = await alice.chat(two.id).edit(inTwo.localId, 'edited in two')
    assert.equal(edited?.text, 'edited in two')
  })

  it('keeps a chat the user was removed from, or never in, out of chats(), and refuses sends to it', async () => {
    const alice = await client('alice', { deviceId: 'laptop2' })
    // A device of its own: gus/phone is still connected from an earlier case.
    const gus = await client('gus', { deviceId: 'laptop' })
    await gus.loadChats()
    const added = gus.next('chat.added')
    const group = await alice.createGroup('brief', ['gus'])
    await added
    const removed = gus.next('chat.removed')
    await alice.request('chat.remove', { chatId: group.id, userId: 'gus' })
    await removed
    // A UI asking again for the chat it had selected.
    const again = gus.chat(group.id)
    assert.equal(again.removed, true)
    assert.throws(
      () => again.send('hello?'),
      (err: NatterRequestError) => err.code === 'not_found',
    )
    await assert.rejects(again.edit(1, 'x'), (err: NatterRequestError) => err.code === 'not_found')
    // A chat id the user was never in.
    const foreign = await alice.createGroup('not gus', ['bob'])
    gus.chat(foreign.id)
    assert.deepEqual(
      gus.chats().map((c) => c.id),
      [],
    )
    await gus.loadChats()
    assert.deepEqual(
      gus.chats().map((c) => c.id),
      [],
    )
    assert.deepEqual(gus.pending(group.id), [])
  })

  it('follows a read made on the user’s other device: unread and readSeq on both', async () => {
    const alice = await client('alice', { deviceId: 'phone3' })
    const phone = await client('hana', { deviceId: 'phone' })
    const laptop = await client('hana', { deviceId: 'laptop' })
    const chat = await alice.direct('hana')
    for (const text of ['one', 'two', 'three']) await alice.send(chat.id, { text }).sent
    await Promise.all([phone.chat(chat.id).open(), laptop.chat(chat.id).open()])
    await Promise.all([phone.chat(chat.id).refresh(), laptop.chat(chat.id).refresh()])
    assert.equal(phone.chat(chat.id).unread, 3)
    assert.equal(laptop.chat(chat.id).unread, 3)
    const laptopRead = laptop.next('unread.updated', (u) => u.chatId === chat.id && u.unread === 0)
    await phone.chat(chat.id).markRead()
    const seen = await laptopRead
    assert.equal(seen.readSeq, phone.chat(chat.id).readSeq)
    assert.equal(laptop.chat(chat.id).unread, 0)
  })

  it('lets a UI that rendered before it subscribed see what changed in between (subscribe, getSnapshot)', async () => {
    const wes = await client('wes')
    const xia = await client('xia')
    await wes.loadChats()
    // The chat list: a stable snapshot until something changes.
    const listRendered = wes.getChatsSnapshot()
    assert.equal(wes.getChatsSnapshot(), listRendered)
    assert.deepEqual(listRendered, [])
    const added = wes.next('chat.added')
    const chatId = (await xia.direct('wes')).id
    await added
    // The effect subscribes after the chat came: the snapshot it compares with differs.
    const listCalls: number[] = []
    const offList = wes.subscribeChats(() => listCalls.push(wes.chatsVersion))
    assert.notEqual(wes.getChatsSnapshot(), listRendered)
    assert.deepEqual(
      wes.getChatsSnapshot().map((c) => c.id),
      [chatId],
    )

    const w = wes.chat(chatId)
    await w.open()
    const rendered = w.getSnapshot()
    assert.equal(w.getSnapshot(), rendered, 'the same object until something changes')
    assert.ok(Object.isFrozen(rendered) && Object.isFrozen(rendered.messages))
    // A message arrives between the render and the effect that subscribes.
    const arrived = w.next('message.new', (m) => m.kind === 'text')
    await xia.chat(chatId).send('between render and effect').sent
    await arrived
    const calls: number[] = []
    const off = w.subscribe(() => calls.push(w.version))
    const now = w.getSnapshot()
    assert.notEqual(now, rendered)
    assert.ok(now.version > rendered.version)
    assert.deepEqual(texts(now.messages), ['between render and effect'])
    assert.deepEqual(texts(rendered.messages), [], 'an old snapshot does not change under a render')
    assert.equal(now.unread, 1)

    // Every change calls the listener, and the snapshot shows it at once: a message waiting in
    // the outbox, its confirmation, a read.
    const sending = w.send('from wes')
    assert.ok(calls.length > 0)
    assert.deepEqual(
      w.getSnapshot().pending.map((i) => i.text),
      ['from wes'],
    )
    await sending.sent
    assert.deepEqual(w.getSnapshot().pending, [])
    assert.ok(texts(w.getSnapshot().messages).includes('from wes'))
    const beforeRead = w.getSnapshot()
    await w.markRead()
    assert.notEqual(w.getSnapshot(), beforeRead)
    assert.equal(w.getSnapshot().unread, 0)
    assert.deepEqual(
      calls,
      [...calls].sort((a, b) => a - b),
      'each call sees a newer version',
    )
    assert.ok(listCalls.length > 0, 'the list changed with its last message')
    assert.equal(wes.getChatsSnapshot()[0]?.lastMessage?.text, 'from wes')

    // Unsubscribed: no more calls.
    off()
    offList()
    const [seen, seenList] = [calls.length, listCalls.length]
    await xia.chat(chatId).send('after the unmount').sent
    await until(w, () => texts(w.messages).includes('after the unmount'), 'the last message')
    assert.equal(calls.length, seen)
    assert.equal(listCalls.length, seenList)
  })

  it('fires chat.added before the messages of the new chat, live and after a reconnect', async () => {
    const yan = await client('yan')
    const zoe = await client('zoe', { minMs: 1500 })
    await zoe.loadChats()
    const seen = record(zoe)
    const got = (chatId: string, text: string) =>
      seen.some(
        (e) =>
          e.name === 'message.new' &&
          (e.value as ChatMessage).chatId === chatId &&
          (e.value as ChatMessage).text === text,
      )
    const arrival = (chatId: string, text: string) =>
      got(chatId, text)
        ? Promise.resolve()
        : zoe.next('message.new', (m) => m.chatId === chatId && m.text === text).then(() => {})

    // Live: the group is created and written to at once.
    const live = await yan.createGroup('live', ['zoe'])
    await yan.send(live.id, { text: 'right away' }).sent
    await arrival(live.id, 'right away')

    // Offline: the group and its messages come with the session's queue and the list's reload.
    const down = zoe.next('state', (s) => s === 'reconnecting')
    cut(zoe)
    await down
    const away = await yan.createGroup('while away', ['zoe'])
    for (const text of ['one', 'two']) await yan.send(away.id, { text }).sent
    await arrival(away.id, 'two')

    for (const chatId of [live.id, away.id]) {
      const names = seen
        .filter((e) =>
          e.name === 'chat.added'
            ? (e.value as ChatState).id === chatId
            : e.name === 'message.new' && (e.value as ChatMessage).chatId === chatId,
        )
        .map((e) => (e.name === 'chat.added' ? 'chat.added' : `new ${(e.value as ChatMessage).kind}`))
      assert.equal(names[0], 'chat.added', `${chatId}: ${names.join(', ')}`)
      assert.equal(names.filter((n) => n === 'chat.added').length, 1)
      assert.equal(names.filter((n) => n === 'new text').length, chatId === live.id ? 1 : 2)
    }
    assert.deepEqual(texts(zoe.chat(away.id).messages), ['one', 'two'])
  })

  it('tells what waited when the client is closed, and refuses what comes after', async () => {
    const alice = await client('alice', { deviceId: 'closing', minMs: 60_000 })
    const chat = await alice.direct('bob')
    const stored = await alice.send(chat.id, { text: 'stored' }).sent
    const down = alice.next('state', (s) => s === 'reconnecting')
    ;(alice.mqtt.stream as unknown as { destroy(): void }).destroy()
    await down
    const offline = alice.send(chat.id, { text: 'written offline' })
    await offline.queued
    const edit = alice.chat(chat.id).edit(stored.seq, 'edited offline')
    await alice.close()
    const closed = (err: NatterRequestError) => err.code === 'disconnected'
    await assert.rejects(offline.sent, closed)
    await assert.rejects(edit, closed)
    await assert.rejects(alice.send(chat.id, { text: 'after' }).sent, closed)
    await assert.rejects(alice.chat(chat.id).delete(stored.seq), closed)
  })
})
