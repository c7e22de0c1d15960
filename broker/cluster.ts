import type { EventEmitter } from 'node:events'
import { hostname } from 'node:os'
import aedesPersistenceRedis, { type RedisPersistence } from 'aedes-persistence-redis'
import { Redis } from 'ioredis'
import mqemitterRedis from 'mqemitter-redis'
import type { Logger } from 'pino'
import { redisOptions } from './redis-url.ts'

/** What a node needs to join a cluster: aedes' shared persistence and emitter, and Redis itself. */
export interface ClusterLink {
  nodeId: string
  /** For aedes: sessions, subscriptions, retained messages, QoS 1 queues, wills. */
  persistence: unknown
  /** For aedes: every publish reaches the subscribers on every node. */
  mq: unknown
  /** Natter's own shared state (presence counts). */
  redis: Redis
  /** Calls fn each time the pub/sub connection is back after Redis was away (what was published meanwhile is lost). */
  onResubscribed(fn: () => void): void
  close(): Promise<void>
}

/**
 * Commands wait while Redis is away (no retry limit) rather than fail: a Redis restart then
 * holds up sends for its duration and loses none of them.
 */
function connection(url: string, log: Logger, role: string): Redis {
  const { url: plain, options } = redisOptions(url)
  const settings = {
    ...options,
    maxRetriesPerRequest: null,
    // Through a Sentinel, ioredis' ready check (INFO) on a reconnected subscriber connection is
    // refused in subscriber mode, and the connection kept failing.
    ...(role === 'subscribe' ? { enableReadyCheck: false } : {}),
  }
  const redis = plain ? new Redis(plain, settings) : new Redis(settings)
  let down = false
  redis.on('error', (err: Error) => {
    if (!down) log.warn({ event: 'redis_error', role, err: err.message }, 'Redis connection failed; retrying')
    down = true
  })
  redis.on('ready', () => {
    if (down) log.info({ event: 'redis_ready', role }, 'Redis connection back')
    down = false
  })
  return redis
}

/**
 * aedes 1.2 stores a SUBSCRIBE's whole topic list once per topic in it, concurrently. The Redis
 * persistence waits for each store's broadcast under a key made of the client and the first
 * topic, so the second store replaces the first one's waiter, which never resolves, and a
 * persistent session subscribing to two topics at once never got its SUBACK. Concurrent stores
 * of the same list are made one.
 */
function oneStorePerSubscribe(p: RedisPersistence): RedisPersistence {
  const inFlight = new Map<string, Promise<void>>()
  const store = p.addSubscriptions.bind(p)
  p.addSubscriptions = (client, subs) => {
    const key = JSON.stringify([client.id, subs.map((s) => [s.topic, s.qos])])
    let pending = inFlight.get(key)
    if (!pending) {
      pending = store(client, subs).finally(() => inFlight.delete(key))
      inFlight.set(key, pending)
    }
    return pending
  }
  return p
}

export function openCluster(
  settings: { redisUrl: string; nodeId?: string | undefined },
  log: Logger,
): ClusterLink {
  const nodeId = settings.nodeId ?? `${hostname()}-${process.pid}`
  const redis = connection(settings.redisUrl, log, 'natter')
  const persistenceConn = connection(settings.redisUrl, log, 'persistence')
  const pubConn = connection(settings.redisUrl, log, 'publish')
  const subConn = connection(settings.redisUrl, log, 'subscribe')
  const persistence = oneStorePerSubscribe(aedesPersistenceRedis({ conn: persistenceConn }))
  const mq = mqemitterRedis({ pubConn, subConn })
  // The emitter re-emits its connections' errors on its state emitter: unheard, a Redis restart
  // crashed the node. The connections reconnect by themselves, and log it (see connection()).
  ;(mq as unknown as { state: EventEmitter }).state.on('error', () => {})
  let subDown = false
  const resubscribed: Array<() => void> = []
  subConn.on('close', () => {
    subDown = true
  })
  subConn.on('ready', () => {
    if (!subDown) return
    subDown = false
    for (const fn of resubscribed) fn()
  })
  return {
    nodeId,
    persistence,
    mq,
    redis,
    onResubscribed: (fn) => resubscribed.push(fn),
    // After aedes has closed (which closes the emitter).
    close: async () => {
      await Promise.allSettled([redis.quit(), persistenceConn.quit(), pubConn.quit(), subConn.quit()])
    },
  }
}
