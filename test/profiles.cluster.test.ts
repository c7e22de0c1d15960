import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import sharp from 'sharp'
import { uploadMedia } from '../client-sdk/src/index.ts'
import { type ClusterNode, type ClusterSetup, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

/**
 * Profiles across nodes: the event of a change on one node reaches partners on another, and the
 * avatar is readable by them on any node and on `natter media`.
 */
describe('profiles in a cluster of two nodes and a media service', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  let setup: ClusterSetup
  const { secret, token } = clusterSecret()
  let a: ClusterNode
  let b: ClusterNode
  let media: ClusterNode
  const devices: Device[] = []
  const device = async (node: ClusterNode, userId: string) => {
    const d = await Device.connect(node.mqttUrl, userId, 'phone', await token(userId))
    devices.push(d)
    return d
  }
  const call = async (node: ClusterNode, userId: string, op: string, params: Record<string, unknown>) => {
    const res = await fetch(`${node.httpUrl}/v1/${op}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(userId)}`, 'content-type': 'application/json' },
      body: JSON.stringify(params),
    })
    return {
      status: res.status,
      body: (await res.json()) as { result?: { url: string }; error?: { code: string } },
    }
  }

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([startRedis(), startFerretDb(), startVersitygw()])
    setup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    ;[a, b, media] = await Promise.all([
      startClusterNode('a', setup),
      startClusterNode('b', setup),
      startClusterNode('media', setup, {}, 'media'),
    ])
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    for (const n of [a, b, media]) await n?.stop()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  it('a change on node A reaches a partner on node B; the avatar is readable on B and on `natter media`', async () => {
    const alice = await device(a, 'alice')
    const bob = await device(b, 'bob')
    const carol = await device(b, 'carol')
    const chatId = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const png = await sharp({ create: { width: 48, height: 48, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer()
    const up = await uploadMedia({ client: alice.client, clientId: 'alice/phone' }, png, {
      chatId,
      contentType: 'image/png',
    })
    await alice.request('profile.set', { displayName: 'Alice', avatar: up.mediaId })
    await bob.until(
      () => bob.inbox.some((e) => e.type === 'profile' && e.userId === 'alice'),
      'alice’s profile event on node B',
    )
    const event = bob.inbox.find((e) => e.type === 'profile') as unknown as Record<string, unknown>
    assert.equal(event.displayName, 'Alice')
    assert.equal(event.avatar, up.mediaId)

    // Node B learnt the direct chat from A: Bob sees Alice's profile there, Carol does not.
    const got = await bob.request<{ profiles: Array<{ userId: string; displayName: string }> }>(
      'profile.get',
      {
        userIds: ['alice'],
      },
    )
    assert.equal(got.profiles[0]?.displayName, 'Alice')
    const byCarol = await carol.request<{ notFound: string[] }>('profile.get', { userIds: ['alice'] })
    assert.deepEqual(byCarol.notFound, ['alice'])

    for (const node of [b, media]) {
      const ok = await call(node, 'bob', 'media.get', { mediaId: up.mediaId })
      assert.equal(ok.status, 200, `${node.id}: ${JSON.stringify(ok.body)}`)
      const download = await fetch(ok.body.result?.url ?? '')
      assert.deepEqual(Buffer.from(await download.arrayBuffer()), png)
      const refused = await call(node, 'carol', 'media.get', { mediaId: up.mediaId })
      assert.equal(refused.body.error?.code, 'media_not_found', node.id)
    }
  })
})
