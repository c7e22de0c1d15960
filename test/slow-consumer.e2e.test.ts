import assert from 'node:assert/strict'
import { createConnection } from 'node:net'
import { after, before, describe, it } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

describe('a subscriber that stops reading', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode({ NATTER_DRAIN_TIMEOUT_MS: '4000', NATTER_MAX_TEXT_CHARS: '60000' })
  })
  after(() => t.close())

  it('does not slow delivery to the others, and is cut at the drain timeout', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    const carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
    const group = (
      await alice.request<{ id: string }>('chat.create', { name: 'Big', members: ['carol', 'erin'] })
    ).id

    // Erin subscribes over a raw socket and then never reads again.
    const socket = createConnection({ host: '127.0.0.1', port: t.node.ports.mqtt })
    const token = Buffer.from(await t.token('erin'))
    socket.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepalive: 0,
        clientId: 'erin/stuck',
        username: 'erin',
        password: token,
      }),
    )
    socket.write(
      mqttPacket.generate({
        cmd: 'subscribe',
        messageId: 1,
        subscriptions: [{ topic: 'u/erin/inbox', qos: 1 }],
      }),
    )
    const parser = mqttPacket.parser()
    const subscribed = new Promise<void>((resolve) =>
      parser.on('packet', (p) => p.cmd === 'suback' && resolve()),
    )
    socket.on('data', (d) => parser.parse(d))
    await subscribed
    socket.pause()
    // Erin's own socket, paused, would not see the close; the broker's event says when she is cut.
    let cutAt = 0
    const cut = new Promise<void>((resolve) =>
      t.node.broker.on('clientDisconnect', (client) => {
        if (client.id !== 'erin/stuck') return
        cutAt = Date.now()
        resolve()
      }),
    )
    try {
      // About 28 MB in 1,500 messages, more than the kernel buffers of a loopback socket hold: deliveries to erin
      // block long before the end. Were the others waiting on her, carol would get nothing more
      // until erin is cut.
      const text = 'z'.repeat(19_000)
      const ids = await Promise.all(Array.from({ length: 1500 }, (_, i) => alice.send(group, `${text} ${i}`)))
      await carol.until(
        () => ids.every((id) => carol.messages(group).some((m) => m.clientMsgId === id)),
        'carol got all',
      )
      const carolDoneAt = Date.now()
      await cut
      assert.ok(carolDoneAt < cutAt, 'carol had every message before erin was cut')
    } finally {
      socket.destroy()
      await Promise.all([alice.close(), carol.close()])
    }
  })
})
