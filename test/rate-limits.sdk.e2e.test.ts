import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient, type NatterClient } from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { LOAD_LIMITS } from './helpers/processes.ts'

describe('the client SDK under a send limit', () => {
  let t: TestNode
  let alice: NatterClient | undefined
  before(async () => {
    t = await startTestNode({
      ...LOAD_LIMITS,
      NATTER_LIMIT_SENDS_PER_DEVICE: '3/2s',
      NATTER_LIMIT_HOLD_MS: '300',
    })
  })
  after(async () => {
    await alice?.close()
    await t.close()
  })

  it('waits out retry-after and sends the refused messages again, same clientMsgId, in order', async () => {
    alice = await createClient({
      url: t.mqttUrl,
      userId: 'alice',
      deviceId: 'phone',
      getToken: () => t.token('alice'),
    })
    const c = alice
    const chat = (await c.direct('bob')).id
    // What the server told the device, seen on the wire (the SDK handles it).
    const notices: Array<{ code: string; ref?: string; retryAfterMs?: number }> = []
    c.mqtt.on('message', (topic, payload) => {
      if (topic === 'd/alice/phone/err') notices.push(JSON.parse(payload.toString('utf8')))
    })
    const failed: string[] = []
    c.on('status', (s) => {
      if (s.status === 'failed') failed.push(s.localId)
    })
    const started = performance.now()
    const sending = Array.from({ length: 8 }, (_, i) => c.send(chat, { text: `line ${i}` }))
    const seqs = await Promise.all(sending.map((s) => s.sent.then((r) => r.seq)))
    const took = performance.now() - started

    assert.deepEqual(failed, [])
    const refusals = notices.filter((n) => n.code === 'rate_limited')
    assert.ok(refusals.length >= 5, `${refusals.length} refusals`)
    for (const n of refusals) assert.ok((n.retryAfterMs ?? 0) > 0 && (n.retryAfterMs ?? 0) <= 2000)
    // Three per 2 s window: the last ones went in the third window.
    assert.ok(took >= 3500, `all stored after ${took.toFixed(0)} ms`)
    // Stored once each, in the order sent, under the ids the SDK gave them.
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    )
    const stored = (await t.node.stores.messages.after(chat, 0, 100)).filter((m) => m.kind === 'text')
    assert.deepEqual(
      stored.map((m) => m.clientMsgId),
      sending.map((s) => s.localId),
    )
    assert.deepEqual(c.pending(chat), [])
  })

  it('a message sent while the outbox waits goes after the refused ones', async () => {
    const c = alice as NatterClient
    const chat = (await c.direct('carol')).id
    const refused = new Promise<void>((resolve) => {
      c.mqtt.on('message', (topic, payload) => {
        if (topic === 'd/alice/phone/err' && JSON.parse(payload.toString('utf8')).code === 'rate_limited')
          resolve()
      })
    })
    const first = Array.from({ length: 5 }, (_, i) => c.send(chat, { text: `first ${i}` }))
    await refused
    const late = c.send(chat, { text: 'written while waiting' })
    await Promise.all([...first, late].map((s) => s.sent))
    const stored = (await t.node.stores.messages.after(chat, 0, 100)).filter((m) => m.kind === 'text')
    assert.deepEqual(
      stored.map((m) => m.clientMsgId),
      [...first, late].map((s) => s.localId),
    )
  })
})
