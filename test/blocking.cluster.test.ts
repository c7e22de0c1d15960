import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { subscribe } from './helpers/clients.ts'
import { type ClusterNode, type ClusterSetup, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

/** The line node `on` logs once it has read the block of alice on bob again from the store. */
const reloaded = (blocked: boolean) => (line: string) => {
  if (!line.startsWith('{')) return false
  const o = JSON.parse(line) as { event?: string; blockerId?: string; blockedId?: string; blocked?: boolean }
  return (
    o.event === 'block_reloaded' && o.blockerId === 'alice' && o.blockedId === 'bob' && o.blocked === blocked
  )
}

/**
 * A block made on one node holds on another (docs/protocol.md#blocking): each node checks blocks
 * in memory, and the node where the block is made tells the others through Redis.
 */
describe('blocking in a cluster of two nodes', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  let setup: ClusterSetup
  const { secret, token } = clusterSecret()
  let a: ClusterNode
  let b: ClusterNode
  const devices: Device[] = []
  /** Sends over MQTT and resolves with the seq, from the sender's own inbox. */
  const sendSeq = async (d: Device, chatId: string, text: string) => {
    const id = await d.send(chatId, text)
    await d.until(() => d.messages(chatId).some((m) => m.clientMsgId === id), `${id} in own inbox`)
    return d.messages(chatId).find((m) => m.clientMsgId === id)?.seq as number
  }
  const device = async (node: ClusterNode, userId: string) => {
    const d = await Device.connect(node.mqttUrl, userId, 'phone', await token(userId))
    devices.push(d)
    return d
  }

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([startRedis(), startFerretDb(), startVersitygw()])
    setup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    a = await startClusterNode('a', setup)
    b = await startClusterNode('b', setup)
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    for (const n of [a, b]) await n?.stop()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  it('hides the blocked user’s messages and typing on the other node, and restores them on unblock', async () => {
    const alice = await device(a, 'alice')
    const bob = await device(b, 'bob')
    const direct = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const group = (await alice.request<{ id: string }>('chat.create', { name: 'Trip', members: ['bob'] })).id
    await subscribe(alice.client, [`c/${direct}/typing`])

    await alice.request('user.block', { userId: 'bob' })
    await b.proc.waitFor(reloaded(true))
    // On node b, where bob is: his message is stored for him and hidden from alice on node a.
    const hiddenSeq = await sendSeq(bob, direct, 'are you there?')
    await bob.client.publishAsync(`c/${direct}/typing`, JSON.stringify({ state: 'typing' }), { qos: 1 })
    const inGroup = await sendSeq(bob, group, 'hi')
    await alice.until(() => alice.messages(group).some((m) => m.seq === inGroup), 'bob’s group message')
    assert.deepEqual(
      alice.messages(direct).filter((m) => m.kind === 'text'),
      [],
    )
    assert.ok(!alice.other.some((o) => o.topic === `c/${direct}/typing`))
    const history = await alice.request<{ messages: Array<{ seq: number }> }>('history', { chatId: direct })
    assert.ok(history.messages.every((m) => m.seq !== hiddenSeq))

    await alice.request('user.unblock', { userId: 'bob' })
    await b.proc.waitFor(reloaded(false))
    const shown = await sendSeq(bob, direct, 'back?')
    await alice.until(
      () => alice.messages(direct).some((m) => m.seq === shown),
      'bob’s message after the unblock',
    )
    assert.ok(alice.messages(direct).every((m) => m.seq !== hiddenSeq))
  })
})
