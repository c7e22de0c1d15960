import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type ChatMessage, createClient, type NatterClient } from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/**
 * What app developers met in reviews of the client SDK, each a case here. A device's persistent
 * session holds what was sent while it was away, and the node delivers it as soon as the device
 * subscribes: inside createClient, before the app has the client; the app's listeners, attached
 * right after `await createClient()`, must still see all of it (a page reloaded with the same
 * device id showed only the last message). History pages fire in seq order. A topic refused on a
 * reconnect must not leave the client reconnecting for ever. Many requests in flight share one
 * reply listener.
 */
describe('the client SDK as apps use it: events from the first one, in order, across refusals and many requests', () => {
  let t: TestNode
  const clients: NatterClient[] = []
  const client = async (userId: string, deviceId: string) => {
    const c = await createClient({ url: t.mqttUrl, userId, deviceId, getToken: () => t.token(userId) })
    clients.push(c)
    return c
  }

  before(async () => {
    t = await startTestNode()
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    await t?.close()
  })

  it('fires message for each, in order, once', async () => {
    const alice = await client('alice', 'laptop')
    const chat = await alice.direct('bob')
    const first = await client('bob', 'phone')
    await first.open(chat.id)
    await first.close()

    for (const text of ['one', 'two', 'three']) await alice.send(chat.id, { text }).sent

    const bob = await client('bob', 'phone')
    const seen: ChatMessage[] = []
    const all = new Promise<void>((resolve) =>
      bob.on('message', (m) => {
        if (m.kind === 'text') seen.push(m)
        if (seen.length === 3) resolve()
      }),
    )
    await all
    assert.deepEqual(
      seen.map((m) => m.text),
      ['one', 'two', 'three'],
    )
  })

  it('fires message in seq order for a history page that open() and loadOlder() bring', async () => {
    const alice = await client('alice', 'desk')
    const chat = await alice.createGroup('order', ['carol'])
    for (const text of ['a', 'b', 'c', 'd', 'e']) await alice.send(chat.id, { text }).sent
    const carol = await client('carol', 'new-phone')
    const seqs: number[] = []
    carol.on('message', (m) => {
      if (m.chatId === chat.id) seqs.push(m.seq)
    })
    await carol.open(chat.id, 3)
    await carol.loadOlder(chat.id, 10)
    const top = seqs.indexOf(Math.min(...seqs))
    // The first page in order, then the older page in order.
    assert.deepEqual(
      seqs.slice(0, top),
      [...seqs.slice(0, top)].sort((x, y) => x - y),
    )
    assert.deepEqual(
      seqs.slice(top),
      [...seqs.slice(top)].sort((x, y) => x - y),
    )
    assert.equal(new Set(seqs).size, seqs.length)
    assert.equal(seqs.length, 6)
  })

  it('reconnects when a topic it watched is refused now, and its outbox goes out', async () => {
    const alice = await client('alice', 'desk2')
    const group = await alice.createGroup('left behind', ['erin'])
    const direct = await alice.direct('erin')
    const erin = await client('erin', 'phone')
    await erin.open(group.id) // watches the group's typing topic
    // Erin is removed while away: on her reconnect the typing topic is refused.
    const down = new Promise<void>((resolve) => erin.on('state', (s) => s === 'reconnecting' && resolve()))
    ;(erin.mqtt.stream as unknown as { destroy(): void }).destroy()
    await down
    await alice.request('chat.remove', { chatId: group.id, userId: 'erin' })
    const back = new Promise<void>((resolve) => erin.on('state', (s) => s === 'connected' && resolve()))
    await back
    const { seq } = await erin.send(direct.id, { text: 'still here' }).sent
    assert.ok(seq > 0)
  })

  it('answers many requests in flight at once, each its own reply, with no listener per request', async () => {
    const alice = await client('alice', 'busy')
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(w.name)
    process.on('warning', onWarning)
    try {
      await alice.request('whoami') // the client's one reply listener is in place from the first
      const before = alice.mqtt.listenerCount('message')
      const replies = Promise.all(
        Array.from({ length: 40 }, () => alice.request<{ userId: string; deviceId: string }>('whoami')),
      )
      assert.equal(alice.mqtt.listenerCount('message'), before)
      for (const r of await replies) assert.deepEqual([r.userId, r.deviceId], ['alice', 'busy'])
    } finally {
      process.off('warning', onWarning)
    }
    assert.deepEqual(warnings, [])
  })
})
