import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * Which devices have a live MQTT session: on this node (embedded default), or on any live node
 * of a cluster. A push goes only to devices that have none.
 */
export interface DeviceLiveness {
  connected(clientId: string): unknown
  disconnected(clientId: string): unknown
  /** The client ids among these with a live session somewhere. */
  live(clientIds: string[]): Promise<Set<string>>
  start(): Promise<void>
}

export class LocalDeviceLiveness implements DeviceLiveness {
  readonly #sessions = new Map<string, number>()

  /** Returns the client id's sessions on this node now. */
  connected(clientId: string): number {
    const n = (this.#sessions.get(clientId) ?? 0) + 1
    this.#sessions.set(clientId, n)
    return n
  }

  disconnected(clientId: string): number {
    const n = Math.max(0, (this.#sessions.get(clientId) ?? 0) - 1)
    if (n > 0) this.#sessions.set(clientId, n)
    else this.#sessions.delete(clientId)
    return n
  }

  async live(clientIds: string[]): Promise<Set<string>> {
    return new Set(clientIds.filter((id) => this.#sessions.has(id)))
  }

  async start(): Promise<void> {}
}

const DEVICES = 'natter:device-node'
const BOOTS = 'natter:node-boot'

// KEYS: the device → node hash. ARGV: client id, this node's "<node>#<boot>".
const FORGET_IF_MINE = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end`

/**
 * Live sessions in Redis: natter:device-node maps a client id to the node (and that node's
 * boot) holding its session. An entry counts only while that node's heartbeat key
 * (natter:node:<id>, kept by the presence counter) exists and the node has not restarted since,
 * so a node that dies leaves nothing that needs cleaning first. A session taken over by another
 * node is not forgotten when the old node sees its disconnect.
 */
export class RedisDeviceLiveness implements DeviceLiveness {
  readonly #redis: Redis
  readonly #node: string
  readonly #me: string
  readonly #onError: (err: unknown) => void
  // Sessions of a client id on this node: a takeover on the same node connects the new session
  // before the old one is gone, so Redis is told only when the count passes 0.
  readonly #local = new LocalDeviceLiveness()

  constructor(d: { redis: Redis; nodeId: string; onError: (err: unknown) => void }) {
    this.#redis = d.redis
    this.#node = d.nodeId
    this.#me = `${d.nodeId}#${randomBytes(6).toString('hex')}`
    this.#onError = d.onError
  }

  async start(): Promise<void> {
    await this.#redis.hset(BOOTS, this.#node, this.#me)
  }

  connected(clientId: string): void {
    if (this.#local.connected(clientId) === 1)
      this.#redis.hset(DEVICES, clientId, this.#me).catch(this.#onError)
  }

  disconnected(clientId: string): void {
    if (this.#local.disconnected(clientId) === 0) {
      this.#redis.eval(FORGET_IF_MINE, 1, DEVICES, clientId, this.#me).catch(this.#onError)
    }
  }

  async live(clientIds: string[]): Promise<Set<string>> {
    if (clientIds.length === 0) return new Set()
    const holders = await this.#redis.hmget(DEVICES, ...clientIds)
    const nodes = [
      ...new Set(holders.filter((h): h is string => h !== null).map((h) => h.split('#')[0] as string)),
    ]
    const alive = new Set<string>()
    if (nodes.length) {
      const boots = await this.#redis.hmget(BOOTS, ...nodes)
      const beats = await Promise.all(nodes.map((n) => this.#redis.exists(`natter:node:${n}`)))
      nodes.forEach((_, i) => {
        if (beats[i] && boots[i]) alive.add(boots[i] as string)
      })
    }
    return new Set(clientIds.filter((_, i) => holders[i] && alive.has(holders[i] as string)))
  }
}
