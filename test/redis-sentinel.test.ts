import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { redisOptions } from '../broker/redis-url.ts'
import { type ClusterNode, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { type RedisSentinel, type RedisServer, startRedis, startSentinel } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

describe('Redis URLs', () => {
  it('passes redis:// and rediss:// to ioredis as they are', () => {
    assert.deepEqual(redisOptions('redis://:pw@r:6380/2'), { url: 'redis://:pw@r:6380/2', options: {} })
  })

  it('reads a Sentinel URL: hosts, master name, password, database and TLS', () => {
    assert.deepEqual(redisOptions('redis-sentinel://:s%40cret@s1:26379,s2/natter?db=3').options, {
      name: 'natter',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      password: 's@cret',
      sentinelPassword: 's@cret',
      db: 3,
    })
    assert.deepEqual(redisOptions('rediss-sentinel://s1:5000/m').options, {
      name: 'm',
      sentinels: [{ host: 's1', port: 5000 }],
      tls: {},
    })
  })
})

describe('a cluster on a Sentinel-managed Redis', () => {
  let redis: RedisServer
  let sentinel: RedisSentinel
  let ferret: FerretDb
  let s3: S3Server
  const nodes: ClusterNode[] = []
  const devices: Device[] = []
  const { secret, token } = clusterSecret()

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([startRedis(), startFerretDb(), startVersitygw()])
    sentinel = await startSentinel(redis)
    const setup = { redisUrl: sentinel.url, mongoUri: ferret.uri, s3, secret }
    for (const id of ['s1', 's2']) nodes.push(await startClusterNode(id, setup))
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    for (const n of nodes) await n.kill()
    await sentinel?.stop()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  it('finds the master through the Sentinel and delivers across nodes', async () => {
    const [one, two] = nodes as [ClusterNode, ClusterNode]
    const alice = await Device.connect(one.mqttUrl, 'alice', 'phone', await token('alice'))
    const bob = await Device.connect(two.mqttUrl, 'bob', 'phone', await token('bob'))
    devices.push(alice, bob)
    const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    await alice.send(chat, 'through the sentinel')
    await bob.until(
      () => bob.messages(chat).some((m) => m.text === 'through the sentinel'),
      'bob has the message on the other node',
    )
    for (const n of nodes) {
      assert.deepEqual(
        n.proc.lines.filter((l) => l.includes('"redis_error"')),
        [],
        `${n.id} kept its Redis connections up`,
      )
    }
  })
})
