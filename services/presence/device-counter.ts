import type { Redis } from 'ioredis'
import type { Logger } from 'pino'

/**
 * How many devices of a user are connected: on this node (embedded default) or on any node of a
 * cluster. Presence changes when a count goes from 0 to 1 or from 1 to 0.
 */
export interface DeviceCounter {
  /** True when the counts are the cluster's, not this process's. */
  readonly shared: boolean
  /** Counts one more device and returns the user's devices now connected anywhere. */
  connected(userId: string): Promise<number>
  /** Counts one device fewer and returns the user's devices still connected anywhere. */
  disconnected(userId: string): Promise<number>
  /** orphaned is called for users whose last devices were on a node that died. */
  start(orphaned: (userId: string, lastSeen: number) => void): Promise<void>
  stop(): void
}

export class LocalDeviceCounter implements DeviceCounter {
  readonly shared = false
  readonly #devices = new Map<string, number>()

  async connected(userId: string): Promise<number> {
    const n = (this.#devices.get(userId) ?? 0) + 1
    this.#devices.set(userId, n)
    return n
  }

  async disconnected(userId: string): Promise<number> {
    const n = Math.max(0, (this.#devices.get(userId) ?? 0) - 1)
    if (n === 0) this.#devices.delete(userId)
    else this.#devices.set(userId, n)
    return n
  }

  async start(): Promise<void> {}
  stop(): void {}
}

const SUM = `local t = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do t = t + tonumber(v) end
return t`

// KEYS: the user's counts, this node's users. ARGV: node id, user id.
const CONNECT = `redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[2])
${SUM}`

const DISCONNECT = `if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[2])
end
${SUM}`

// KEYS: the user's counts. ARGV: the dead node's id.
const FORGET = `redis.call('HDEL', KEYS[1], ARGV[1])
${SUM}`

/**
 * Device counts in Redis, per user and node (natter:presence:<user> holds node → count), so a
 * user is online while any device is connected on any node. Each node refreshes a key that
 * expires after a few heartbeats; a node whose key expired died without its disconnects, and
 * one surviving node (whoever claims it first) removes its counts and reports the users left
 * with no device.
 */
export class RedisDeviceCounter implements DeviceCounter {
  readonly shared = true
  readonly #redis: Redis
  readonly #node: string
  readonly #log: Logger
  readonly #heartbeatMs: number
  #timer?: NodeJS.Timeout

  constructor(d: { redis: Redis; nodeId: string; log: Logger; heartbeatMs?: number }) {
    this.#redis = d.redis
    this.#node = d.nodeId
    this.#log = d.log
    this.#heartbeatMs = d.heartbeatMs ?? 2000
  }

  connected(userId: string): Promise<number> {
    return this.#count(CONNECT, userId)
  }

  disconnected(userId: string): Promise<number> {
    return this.#count(DISCONNECT, userId)
  }

  async #count(script: string, userId: string): Promise<number> {
    const keys = [`natter:presence:${userId}`, this.#usersKey(this.#node)]
    return Number(await this.#redis.eval(script, keys.length, ...keys, this.#node, userId))
  }

  async start(orphaned: (userId: string, lastSeen: number) => void): Promise<void> {
    // A node restarted under the same id left its earlier life's counts behind.
    await this.#reap(this.#node, orphaned)
    await this.#beat()
    this.#timer = setInterval(() => {
      this.#beat()
        .then(() => this.#findDead(orphaned))
        .catch((err: unknown) => this.#log.warn({ err }, 'cluster heartbeat failed'))
    }, this.#heartbeatMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  #usersKey(node: string): string {
    return `natter:node-users:${node}`
  }

  async #beat(): Promise<void> {
    const now = Date.now()
    await this.#redis
      .multi()
      .set(`natter:node:${this.#node}`, String(now), 'PX', this.#heartbeatMs * 3)
      .hset('natter:node-seen', this.#node, String(now))
      .sadd('natter:nodes', this.#node)
      .exec()
  }

  async #findDead(orphaned: (userId: string, lastSeen: number) => void): Promise<void> {
    for (const node of await this.#redis.smembers('natter:nodes')) {
      if (node === this.#node || (await this.#redis.exists(`natter:node:${node}`))) continue
      // One survivor cleans up after a dead node.
      const claimed = await this.#redis.set(`natter:reap:${node}`, this.#node, 'PX', 60_000, 'NX')
      if (claimed) await this.#reap(node, orphaned)
    }
  }

  async #reap(node: string, orphaned: (userId: string, lastSeen: number) => void): Promise<void> {
    const lastSeen = Number((await this.#redis.hget('natter:node-seen', node)) ?? Date.now())
    const users = await this.#redis.smembers(this.#usersKey(node))
    for (const userId of users) {
      const left = Number(await this.#redis.eval(FORGET, 1, `natter:presence:${userId}`, node))
      if (left === 0) orphaned(userId, lastSeen)
    }
    await this.#redis
      .multi()
      .del(this.#usersKey(node))
      .srem('natter:nodes', node)
      .hdel('natter:node-seen', node)
      .exec()
    if (users.length)
      this.#log.info(
        { event: 'node_reaped', node, users: users.length },
        'a dead node’s devices were counted out',
      )
  }
}
