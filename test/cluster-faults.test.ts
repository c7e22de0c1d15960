import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { type ClusterNode, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

interface Page {
  messages: Array<{ seq: number; clientMsgId?: string; kind?: string }>
  lastSeq: number
  more: boolean
}

/** Rejects, naming what did not happen, when the promise has not settled within ms. */
function within<T>(p: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const say = () => (typeof what === 'string' ? `${what} within ${ms} ms` : what())
  return Promise.race([
    p,
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(say())), ms))),
  ]).finally(() => clearTimeout(timer))
}

const nextConnect = (d: Device) => new Promise<void>((resolve) => d.client.once('connect', () => resolve()))

/** 10 chat messages a second from each sender, each counted when its PUBACK comes. */
function startTraffic(senders: Device[], chatId: string) {
  const acked = new Set<string>()
  let sent = 0
  const waiters = new Set<() => void>()
  // Pacing the load, not waiting for anything.
  const pacing = setInterval(() => {
    for (const s of senders) {
      const id = `${s.userId}-${sent++}`
      s.client.publish(
        `c/${chatId}/send`,
        JSON.stringify({ clientMsgId: id, text: id }),
        { qos: 1 },
        (err) => {
          if (err) return
          acked.add(id)
          for (const w of waiters) w()
        },
      )
    }
  }, 100)
  return {
    acked,
    sent: () => sent,
    stop: () => clearInterval(pacing),
    ackedAtLeast: (n: number, what: string) => {
      let check = () => {}
      const reached = new Promise<void>((resolve) => {
        check = () => {
          if (acked.size < n) return
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
        check()
      })
      return within(reached, 30_000, () => {
        waiters.delete(check)
        const state = senders.map((s) => `${s.userId} ${s.client.connected ? 'connected' : 'disconnected'}`)
        return `${what}: ${acked.size} of ${n} acknowledged (${sent} sent); ${state.join(', ')}`
      })
    },
  }
}

/**
 * Each device's live deliveries plus a sync from 0 (what a device does after a reconnect) hold
 * every acknowledged message, and the chat's sequence has no gap.
 */
async function verify(members: Device[], chatId: string, acked: Set<string>) {
  let duplicates = 0
  let live = 0
  for (const d of members) {
    const seen = new Map<number, string | undefined>()
    for (const m of d.messages(chatId)) {
      live++
      if (seen.has(m.seq)) duplicates++
      seen.set(m.seq, m.clientMsgId)
    }
    let after = 0
    for (;;) {
      const page = await d.request<Page>('sync', { chatId, after, limit: 200 })
      for (const m of page.messages) seen.set(m.seq, m.clientMsgId)
      after = page.messages.at(-1)?.seq ?? after
      if (!page.more) break
    }
    const seqs = [...seen.keys()].sort((x, y) => x - y)
    assert.deepEqual(
      seqs,
      Array.from({ length: seqs.length }, (_, i) => i + 1),
      `${d.userId}: no gap in the chat's sequence`,
    )
    const ids = new Set(seen.values())
    const missing = [...acked].filter((id) => !ids.has(id))
    assert.deepEqual(missing, [], `${d.userId}: every acknowledged message`)
  }
  return { live, duplicates }
}

/**
 * Steady QoS 1 chat traffic through three nodes while one node is killed and Redis restarts:
 * every message a sender got a PUBACK for reaches every member device (live, or by sync), and
 * each chat's sequence has no gap.
 */
describe('a cluster under faults', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  const { secret, token } = clusterSecret()
  let nodes: ClusterNode[] = []
  const devices: Device[] = []

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([
      startRedis({ persistent: true }),
      startFerretDb(),
      startVersitygw(),
    ])
    const setup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    for (const id of ['a', 'b', 'c']) nodes.push(await startClusterNode(id, setup))
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    // The graceful path has its own test; here the nodes only need to go.
    for (const n of nodes) await n.kill()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  /** A device that starts on one node and, when that node is gone, reconnects to the next. */
  const connect = async (userId: string, home: number) => {
    const servers = nodes.map((_, i) => {
      const url = new URL((nodes[(home + i) % nodes.length] as ClusterNode).mqttUrl)
      return { host: url.hostname, port: Number(url.port) }
    })
    const d = await Device.connect(
      (nodes[home] as ClusterNode).mqttUrl,
      userId,
      'phone',
      await token(userId),
      {
        servers,
        reconnectPeriod: 100,
        // An attempt that gets no CONNACK is given up early and the next node tried, as a mobile
        // client does (the issue note has it: one such attempt now and then after a node died).
        connectTimeout: 3000,
      },
    )
    devices.push(d)
    return d
  }

  it('loses no acknowledged message when a node is killed and when Redis restarts', async () => {
    const users = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5']
    const members: Device[] = []
    for (const [i, u] of users.entries()) members.push(await connect(u, i % 3))
    const [first] = members as [Device]
    const group = (
      await first.request<{ id: string }>('chat.create', { name: 'faults', members: users.slice(1) })
    ).id
    // The senders are on A, B and C; B is the node that dies.
    const traffic = startTraffic(members.slice(0, 3), group)
    try {
      await traffic.ackedAtLeast(30, 'before the kill')
      const b = nodes[1] as ClusterNode
      const reconnected = Promise.all([members[1], members[4]].map((d) => nextConnect(d as Device)))
      const killedAt = Date.now()
      await b.kill()
      nodes = nodes.filter((n) => n !== b)
      await within(reconnected, 60_000, 'the devices of the killed node reconnect')
      process.stdout.write(`faults: the killed node's devices reconnected in ${Date.now() - killedAt} ms\n`)
      await traffic.ackedAtLeast(traffic.acked.size + 30, 'after the kill')
      await redis.restart()
      await traffic.ackedAtLeast(traffic.acked.size + 30, 'after the Redis restart')
    } finally {
      traffic.stop()
    }
    // Everything sent before the stop is acknowledged once the senders' sessions settle.
    await traffic.ackedAtLeast(traffic.sent(), 'at the end')
    for (const n of nodes) {
      const died = n.proc.child.exitCode !== null || n.proc.child.signalCode !== null
      assert.ok(!died, `node ${n.id} survived; its last lines:\n${n.proc.lines.slice(-30).join('\n')}`)
    }
    const { live, duplicates } = await verify(members, group, traffic.acked)
    process.stdout.write(
      `faults: sent ${traffic.sent()}, acknowledged ${traffic.acked.size}, delivered live ${live} to ${members.length} devices, duplicates ${duplicates}\n`,
    )
  })

  it('loses nothing and drops no in-flight send when a node stops gracefully under traffic', async () => {
    const setup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    // FerretDB under a loaded test machine can take seconds per write: the grace period covers it.
    const d = await startClusterNode('d', setup, { NATTER_SHUTDOWN_GRACE_MS: '60000' })
    const a = nodes[0] as ClusterNode
    for (const n of nodes) {
      const died = n.proc.child.exitCode !== null || n.proc.child.signalCode !== null
      assert.ok(!died, `node ${n.id} is still up; its last lines:\n${n.proc.lines.slice(-30).join('\n')}`)
    }
    const servers = [d, a].map((n) => {
      const url = new URL(n.mqttUrl)
      return { host: url.hostname, port: Number(url.port) }
    })
    const onD = async (userId: string) => {
      const dev = await Device.connect(d.mqttUrl, userId, 'phone', await token(userId), {
        servers,
        reconnectPeriod: 100,
        connectTimeout: 3000,
      })
      devices.push(dev)
      return dev
    }
    const members = [await onD('v0'), await onD('v1'), await connect('v2', 0)]
    const group = (
      await (members[0] as Device).request<{ id: string }>('chat.create', {
        name: 'graceful',
        members: ['v1', 'v2'],
      })
    ).id
    const traffic = startTraffic(members.slice(0, 2), group)
    try {
      await traffic.ackedAtLeast(20, 'before the stop')
      const moved = Promise.all(members.slice(0, 2).map(nextConnect))
      const stopping = Date.now()
      await d.stop()
      process.stdout.write(`graceful stop: the node stopped in ${Date.now() - stopping} ms\n`)
      await within(moved, 60_000, 'the devices of the stopped node reconnect')
      await traffic.ackedAtLeast(traffic.acked.size + 20, 'after the stop')
    } finally {
      traffic.stop()
    }
    await traffic.ackedAtLeast(traffic.sent(), 'at the end')
    assert.equal(await d.proc.exited, 0, 'the node exits cleanly')
    const errors = d.proc.lines.filter((l) => l.startsWith('{"level":50') || l.startsWith('{"level":40'))
    assert.deepEqual(errors, [], 'the stopping node logged no error')
    const { live, duplicates } = await verify(members, group, traffic.acked)
    process.stdout.write(
      `graceful stop: sent ${traffic.sent()}, acknowledged ${traffic.acked.size}, delivered live ${live}, duplicates ${duplicates}\n`,
    )
  })
})
