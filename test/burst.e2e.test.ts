import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

describe('a burst of chat messages', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode()
  })
  after(() => t.close())

  it('is stored and acknowledged whole, with the recipient offline and the sender reading', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    try {
      const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      // Many deliveries in flight at once, most to nobody (bob is offline): the broker's
      // emitter must not recurse through them.
      const ids = await Promise.all(Array.from({ length: 6000 }, (_, i) => alice.send(chat, `burst ${i}`)))
      assert.equal(new Set(ids).size, 6000)
      assert.equal(await t.node.stores.messages.lastSeq(chat), 6001)
      await alice.until(() => alice.seqs(chat).length >= 6001, 'alice has her own messages back', 30_000)
    } finally {
      await alice.close()
    }
  })
})
