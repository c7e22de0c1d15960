import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { healsWithinMs } from '../services/presence/device-counter.ts'
import { type ClusterNode, type ClusterSetup, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { logEvent, type Proc } from './helpers/processes.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

// What the cluster promises (10 s after a node died or Redis came back), and room for a loaded
// test machine: node processes scheduled late, FerretDB taking a second per write.
const HEALS_MS = healsWithinMs()
const SLACK_MS = 5000
const USERS = ['kim', 'ann', 'ben', 'cat', 'dan', 'eve', 'fay', 'gus']

interface Presence {
  online: boolean
  lastSeen: string
}

/** The next line with this event printed from now on (those already printed do not count). */
function nextEvent(proc: Proc, event: string, ms: number): Promise<string> {
  const match = logEvent(event)
  let skip = proc.lines.filter(match).length
  return proc.waitFor((l) => match(l) && skip-- <= 0, ms)
}

/** The fault itself: Redis stays away this long (nothing is being waited for). */
const outage = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Presence must heal by itself: a node killed at any time, or a Redis outage of any length, leaves
 * every user's retained presence right within healsWithinMs(). Real node processes on a real
 * redis-server with an append-only file, FerretDB and versitygw; presence read as a user who
 * shares a chat with everyone, live and as retained messages of a fresh subscription.
 */
describe('presence heals itself in a cluster', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  let setup: ClusterSetup
  const { secret, token } = clusterSecret()
  let a: ClusterNode
  let b: ClusterNode
  const nodes: ClusterNode[] = []
  const devices: Device[] = []
  let watcher: Device
  let fresh = 0

  const device = async (node: ClusterNode, userId: string, deviceId = 'phone') => {
    const d = await Device.connect(node.mqttUrl, userId, deviceId, await token(userId))
    devices.push(d)
    return d
  }
  const node = async (id: string) => {
    const n = await startClusterNode(id, setup)
    nodes.push(n)
    return n
  }
  const seen = (userId: string) =>
    watcher.other.filter((o) => o.topic === `u/${userId}/presence`).at(-1)?.body as Presence | undefined
  const states = (d: Record<string, boolean>) =>
    Object.keys(d)
      .map((u) => `${u} ${seen(u)?.online ?? 'unknown'}`)
      .join(', ')
  /** Resolves when the last presence the watcher got of each user says what is expected. */
  const presenceIs = async (expected: Record<string, boolean>, what: string, ms: number) => {
    try {
      await watcher.until(() => Object.entries(expected).every(([u, on]) => seen(u)?.online === on), what, ms)
    } catch (err) {
      throw new Error(`${(err as Error).message}; last seen: ${states(expected)}`)
    }
  }
  /** The retained presence of each user, read by a fresh subscription on a node. */
  const retained = async (on: ClusterNode, users: string[]) => {
    const d = await device(on, 'watch', `check-${++fresh}`)
    await d.client.subscribeAsync(
      users.map((u) => `u/${u}/presence`),
      { qos: 1 },
    )
    const of = (u: string) =>
      d.other.find((o) => o.topic === `u/${u}/presence` && o.retain)?.body as Presence | undefined
    await d.until(() => users.every((u) => of(u) !== undefined), 'a retained presence of every user')
    await d.close()
    return Object.fromEntries(users.map((u) => [u, of(u)?.online]))
  }

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([
      startRedis({ persistent: true }),
      startFerretDb(),
      startVersitygw(),
    ])
    setup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    a = await node('a')
    b = await node('b')
    watcher = await device(a, 'watch')
    await watcher.request('chat.create', { name: 'everyone', members: USERS })
    await watcher.client.subscribeAsync(
      USERS.map((u) => `u/${u}/presence`),
      { qos: 1 },
    )
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    for (const n of nodes) await n.kill()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  it('counts out a user whose only node is killed, within the bound', async () => {
    const c = await node('c')
    await device(c, 'kim')
    await presenceIs({ kim: true }, 'kim online', 10_000)
    const killedAt = Date.now()
    await c.kill()
    await presenceIs({ kim: false }, 'kim offline after her node was killed', HEALS_MS + SLACK_MS)
    process.stdout.write(`presence heal: kim offline ${Date.now() - killedAt} ms after her node died\n`)
    const lastSeen = Date.parse(seen('kim')?.lastSeen ?? '')
    assert.ok(lastSeen <= killedAt && killedAt - lastSeen < HEALS_MS, 'last seen while her node was alive')
  })

  /** Redis away for ms; the users on leaving disconnect meanwhile. Returns when Redis is back. */
  const redisOutage = async (ms: number, leaving: Device[]) => {
    const resumed = [a, b].map((n) => nextEvent(n.proc, 'reaping_resumed', ms + HEALS_MS + SLACK_MS))
    const reaped = () => [a, b].map((n) => n.proc.lines.filter(logEvent('node_reaped')).length)
    const reapedBefore = reaped()
    await redis.down()
    await Promise.all(leaving.map((d) => d.close()))
    await outage(ms)
    await redis.up()
    return {
      backAt: Date.now(),
      resumed: Promise.all(resumed),
      /** Nodes counted out since the outage began: none died, so a live one taken for dead. */
      reapedSince: () => reaped().reduce((sum, n, i) => sum + n - (reapedBefore[i] ?? 0), 0),
    }
  }

  it('shows connected users online and a user who left offline after an 8 s Redis outage', async () => {
    await device(a, 'ann')
    await device(b, 'ben')
    await device(a, 'cat', 'phone')
    const catTablet = await device(b, 'cat', 'tablet')
    const dan = await device(b, 'dan')
    await presenceIs({ ann: true, ben: true, cat: true, dan: true }, 'everyone online', 10_000)
    const { backAt, resumed, reapedSince } = await redisOutage(8000, [dan, catTablet])
    const expected = { kim: false, ann: true, ben: true, cat: true, dan: false }
    await presenceIs(expected, 'presence right after the outage', HEALS_MS + SLACK_MS)
    process.stdout.write(`presence heal: right ${Date.now() - backAt} ms after Redis came back (8 s away)\n`)
    // Every node counts out dead nodes again: a node that took a live one for dead would show now.
    await resumed
    process.stdout.write(`presence heal: live nodes counted out after the 8 s outage: ${reapedSince()}\n`)
    assert.deepEqual(await retained(b, Object.keys(expected)), expected)
    await presenceIs(expected, 'presence still right once every node counts out dead nodes again', 1000)
  })

  it('shows a user who left during a 3 s Redis outage offline, and everyone else as before', async () => {
    const eve = await device(a, 'eve')
    await presenceIs({ eve: true }, 'eve online', 10_000)
    const { backAt, resumed, reapedSince } = await redisOutage(3000, [eve])
    const expected = { kim: false, ann: true, ben: true, cat: true, dan: false, eve: false }
    await presenceIs(expected, 'presence right after the outage', HEALS_MS + SLACK_MS)
    process.stdout.write(`presence heal: right ${Date.now() - backAt} ms after Redis came back (3 s away)\n`)
    await resumed
    process.stdout.write(`presence heal: live nodes counted out after the 3 s outage: ${reapedSince()}\n`)
    assert.deepEqual(await retained(a, Object.keys(expected)), expected)
  })

  it('counts out a node killed after the outages, and its next life under the same id', async () => {
    await device(b, 'fay')
    await presenceIs({ fay: true }, 'fay online', 10_000)
    let killedAt = Date.now()
    await b.kill()
    // cat still has her phone on A.
    const expected = { ann: true, ben: false, cat: true, fay: false }
    await presenceIs(expected, 'ben and fay offline after their node was killed', HEALS_MS + SLACK_MS)
    process.stdout.write(`presence heal: ben and fay offline ${Date.now() - killedAt} ms after B died\n`)
    const again = await node('b')
    await device(again, 'gus')
    await presenceIs({ gus: true }, 'gus online on the new B', 10_000)
    killedAt = Date.now()
    await again.kill()
    await presenceIs({ gus: false }, 'gus offline after the new B was killed', HEALS_MS + SLACK_MS)
    process.stdout.write(`presence heal: gus offline ${Date.now() - killedAt} ms after the new B died\n`)
    assert.deepEqual(await retained(a, [...Object.keys(expected), 'gus']), { ...expected, gus: false })
  })
})
