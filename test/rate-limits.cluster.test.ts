import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { connackCode } from './helpers/clients.ts'
import { type ClusterNode, type ClusterSetup, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

describe('rate limits in a cluster of two nodes on one Redis', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  const { secret, token } = clusterSecret()
  let a: ClusterNode
  let b: ClusterNode
  const devices: Device[] = []
  const device = async (node: ClusterNode, userId: string, deviceId: string) => {
    const d = await Device.connect(node.mqttUrl, userId, deviceId, await token(userId))
    devices.push(d)
    return d
  }

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([startRedis(), startFerretDb(), startVersitygw()])
    const setup: ClusterSetup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    const limits = {
      NATTER_LIMIT_SENDS_PER_USER: '4/30s',
      NATTER_LIMIT_HOLD_MS: '300',
      NATTER_LIMIT_CONNECTS_PER_USER: '5/30s',
      NATTER_LIMIT_HTTP_PER_TOKEN: '4/30s',
    }
    a = await startClusterNode('a', setup, limits)
    b = await startClusterNode('b', setup, limits)
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    for (const n of [a, b]) await n?.stop()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  it('a user connected to both nodes gets the per-user send limit once, not once per node', async () => {
    const phone = await device(a, 'alice', 'phone')
    const laptop = await device(b, 'alice', 'laptop')
    const chat = (await phone.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const send = (d: Device, id: string) =>
      d.client.publishAsync(`c/${chat}/send`, JSON.stringify({ clientMsgId: id, text: id }), { qos: 1 })
    await Promise.all([
      ...['p1', 'p2', 'p3'].map((id) => send(phone, id)),
      ...['l1', 'l2', 'l3'].map((id) => send(laptop, id)),
    ])
    await Device.untilAny(
      [phone, laptop],
      () => phone.errors.length + laptop.errors.length >= 2,
      'two refusals',
    )
    const refused = [...phone.errors, ...laptop.errors]
    assert.deepEqual(
      refused.map((e) => e.code),
      ['rate_limited', 'rate_limited'],
    )
    // Four stored in all: the history both nodes read has exactly the others.
    const history = await phone.request<{ messages: Array<{ clientMsgId: string; kind: string }> }>(
      'history',
      {
        chatId: chat,
      },
    )
    const stored = history.messages.filter((m) => m.kind === 'text').map((m) => m.clientMsgId)
    assert.equal(stored.length, 4, `stored: ${stored}`)
    assert.deepEqual([...stored, ...refused.map((e) => e.ref)].sort(), ['l1', 'l2', 'l3', 'p1', 'p2', 'p3'])
  })

  it('CONNECTs of one user count on both nodes together', async () => {
    // alice has 2 accepted connects (above); the limit is 5.
    const codes: number[] = []
    for (const [i, node] of [a, b, a, b].entries()) {
      codes.push(await connackCode(node.mqttUrl, { clientId: `alice/c${i}`, password: await token('alice') }))
    }
    assert.deepEqual(codes, [0, 0, 0, 3])
  })

  it('an HTTP token is counted on every node together', async () => {
    const t = await token('carol')
    const statuses: number[] = []
    for (const node of [a, b, a, b, a]) {
      const res = await fetch(`${node.httpUrl}/v1/whoami`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t}` },
      })
      statuses.push(res.status)
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 429])
  })

  it('with Redis away, each node counts alone and no send waits for Redis', async () => {
    const onB = await device(b, 'dora', 'phone')
    const onA = await device(a, 'dora', 'laptop')
    const chat = (await onB.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    // Dora's shared count for this window is used up on node B.
    for (let i = 0; i < 4; i++) await onB.send(chat, `on B ${i}`, `b${i}`)
    await redis.down({ hard: true })
    try {
      // With Redis, this would be held and refused; without it node A counts alone.
      const t0 = performance.now()
      await onA.send(chat, 'while Redis is away', 'away')
      const ms = performance.now() - t0
      assert.ok(ms < 250, `acknowledged after ${ms.toFixed(0)} ms, not held`)
      assert.deepEqual(onA.errors, [])
    } finally {
      await redis.up()
    }
  })
})
