import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import { RedisDeviceLiveness } from '../services/push/device-liveness.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'

/** Which devices have a live session anywhere in a cluster, on a real redis-server. */
describe('device liveness in Redis', () => {
  let server: RedisServer
  let redis: Redis
  const errors: unknown[] = []
  const node = (id: string) => new RedisDeviceLiveness({ redis, nodeId: id, onError: (e) => errors.push(e) })
  // The presence counter keeps this key while a node lives.
  const beat = (id: string) => redis.set(`natter:node:${id}`, '1', 'PX', 60_000)

  before(async () => {
    server = await startRedis()
    redis = new Redis(server.url)
  })
  after(async () => {
    redis?.disconnect()
    await server?.stop()
  })

  it('knows a device connected on any live node, and forgets it when it leaves', async () => {
    const a = node('a')
    const b = node('b')
    await Promise.all([a.start(), b.start(), beat('a'), beat('b')])
    a.connected('bob/phone')
    b.connected('eve/laptop')
    assert.deepEqual([...(await b.live(['bob/phone', 'eve/laptop', 'ann/tablet']))].sort(), [
      'bob/phone',
      'eve/laptop',
    ])
    a.disconnected('bob/phone')
    assert.deepEqual([...(await b.live(['bob/phone']))], [])
    assert.deepEqual(errors, [])
  })

  it('keeps a session taken over by another node, and a second session on the same node', async () => {
    const a = node('a2')
    const b = node('b2')
    await Promise.all([a.start(), b.start(), beat('a2'), beat('b2')])
    a.connected('bob/phone')
    b.connected('bob/phone') // the phone reconnected to b before a noticed it had gone
    a.disconnected('bob/phone')
    assert.equal((await a.live(['bob/phone'])).size, 1, 'still live on b')
    b.connected('bob/phone') // a takeover on b itself: the new session comes before the old one goes
    b.disconnected('bob/phone')
    assert.equal((await a.live(['bob/phone'])).size, 1)
    b.disconnected('bob/phone')
    assert.equal((await a.live(['bob/phone'])).size, 0)
  })

  it('counts no session on a node that died or restarted', async () => {
    const dead = node('c3')
    await Promise.all([dead.start(), beat('c3')])
    dead.connected('ann/phone')
    assert.equal((await dead.live(['ann/phone'])).size, 1)
    await redis.del('natter:node:c3') // its heartbeat lapsed
    assert.equal((await dead.live(['ann/phone'])).size, 0)
    await beat('c3')
    const again = node('c3') // the same node id, a new process
    await again.start()
    assert.equal((await again.live(['ann/phone'])).size, 0, 'sessions of its earlier life are gone')
  })
})
