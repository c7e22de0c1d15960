import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { stalledSubscriber } from './helpers/stalled-subscriber.ts'

/** Resolves when the broker drops the client (its own paused socket would not notice). */
function cutOf(t: TestNode, clientId: string): Promise<void> {
  return new Promise((resolve) =>
    t.node.broker.on('clientDisconnect', (client) => {
      if (client.id === clientId) resolve()
    }),
  )
}

async function burst(alice: Device, chatId: string, count: number, size: number): Promise<string[]> {
  const text = 'z'.repeat(size)
  return Promise.all(Array.from({ length: count }, (_, i) => alice.send(chatId, `${text} ${i}`)))
}

describe('a subscriber that stops reading', () => {
  it('does not stall delivery to the others, and is cut when its buffer passes the limit', async () => {
    // No drain timeout: were deliveries waiting on the stalled socket, nothing would end the wait.
    const t = await startTestNode({
      NATTER_DRAIN_TIMEOUT_MS: '0',
      NATTER_MAX_CLIENT_BUFFER_BYTES: '8388608',
      NATTER_MAX_TEXT_CHARS: '20000',
      // The in-flight window alone bounds what a stalled inbox holds (delivery.e2e.test.ts); it is
      // opened here so that the connection's own limits are what cut the client.
      NATTER_MAX_INFLIGHT: '65535',
    })
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    const carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
    try {
      const group = (
        await alice.request<{ id: string }>('chat.create', { name: 'Big', members: ['carol', 'erin'] })
      ).id
      const erin = await stalledSubscriber(t, 'erin')
      const cut = cutOf(t, 'erin/stuck')
      // About 28 MB in 1,500 messages: far more than a loopback socket's kernel buffers hold.
      const ids = await burst(alice, group, 1500, 19_000)
      await carol.until(
        () => ids.every((id) => carol.messages(group).some((m) => m.clientMsgId === id)),
        'carol got all',
      )
      await cut
      erin.destroy()
      assert.equal(carol.client.connected, true, 'the reader that keeps up is never cut')
      assert.equal(new Set(carol.seqs(group)).size, 1501)
    } finally {
      await Promise.all([alice.close(), carol.close()])
      await t.close()
    }
  })

  it('is cut when its socket does not drain within the drain timeout', async () => {
    const t = await startTestNode({
      NATTER_DRAIN_TIMEOUT_MS: '1000',
      NATTER_MAX_TEXT_CHARS: '20000',
      NATTER_MAX_INFLIGHT: '65535',
    })
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    try {
      const group = (await alice.request<{ id: string }>('chat.create', { name: 'Small', members: ['erin'] }))
        .id
      const erin = await stalledSubscriber(t, 'erin')
      const cut = cutOf(t, 'erin/stuck')
      // About 10 MB: enough to fill the socket, well under the 64 MiB buffer limit.
      const ids = await burst(alice, group, 500, 19_000)
      await cut
      erin.destroy()
      assert.equal(ids.length, 500, 'every send was acknowledged while erin was stuck')
      assert.equal(alice.client.connected, true)
    } finally {
      await alice.close()
      await t.close()
    }
  })
})
