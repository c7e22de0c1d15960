import assert from 'node:assert/strict'
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { after, afterEach, before, beforeEach, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import pino from 'pino'
import type { ChatStore, Presence } from '../services/chats/chat-store.ts'
import { healsWithinMs, RedisDeviceCounter } from '../services/presence/device-counter.ts'
import { PresenceTracker } from '../services/presence/presence-tracker.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'

// Fast heartbeats, so that the bound is short (2.8 s: the 2 s of ioredis' retry delay dominate).
const HEARTBEAT_MS = 200
const HEALS_MS = healsWithinMs(HEARTBEAT_MS)
// Room for a loaded test machine.
const SLACK_MS = 3000

/** Every retained presence published by any node, in order, with waits on what comes next. */
class Retained {
  readonly published: Array<{ userId: string; online: boolean }> = []
  readonly #waiters = new Set<() => void>()

  publish = async (_topic: string, body: unknown) => {
    const p = body as { userId: string; online: boolean }
    this.published.push({ userId: p.userId, online: p.online })
    for (const w of this.#waiters) w()
  }

  /** What a new subscriber gets: the state published last. */
  of(userId: string): boolean | undefined {
    return this.published.filter((p) => p.userId === userId).at(-1)?.online
  }

  /** Resolves when each user's last state is the expected one (or the condition holds). */
  until(expected: Record<string, boolean> | (() => boolean), what: string, ms: number): Promise<void> {
    const holds =
      typeof expected === 'function'
        ? expected
        : () => Object.entries(expected).every(([u, on]) => this.of(u) === on)
    if (holds()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!holds()) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(
          new Error(`${what} did not happen within ${ms} ms; published ${JSON.stringify(this.published)}`),
        )
      }, ms)
      this.#waiters.add(check)
    })
  }
}

/** The presence part of a ChatStore, in memory: one for every node, as MongoDB is. */
function presenceStore(): ChatStore & { rows: Map<string, Presence> } {
  const rows = new Map<string, Presence>()
  const store = {
    rows,
    setPresence: async (p: Presence) => {
      rows.set(p.userId, p)
    },
    allPresence: async () => [...rows.values()],
  }
  return store as unknown as ChatStore & { rows: Map<string, Presence> }
}

/** A TCP proxy to Redis that can cut a node off (its connections closed, new ones refused). */
async function cuttableLink(
  port: number,
): Promise<{ port: number; cut(): void; mend(): void; close(): void }> {
  const sockets = new Set<Socket>()
  let open = true
  const server: Server = createServer((client) => {
    if (!open) return client.destroy()
    const upstream = tcpConnect(port, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    cut: () => {
      open = false
      for (const s of sockets) s.destroy()
    },
    mend: () => {
      open = true
    },
    close: () => {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

/** Device counts in Redis and the presence they publish, with in-process nodes on a real redis-server. */
describe('presence counts in Redis heal themselves', () => {
  let server: RedisServer
  let admin: Redis
  // What each test started; stopped after it, and Redis emptied.
  let cleanup: Array<() => void> = []
  let store = presenceStore()
  const logs: string[] = []
  const logWaiters = new Set<(line: string) => void>()

  /** One node: a tracker on its own Redis connection (through port, when given). */
  const node = async (
    id: string,
    retained: Retained,
    o: { port?: number; publish?: (topic: string, body: unknown) => Promise<void> } = {},
  ) => {
    const redis = new Redis({ port: o.port ?? server.port, host: '127.0.0.1', maxRetriesPerRequest: null })
    redis.on('error', () => {})
    const log = pino(
      { level: 'debug', base: { self: id } },
      {
        write: (line: string) => {
          logs.push(line)
          for (const w of logWaiters) w(line)
        },
      },
    )
    const counter = new RedisDeviceCounter({ redis, nodeId: id, log, heartbeatMs: HEARTBEAT_MS })
    const tracker = new PresenceTracker({
      store,
      publish: o.publish ?? retained.publish,
      log,
      counter,
    })
    await tracker.start()
    const stop = () => {
      tracker.stop()
      redis.disconnect()
    }
    cleanup.push(stop)
    return { tracker, stop }
  }
  /** Resolves at the next log line of a node with this event (and these fields), from now on. */
  const nextLog = (nodeId: string, event: string, ms: number, fields: Record<string, unknown> = {}) =>
    new Promise<void>((resolve, reject) => {
      const waiter = (line: string) => {
        const o = JSON.parse(line) as Record<string, unknown>
        if (o.self !== nodeId || o.event !== event) return
        if (Object.entries(fields).some(([k, v]) => o[k] !== v)) return
        clearTimeout(timer)
        logWaiters.delete(waiter)
        resolve()
      }
      const timer = setTimeout(() => {
        logWaiters.delete(waiter)
        reject(new Error(`${nodeId}: no ${event} within ${ms} ms`))
      }, ms)
      logWaiters.add(waiter)
    })

  before(async () => {
    server = await startRedis()
    admin = new Redis(server.url)
  })
  beforeEach(() => {
    store = presenceStore()
  })
  afterEach(async () => {
    for (const c of cleanup) c()
    cleanup = []
    await admin.flushall()
  })
  after(async () => {
    if (process.env.DUMP_LOGS) process.stderr.write(logs.join(''))
    admin?.disconnect()
    await server?.stop()
  })

  it('brings back online the users of a node counted out while it was only cut off from Redis', async () => {
    const retained = new Retained()
    const link = await cuttableLink(server.port)
    cleanup.push(link.close)
    const a = await node('p-a', retained)
    const b = await node('p-b', retained, { port: link.port })
    a.tracker.connected('ann')
    b.tracker.connected('bob')
    b.tracker.connected('cal')
    a.tracker.connected('cal')
    await retained.until({ ann: true, bob: true, cal: true }, 'everyone online', 2000)
    const reaped = nextLog('p-a', 'node_reaped', HEALS_MS + SLACK_MS, { node: 'p-b' })
    link.cut()
    // B's key lapses and A counts B out: bob has no device left anywhere, cal has one on A.
    await reaped
    await retained.until({ bob: false }, 'bob offline while B is cut off', 2000)
    assert.equal(retained.of('cal'), true)
    link.mend()
    await retained.until({ ann: true, bob: true, cal: true }, 'bob online again', HEALS_MS + SLACK_MS)
    assert.equal(await admin.hget('natter:presence:bob', 'p-b'), '1', 'B counts bob again')
    assert.ok(await admin.sismember('natter:node-users:p-b', 'bob'), 'and lists him')
    b.tracker.disconnected('bob')
    await retained.until({ bob: false }, 'bob offline when his device leaves B', 2000)
    a.stop()
  })

  it('counts out a node that dies, gives the claim back, and counts out its next life too', async () => {
    const retained = new Retained()
    await node('d-a', retained)
    const b = await node('d-b', retained)
    b.tracker.connected('dee')
    await retained.until({ dee: true }, 'dee online', 2000)
    const reaped = nextLog('d-a', 'node_reaped', HEALS_MS + SLACK_MS, { node: 'd-b' })
    let diedAt = Date.now()
    b.stop()
    await retained.until({ dee: false }, 'dee offline after B died', HEALS_MS + SLACK_MS)
    assert.ok(Date.now() - diedAt < HEALS_MS + SLACK_MS)
    await reaped
    assert.equal(await admin.exists('natter:reap:d-b'), 0, 'the claim is given back')
    assert.equal(await admin.sismember('natter:nodes', 'd-b'), 0)
    const again = await node('d-b', retained)
    again.tracker.connected('eli')
    await retained.until({ eli: true }, 'eli online on the next B', 2000)
    diedAt = Date.now()
    again.stop()
    await retained.until({ eli: false }, 'eli offline after the next B died', HEALS_MS + SLACK_MS)
    assert.ok(Date.now() - diedAt < HEALS_MS + SLACK_MS)
  })

  it('publishes the change a node was publishing when it died, and only what may be wrong', async () => {
    const retained = new Retained()
    await node('w-a', retained)
    const a = await node('w-a2', retained)
    // B dies while jo's first publish is under way (it never completes).
    let publishing = () => {}
    const joPublishing = new Promise<void>((resolve) => {
      publishing = resolve
    })
    const b = await node('w-b', retained, {
      publish: (topic, body) => {
        if ((body as { userId: string }).userId !== 'jo') return retained.publish(topic, body)
        publishing()
        return new Promise(() => {})
      },
    })
    b.tracker.connected('kay')
    a.tracker.connected('kay')
    await retained.until({ kay: true }, 'kay online', 2000)
    // B has finished with kay (its publish and the mark that it was under way), so when B dies
    // only jo's change is left pending.
    await b.tracker.settled()
    await a.tracker.settled()
    b.tracker.connected('jo')
    await joPublishing
    // jo's second device, on A, publishes nothing: jo is online already, as far as Redis knows.
    a.tracker.connected('jo')
    await a.tracker.settled()
    assert.equal(retained.of('jo'), undefined, 'jo not published yet')
    const kayBefore = retained.published.filter((p) => p.userId === 'kay').length
    const reaped = nextLog('w-a', 'node_reaped', HEALS_MS + SLACK_MS, { node: 'w-b' })
    const reaped2 = nextLog('w-a2', 'node_reaped', HEALS_MS + SLACK_MS, { node: 'w-b' })
    b.stop()
    await retained.until({ jo: true }, 'jo published online by a survivor', HEALS_MS + SLACK_MS)
    await Promise.any([reaped, reaped2])
    assert.equal(
      retained.published.filter((p) => p.userId === 'kay').length,
      kayBefore,
      'kay, still online on A with nothing pending, is not published again',
    )
  })

  it('publishes a user online again when the count of a node that holds them is lost', async () => {
    const retained = new Retained()
    const a = await node('r-a', retained)
    a.tracker.connected('fay')
    await retained.until({ fay: true }, 'fay online', 2000)
    // Another node, wrongly taking A for dead, removed A's count and published fay offline.
    await admin.hdel('natter:presence:fay', 'r-a')
    await retained.publish('u/fay/presence', { userId: 'fay', online: false })
    await retained.until({ fay: true }, 'fay online again', HEALS_MS + SLACK_MS)
  })

  it('publishes every user’s presence again when Redis comes back empty', async () => {
    const retained = new Retained()
    const a = await node('e-a', retained)
    a.tracker.connected('hal')
    await retained.until({ hal: true }, 'hal online', 2000)
    // gil was online on a node that died unseen; the store still says so.
    store.rows.set('gil', { userId: 'gil', online: true, lastSeen: Date.now() - 60_000 })
    const from = retained.published.length
    // Redis restarted without its data: counts, heartbeats and retained messages are gone.
    await admin.flushall()
    const since = () => retained.published.slice(from)
    await retained.until(
      () => since().some((p) => p.userId === 'gil') && since().some((p) => p.userId === 'hal'),
      'gil and hal published again',
      HEALS_MS + SLACK_MS,
    )
    assert.equal(retained.of('gil'), false)
    assert.equal(retained.of('hal'), true)
    assert.equal(store.rows.get('gil')?.online, false)
    assert.equal(await admin.hget('natter:presence:hal', 'e-a'), '1')
  })

  it('ignores the disconnect of a connection it never counted', async () => {
    const retained = new Retained()
    const a = await node('c-a', retained)
    const phone = {}
    a.tracker.connected('ivy', phone)
    await retained.until({ ivy: true }, 'ivy online', 2000)
    a.tracker.disconnected('ivy', {})
    a.tracker.connected('ivy', phone)
    await a.tracker.settled()
    assert.equal(a.tracker.isOnline('ivy'), true)
    assert.equal(await admin.hget('natter:presence:ivy', 'c-a'), '1')
    a.tracker.disconnected('ivy', phone)
    await retained.until({ ivy: false }, 'ivy offline', 2000)
  })
})
