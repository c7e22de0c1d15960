import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createConnection } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { WebSocket } from 'ws'
import { closed, connectClient, nextMessage, subscribe } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

describe('transports and bad input', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode({ NATTER_MAX_PACKET_BYTES: '4096' })
  })
  after(() => t.close())

  it('serves /healthz and /readyz', async () => {
    const health = await fetch(`${t.httpUrl}/healthz`)
    assert.equal(health.status, 200)
    assert.deepEqual(await health.json(), { status: 'ok' })
    const ready = await fetch(`${t.httpUrl}/readyz`)
    assert.equal(ready.status, 200)
    const missing = await fetch(`${t.httpUrl}/nope`)
    assert.equal(missing.status, 404)
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found')
  })

  it('closes a client that sends an oversize packet, over TCP and WebSocket, and no one else', async () => {
    const bob = await connectClient(t.mqttUrl, { clientId: 'bob/phone', password: await t.token('bob') })
    await subscribe(bob, ['u/bob/self'])
    for (const url of [t.mqttUrl, t.wsUrl]) {
      const alice = await connectClient(url, { clientId: 'alice/phone', password: await t.token('alice') })
      const gone = closed(alice)
      alice.publish('u/alice/self', Buffer.alloc(8192, 1), { qos: 0 })
      await gone
      alice.end(true)
    }
    const got = nextMessage(bob, 'u/bob/self')
    await bob.publishAsync('u/bob/self', 'unaffected', { qos: 1 })
    assert.equal((await got).payload.toString(), 'unaffected')
    await bob.endAsync()
  })

  it('closes a socket that sends garbage instead of MQTT', async () => {
    const socket = createConnection({ host: '127.0.0.1', port: t.node.ports.mqtt })
    await once(socket, 'connect')
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02]))
    await once(socket, 'close', { signal: AbortSignal.timeout(10_000) })
  })

  it('takes MQTT over WebSocket at / as well as at /mqtt (clients without a path option ask for /)', async () => {
    const root = `ws://127.0.0.1:${t.node.ports.ws}/`
    const alice = await connectClient(root, { clientId: 'alice/tablet', password: await t.token('alice') })
    await subscribe(alice, ['u/alice/self'])
    const got = nextMessage(alice, 'u/alice/self')
    await alice.publishAsync('u/alice/self', 'over ws at /', { qos: 1 })
    assert.equal((await got).payload.toString(), 'over ws at /')
    await alice.endAsync()
  })

  it('answers 404 to a WebSocket upgrade on another path, naming the right one', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${t.node.ports.ws}/elsewhere`, 'mqtt')
    const [err] = await once(ws, 'error')
    assert.match(String(err), /404/)
  })
})
