import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  type ChatMessage,
  createClient,
  MemoryOutboxStorage,
  type NatterClient,
  type NatterRequestError,
  type OutboxItem,
  type OutboxStorage,
} from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const texts = (c: NatterClient, chatId: string) =>
  c
    .messages(chatId)
    .filter((m) => m.kind === 'text')
    .map((m) => m.text)

/** Resolves when the condition holds, checked on each event the client emits. */
function until(c: NatterClient, condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  if (condition()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const offs = (['message', 'status', 'state'] as const).map((e) =>
      c.on(e, () => {
        if (!condition()) return
        done()
        resolve()
      }),
    )
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${c.userId}: ${what} did not happen within ${ms} ms`))
    }, ms)
    const done = () => {
      clearTimeout(timer)
      for (const off of offs) off()
    }
  })
}

/** Cuts a client's connection as a network drop would: the socket dies, no DISCONNECT. */
function cut(c: NatterClient): void {
  ;(c.mqtt.stream as unknown as { destroy(): void }).destroy()
}

describe('client SDK against a real node', () => {
  let t: TestNode
  const clients: NatterClient[] = []
  const client = async (
    userId: string,
    o: { ttl?: number; tokens?: string[]; outbox?: OutboxStorage } = {},
  ) => {
    const c = await createClient({
      url: t.mqttUrl,
      userId,
      deviceId: 'phone',
      ...(o.outbox ? { outbox: o.outbox } : {}),
      getToken: async () => {
        const token = await t.token(userId, { expiresInSeconds: o.ttl ?? 3600 })
        o.tokens?.push(token)
        return token
      },
      reconnect: { minMs: 50, maxMs: 500 },
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

  it('sends, and sees the message sent, delivered and read', async () => {
    const alice = await client('alice')
    const bob = await client('bob')
    const chat = (await alice.direct('bob')).id
    await Promise.all([alice.open(chat), bob.open(chat)])
    const statuses: string[] = []
    const sending = alice.send(chat, { text: 'hello bob' })
    alice.on('status', (s) => s.localId === sending.localId && statuses.push(s.status))
    const { seq } = await sending.sent
    assert.ok(seq > 0)
    await until(alice, () => alice.statusOf(sending.localId) === 'delivered', 'delivered')
    await until(bob, () => texts(bob, chat).includes('hello bob'), 'bob has it')
    await bob.markRead(chat)
    await until(alice, () => alice.statusOf(sending.localId) === 'read', 'read')
    assert.deepEqual(statuses, ['sent', 'delivered', 'read'])
    const own = alice.messages(chat).find((m) => m.seq === seq) as ChatMessage
    assert.equal(own.text, 'hello bob')
  })

  it('loses and duplicates nothing when the connection is cut mid-burst', async () => {
    const carol = await client('carol')
    const dave = await client('dave')
    const chat = (await carol.direct('dave')).id
    await Promise.all([carol.open(chat), dave.open(chat)])
    const burst = Array.from({ length: 60 }, (_, i) => `burst ${i + 1}`)
    const sends = burst.map((text) => carol.send(chat, { text }))
    let cutDone = false
    dave.on('message', () => {
      if (!cutDone && texts(dave, chat).length >= 15) {
        cutDone = true
        cut(dave)
      }
    })
    await until(dave, () => texts(dave, chat).length >= 60, 'dave has the whole burst', 30_000)
    assert.ok(cutDone, 'the connection was cut during the burst')
    assert.deepEqual(texts(dave, chat), burst, 'every message once, in order')
    const seqs = dave.messages(chat).map((m) => m.seq)
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => (seqs[0] as number) + i),
      'no gap',
    )
    const stored = await Promise.all(sends.map((s) => s.sent))
    assert.equal(new Set(stored.map((s) => s.seq)).size, 60, 'each stored once')
  })

  it('keeps messages sent while the connection is down, and sends them in order, once', async () => {
    const erin = await client('erin')
    const frank = await client('frank')
    const chat = (await erin.direct('frank')).id
    await Promise.all([erin.open(chat), frank.open(chat)])
    const down = erin.next('state', (s) => s === 'reconnecting')
    cut(erin)
    await down
    const back = erin.next('state', (s) => s === 'connected')
    const offline = Array.from({ length: 10 }, (_, i) => `while offline ${i + 1}`)
    const sends = offline.map((text) => erin.send(chat, { text }))
    for (const s of sends) assert.equal(erin.statusOf(s.localId), 'sending')
    await back
    await Promise.all(sends.map((s) => s.sent))
    await until(frank, () => texts(frank, chat).length >= 10, 'frank has them')
    assert.deepEqual(texts(frank, chat), offline)
  })

  it('sends, once and in order, what an earlier run of the app left in its outbox', async () => {
    // Resolves when the outbox is written empty after having held messages: the write follows
    // the in-memory status by a few microtasks.
    let emptied = () => {}
    const empty = new Promise<void>((resolve) => {
      emptied = resolve
    })
    const storage = new (class extends MemoryOutboxStorage {
      #held = false
      override async save(items: OutboxItem[]): Promise<void> {
        await super.save(items)
        if (items.length) this.#held = true
        else if (this.#held) emptied()
      }
    })()
    const kate = await client('kate', { outbox: storage })
    const leo = await client('leo')
    const chat = (await kate.direct('leo')).id
    await leo.open(chat)
    const down = kate.next('state', (s) => s === 'reconnecting')
    cut(kate)
    await down
    const drafts = ['draft 1', 'draft 2', 'draft 3']
    const sends = drafts.map((text) => kate.send(chat, { text }))
    // The app quits before the connection comes back.
    await kate.close()
    assert.equal((await storage.load()).length, 3)
    const again = await client('kate', { outbox: storage })
    await until(leo, () => texts(leo, chat).length >= 3, 'leo gets the drafts')
    assert.deepEqual(texts(leo, chat), drafts)
    await until(
      again,
      () => sends.every((s) => again.statusOf(s.localId) !== 'sending'),
      'the outbox empties',
    )
    await empty
    assert.deepEqual(await storage.load(), [])
  })

  it('refreshes an expiring token without the app seeing an error', async () => {
    const tokens: string[] = []
    const gina = await client('gina', { ttl: 3, tokens })
    const harry = await client('harry')
    const chat = (await gina.direct('harry')).id
    await Promise.all([gina.open(chat), harry.open(chat)])
    const errors: NatterRequestError[] = []
    gina.on('error', (e) => errors.push(e))
    const states: string[] = []
    gina.on('state', (s) => states.push(s))
    // The first token lives 3 s; the client reconnects with a new one before it runs out.
    await until(gina, () => tokens.length >= 3 && gina.state === 'connected', 'two refreshes', 15_000)
    const { seq } = await gina.send(chat, { text: 'still here' }).sent
    assert.ok(seq > 0)
    await until(harry, () => texts(harry, chat).includes('still here'), 'harry gets it')
    assert.deepEqual(errors, [])
    assert.ok(!states.includes('closed'))
  })

  it('follows edits and deletes, pages back through history, and searches', async () => {
    const nina = await client('nina')
    const otto = await client('otto')
    const chat = (await nina.direct('otto')).id
    await Promise.all([nina.open(chat), otto.open(chat)])
    const seqs: number[] = []
    for (const text of ['one', 'two', 'three', 'four', 'five'])
      seqs.push((await nina.send(chat, { text }).sent).seq)
    await nina.edit(chat, seqs[1] as number, 'two (edited)')
    await nina.deleteMessage(chat, seqs[2] as number)
    await until(
      otto,
      () =>
        texts(otto, chat).includes('two (edited)') && otto.messages(chat).some((m) => m.deletedAt !== null),
      'otto sees the edit and the delete',
    )
    assert.deepEqual(texts(otto, chat), ['one', 'two (edited)', null, 'four', 'five'])
    assert.deepEqual(
      (await otto.search(chat, 'edited')).map((m) => m.seq),
      [seqs[1]],
    )
    // A new device of otto's starts from the newest page and pages back.
    const tablet = await createClient({
      url: t.mqttUrl,
      userId: 'otto',
      deviceId: 'tablet',
      getToken: () => t.token('otto'),
    })
    clients.push(tablet)
    await tablet.open(chat, 2)
    assert.deepEqual(texts(tablet, chat), ['four', 'five'])
    while ((await tablet.loadOlder(chat, 2)) > 0) {}
    assert.deepEqual(texts(tablet, chat), ['one', 'two (edited)', null, 'four', 'five'])
  })

  it('reports a refused send as failed, with the server’s code', async () => {
    const ivy = await client('ivy')
    const sending = ivy.send('g_not_a_chat', { text: 'anyone?' })
    await assert.rejects(sending.sent, (err: NatterRequestError) => err.code === 'chat_not_found')
    // Kept as failed, with its text, for retry or cancel (test/sdk-state.e2e.test.ts).
    assert.equal(ivy.statusOf(sending.localId), 'failed')
  })
})
