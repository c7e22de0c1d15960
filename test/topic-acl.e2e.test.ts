import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { MqttClient } from 'mqtt'
import { connectClient, nextMessage, recordMessages, subscribe } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const REFUSED = 128

describe('topic rules on a live broker', () => {
  let t: TestNode
  let alice: MqttClient
  let bob: MqttClient
  before(async () => {
    t = await startTestNode()
    alice = await connectClient(t.mqttUrl, { clientId: 'alice/phone', password: await t.token('alice') })
    bob = await connectClient(t.mqttUrl, { clientId: 'bob/phone', password: await t.token('bob') })
    await subscribe(alice, ['d/alice/phone/err', 'u/alice/self'])
    await subscribe(bob, ['u/bob/self'])
  })
  after(async () => {
    await Promise.all([alice.endAsync(), bob.endAsync()])
    await t.close()
  })

  it('grants own topics and refuses foreign ones, wildcards, $SYS and $share with SUBACK 0x80', async () => {
    const filters = [
      'u/alice/inbox',
      'u/bob/inbox',
      '#',
      'u/+/inbox',
      'u/alice/#',
      '$SYS/#',
      '$share/g/u/bob/inbox',
      'd/bob/phone/res',
      'd/alice/phone/res',
    ]
    assert.deepEqual(await subscribe(alice, filters), [
      1,
      REFUSED,
      REFUSED,
      REFUSED,
      REFUSED,
      REFUSED,
      REFUSED,
      REFUSED,
      1,
    ])
    // The refusals disconnected no one: both still exchange messages.
    const got = nextMessage(bob, 'u/bob/self')
    await bob.publishAsync('u/bob/self', 'after refusals', { qos: 1 })
    assert.equal((await got).payload.toString(), 'after refusals')
    assert.equal(alice.connected, true)
  })

  it("acknowledges a publish to someone else's topic, delivers it nowhere, and says why", async () => {
    const bobSeen = recordMessages(bob)
    const notice = nextMessage(alice, 'd/alice/phone/err')
    await alice.publishAsync('u/bob/self', 'sneaky', { qos: 1 })
    const body = JSON.parse((await notice).payload.toString())
    assert.equal(body.code, 'forbidden_topic')
    assert.equal(body.topic, 'u/bob/self')
    // A marker published after the refusal arrives alone: the refused message went nowhere.
    const marker = nextMessage(bob, 'u/bob/self')
    await bob.publishAsync('u/bob/self', 'marker', { qos: 1 })
    await marker
    assert.deepEqual(
      bobSeen.map((m) => m.payload),
      ['marker'],
    )
    assert.equal(alice.connected, true)
  })

  it('refuses a retained publish and keeps nothing retained', async () => {
    const notice = nextMessage(alice, 'd/alice/phone/err')
    await alice.publishAsync('u/alice/self', 'keep me', { qos: 1, retain: true })
    assert.equal(JSON.parse((await notice).payload.toString()).code, 'retain_not_allowed')
    // A new subscriber gets no retained message: its first message is the marker.
    const laptop = await connectClient(t.mqttUrl, {
      clientId: 'alice/laptop',
      password: await t.token('alice'),
    })
    const seen = recordMessages(laptop)
    await subscribe(laptop, ['u/alice/self'])
    const marker = nextMessage(laptop, 'u/alice/self')
    await alice.publishAsync('u/alice/self', 'marker', { qos: 1 })
    await marker
    assert.deepEqual(
      seen.map((m) => [m.payload, m.retain]),
      [['marker', false]],
    )
    await laptop.endAsync()
  })

  it('refuses publishing to $SYS and to server-only topics', async () => {
    for (const topic of ['$SYS/broker/x', 'u/alice/inbox', 'd/alice/phone/res']) {
      const notice = nextMessage(alice, 'd/alice/phone/err')
      await alice.publishAsync(topic, 'x', { qos: 1 })
      assert.equal(JSON.parse((await notice).payload.toString()).code, 'forbidden_topic', topic)
    }
  })
})

describe('persistent sessions and the topic rules', () => {
  it('never delivers on a refused filter, even after the session is restored', async () => {
    const t = await startTestNode()
    try {
      const options = { clientId: 'alice/phone', password: await t.token('alice'), clean: false }
      const first = await connectClient(t.mqttUrl, options)
      // One SUBSCRIBE with an allowed and a refused filter; a persistent session stores its
      // filters, and the refused one must not come back with the session.
      assert.deepEqual(await subscribe(first, ['u/alice/self', 'u/bob/self']), [1, REFUSED])
      await first.endAsync()

      const again = await connectClient(t.mqttUrl, options)
      const seen = recordMessages(again)
      const bob = await connectClient(t.mqttUrl, { clientId: 'bob/phone', password: await t.token('bob') })
      await bob.publishAsync('u/bob/self', 'for bob only', { qos: 1 })
      const laptop = await connectClient(t.mqttUrl, {
        clientId: 'alice/laptop',
        password: await t.token('alice'),
      })
      const marker = nextMessage(again, 'u/alice/self')
      await laptop.publishAsync('u/alice/self', 'marker', { qos: 1 })
      await marker
      assert.deepEqual(
        seen.map((m) => m.payload),
        ['marker'],
      )
      await Promise.all([again.endAsync(), bob.endAsync(), laptop.endAsync()])
    } finally {
      await t.close()
    }
  })
})
