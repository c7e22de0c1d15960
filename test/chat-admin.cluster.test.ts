import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type ClusterNode, type ClusterSetup, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

/**
 * Resolves once `check` answers true, asking again with a growing pause up to `ms`: a node
 * learns of another's role change by a Redis announcement it then reads from the store, and no
 * client sees that happen.
 */
async function eventually(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (let wait = 20; !(await check()); wait = Math.min(wait * 2, 500)) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, wait))
  }
}

/** Whether a request is refused with `code` (true), or answered (false); any other error throws. */
const refusedWith = (code: string, asked: Promise<unknown>): Promise<boolean> =>
  asked.then(
    () => false,
    (err: { code?: string }) => {
      if (err.code === code) return true
      throw err
    },
  )

/** chat.role on one node holds on the other (docs/cluster.md: the membership index of every node). */
describe('group admins in a cluster of two nodes', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  let setup: ClusterSetup
  const { secret, token } = clusterSecret()
  let a: ClusterNode
  let b: ClusterNode
  const devices: Device[] = []
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

  it('lets a member made admin on node A act as one on node B, and stops the one demoted there', async () => {
    const alice = await device(a, 'alice')
    const bob = await device(b, 'bob')
    const aliceOnB = await Device.connect(b.mqttUrl, 'alice', 'laptop', await token('alice'))
    devices.push(aliceOnB)
    const group = (await alice.request<{ id: string }>('chat.create', { name: 'Club', members: ['bob'] })).id
    await assert.rejects(bob.request('chat.add', { chatId: group, members: ['carol'] }), {
      code: 'not_allowed',
    })

    await alice.request('chat.role', { chatId: group, userId: 'bob', role: 'admin' })
    await bob.until(
      () => bob.messages(group).some((m) => m.event?.type === 'member_role'),
      'bob hears he is admin',
    )
    // chat.add of a member already in: no change, no event; only the right is checked.
    const addBob = (d: Device) => d.request('chat.add', { chatId: group, members: ['bob'] })
    await eventually(async () => !(await refusedWith('not_allowed', addBob(bob))), 'node B makes bob admin')
    assert.deepEqual(await bob.request('chat.add', { chatId: group, members: ['carol'] }), {
      added: ['carol'],
    })

    // bob, on B, makes alice a member: her laptop on B and her phone on A lose the right.
    await bob.request('chat.role', { chatId: group, userId: 'alice', role: 'member' })
    assert.equal(await refusedWith('not_allowed', addBob(aliceOnB)), true)
    await eventually(() => refusedWith('not_allowed', addBob(alice)), 'node A makes alice a member')
    const seen = await bob.request<{ members: { userId: string; role: string }[] }>('chat.get', {
      chatId: group,
    })
    assert.deepEqual(seen.members, [
      { userId: 'alice', role: 'member' },
      { userId: 'bob', role: 'admin' },
      { userId: 'carol', role: 'member' },
    ])
  })
})
