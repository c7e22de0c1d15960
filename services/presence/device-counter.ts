import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'

/** How often a cluster node refreshes its heartbeat key and looks for dead nodes, in ms. */
export const HEARTBEAT_MS = 2000
/** How long a node's heartbeat key lives (3 heartbeats), in ms: a node that missed them is dead. */
export const HEARTBEAT_LIVES = 3
/** The longest wait between two reconnection attempts of an ioredis connection (its default), in ms. */
export const REDIS_RETRY_MAX_MS = 2000
/** How often each node writes its whole share of the counts again, whatever happened, in heartbeats. */
export const RECONCILE_HEARTBEATS = 5
/** How long a claim on counting out a dead node lasts unless its holder extends it, in heartbeats. */
const REAP_CLAIM_HEARTBEATS = 5

/**
 * How long after a node died, or after Redis came back from an outage of any length, every user's
 * retained presence is right again, in ms (10 s with the 2 s heartbeat): a dead node's key
 * expires within 3 heartbeats and a survivor counts it out at its next one; after an outage
 * every node reconnects within ioredis' longest retry delay and writes its counts again at once,
 * and counts out no one for 3 heartbeats (so that every live node has beaten again first); the
 * periodic re-assertion every 5 heartbeats repairs anything else.
 */
export function healsWithinMs(heartbeatMs = HEARTBEAT_MS): number {
  return Math.max(
    (HEARTBEAT_LIVES + 1) * heartbeatMs,
    REDIS_RETRY_MAX_MS + (HEARTBEAT_LIVES + 1) * heartbeatMs,
    RECONCILE_HEARTBEATS * heartbeatMs,
  )
}

/** What a counter needs from the presence tracker of its node. */
export interface CounterHooks {
  /** The devices connected to this node now, per user: the truth for this node's share. */
  devices(): ReadonlyMap<string, number>
  /**
   * The user's presence may differ from what was last published: the tracker writes this node's
   * count again, publishes the user's state across the cluster, and resolves when it is out.
   * lastSeen (ms since the epoch) dates an offline state; ifIdle skips a user with a change of
   * this node's still under way (that change publishes the state itself).
   */
  recheck(userId: string, o?: { lastSeen?: number; ifIdle?: boolean }): Promise<void>
  /** The shared store lost its data (Redis restarted empty): every user's presence is published again. */
  lost(): void
}

/** What setting a count did: the user's devices connected anywhere before and after. */
export interface CountChange {
  before: number
  after: number
  /** The user's state is to be published (the total crossed 0, or forced); release() after. */
  publish: boolean
}

/**
 * How many devices of a user are connected: on this node (embedded default) or on any node of a
 * cluster. The tracker sets this node's count; presence changes when the total crosses 0.
 */
export interface DeviceCounter {
  /** True when the counts are the cluster's, not this process's. */
  readonly shared: boolean
  /**
   * Sets this node's count of the user's devices (0 forgets it). Idempotent: writing the same
   * count again changes nothing. When publish comes back true the user stays marked as being
   * published by this node until release(), so that a survivor publishes it if the node dies first.
   */
  set(userId: string, count: number, o?: { force?: boolean }): Promise<CountChange>
  /** The user's devices connected anywhere. */
  total(userId: string): Promise<number>
  /** This node has published the user's state (after a set() that said publish). */
  release(userId: string): Promise<void>
  start(hooks: CounterHooks): Promise<void>
  stop(): void
}

export class LocalDeviceCounter implements DeviceCounter {
  readonly shared = false
  readonly #devices = new Map<string, number>()

  async set(userId: string, count: number, o: { force?: boolean } = {}): Promise<CountChange> {
    const before = this.#devices.get(userId) ?? 0
    if (count > 0) this.#devices.set(userId, count)
    else this.#devices.delete(userId)
    return { before, after: count, publish: o.force === true || before > 0 !== count > 0 }
  }

  async total(userId: string): Promise<number> {
    return this.#devices.get(userId) ?? 0
  }

  async release(): Promise<void> {}
  async start(): Promise<void> {}
  stop(): void {}
}

const SUM = `local function total(key)
  local t = 0
  for _, v in ipairs(redis.call('HVALS', key)) do t = t + tonumber(v) end
  return t
end
`

// KEYS: this node's users, this node's pending users, then one natter:presence:<user> per user.
// ARGV: node id, '1' to force a publish, then a user id and this node's count of the user's
// devices per user. Returns per user: the totals before and after, and 1 when the state is to
// be published (the user is then pending on this node until release()).
const SET_COUNTS = `${SUM}
local out = {}
for i = 3, #KEYS do
  local user, n = ARGV[2 * i - 3], tonumber(ARGV[2 * i - 2])
  local before = total(KEYS[i])
  local mine = tonumber(redis.call('HGET', KEYS[i], ARGV[1]) or '0')
  if n > 0 then
    redis.call('HSET', KEYS[i], ARGV[1], n)
    redis.call('SADD', KEYS[1], user)
  else
    redis.call('HDEL', KEYS[i], ARGV[1])
    redis.call('SREM', KEYS[1], user)
  end
  local after = before - mine + n
  local publish = 0
  if ARGV[2] == '1' or (before > 0) ~= (after > 0) then
    redis.call('SADD', KEYS[2], user)
    publish = 1
  end
  out[#out + 1] = before
  out[#out + 1] = after
  out[#out + 1] = publish
end
return out`

// KEYS: this node's heartbeat key, natter:node-seen, natter:nodes, natter:presence-epoch.
// ARGV: node id, this process's boot id, key lifetime (ms), now (ms).
// Returns the key's previous value (nil when it had lapsed) and 1 when the epoch key was
// missing: Redis lost its data (or is new).
const BEAT = `local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
local fresh = 0
if redis.call('SET', KEYS[4], ARGV[2], 'NX') then fresh = 1 end
return {old or false, fresh}`

// KEYS: the dead node's heartbeat key, its users, its pending users, then one
// natter:presence:<user> per user. ARGV: the dead node's id, '1' to force (a node reaping its
// own earlier life), then the user ids. Removes the node's counts; returns per user 1 when the
// user's state is to be published again (no device left, or the node was publishing it), and
// takes the others off its lists. Returns nil, changing nothing, when the node beats again: it
// was only cut off, and it writes its counts again itself.
const FORGET = `${SUM}
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return nil end
local out = {}
for i = 4, #KEYS do
  local user = ARGV[i - 1]
  redis.call('HDEL', KEYS[i], ARGV[1])
  local again = 0
  if total(KEYS[i]) == 0 or redis.call('SISMEMBER', KEYS[3], user) == 1 then
    again = 1
  else
    redis.call('SREM', KEYS[2], user)
  end
  out[#out + 1] = again
end
return out`

// KEYS: the dead node's heartbeat key, its users, its pending users. ARGV: force, user id.
const FORGET_USER = `if ARGV[1] == '1' or redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[2])
end`

// KEYS: the dead node's heartbeat key, its users, its pending users, natter:nodes,
// natter:node-seen, the reap claim. ARGV: its id, force, this node's boot id. The claim is given
// back either way.
const FINISH_REAP = `local done = 0
if (ARGV[2] == '1' or redis.call('EXISTS', KEYS[1]) == 0)
  and redis.call('SCARD', KEYS[2]) + redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  done = 1
end
if redis.call('GET', KEYS[6]) == ARGV[3] then redis.call('DEL', KEYS[6]) end
return done`

// KEYS: the claim. ARGV: boot id, lifetime (ms). Extends a claim that is still this node's.
const EXTEND_CLAIM = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`

// Users per script call: a call holds Redis up for well under a millisecond.
const BATCH = 200

const chunks = <T>(list: T[], size: number): T[][] => {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}

/**
 * Device counts in Redis, per user and node (natter:presence:<user> holds node → count), so a
 * user is online while any device is connected on any node.
 *
 * Each node's own in-memory counts are the truth for its share: it sets (never increments) its
 * field, so a write repeated after a reconnect changes nothing, and it writes its whole share
 * again every few heartbeats, at once when its Redis connection is back after an outage, and when
 * it finds that its heartbeat key had lapsed (it may have been counted out while cut off).
 *
 * A node marks a user as pending (natter:node-pending:<node>) in the same script that decides
 * the user's state is to be published, and unmarks it once the state is out.
 *
 * Each node refreshes a key that expires after 3 heartbeats; a node whose key expired died
 * without its disconnects, and one surviving node (whoever claims it first, giving the claim
 * back when done) removes its counts and publishes again the state of each user it held who has
 * no device left, and of each user it was publishing. A node back from an outage counts out no
 * one for 3 heartbeats, so that the others have beaten again first; a node counted out while it
 * was only cut off writes its counts again as soon as it beats.
 */
export class RedisDeviceCounter implements DeviceCounter {
  readonly shared = true
  readonly #redis: Redis
  readonly #node: string
  readonly #log: Logger
  readonly #heartbeatMs: number
  /** This process's mark on its heartbeat key and reap claims. */
  readonly #boot = randomBytes(6).toString('hex')
  #hooks?: CounterHooks
  #beatTimer?: NodeJS.Timeout
  #reconcileTimer?: NodeJS.Timeout
  #beating = false
  #firstBeat = true
  #down = false
  /** When the Redis connection last came back after an outage (ms since the epoch); 0 = never down. */
  #backAt = 0
  #reapingResumed = true
  #reasserting: Promise<void> | undefined
  #reassertAgain: string | undefined
  #stopped = false
  readonly #onClose = () => {
    if (!this.#stopped) this.#down = true
  }
  readonly #onReady = () => {
    if (!this.#down || this.#stopped) return
    this.#down = false
    this.#backAt = Date.now()
    this.#reapingResumed = false
    // The commands queued while Redis was away went out before this event (ioredis flushes its
    // offline queue first), so the counts written now are newer than theirs.
    this.#reassert('redis_back')
  }

  constructor(d: { redis: Redis; nodeId: string; log: Logger; heartbeatMs?: number }) {
    this.#redis = d.redis
    this.#node = d.nodeId
    this.#log = d.log
    this.#heartbeatMs = d.heartbeatMs ?? HEARTBEAT_MS
  }

  /** See healsWithinMs(), for this counter's heartbeat (ms). */
  get healsWithinMs(): number {
    return healsWithinMs(this.#heartbeatMs)
  }

  async set(userId: string, count: number, o: { force?: boolean } = {}): Promise<CountChange> {
    const [r] = await this.#setCounts([[userId, count]], o.force === true)
    return r ?? { before: 0, after: 0, publish: false }
  }

  async total(userId: string): Promise<number> {
    let t = 0
    for (const v of await this.#redis.hvals(this.#countsKey(userId))) t += Number(v)
    return t
  }

  async release(userId: string): Promise<void> {
    await this.#redis.srem(this.#pendingKey(this.#node), userId)
  }

  async start(hooks: CounterHooks): Promise<void> {
    this.#hooks = hooks
    this.#redis.on('close', this.#onClose)
    this.#redis.on('ready', this.#onReady)
    // A node restarted under the same id left its earlier life's counts behind.
    await this.#reap(this.#node, true)
    await this.#beat()
    this.#beatTimer = setInterval(() => this.#tick(), this.#heartbeatMs)
    this.#beatTimer.unref()
    this.#reconcileTimer = setInterval(
      () => this.#reassert('periodic'),
      RECONCILE_HEARTBEATS * this.#heartbeatMs,
    )
    this.#reconcileTimer.unref()
  }

  stop(): void {
    this.#stopped = true
    clearInterval(this.#beatTimer)
    clearInterval(this.#reconcileTimer)
    this.#redis.off('close', this.#onClose)
    this.#redis.off('ready', this.#onReady)
  }

  #countsKey(userId: string): string {
    return `natter:presence:${userId}`
  }

  #usersKey(node: string): string {
    return `natter:node-users:${node}`
  }

  #pendingKey(node: string): string {
    return `natter:node-pending:${node}`
  }

  #heartbeatKey(node: string): string {
    return `natter:node:${node}`
  }

  /**
   * Writes this node's counts of these users. The arguments are built when the command is sent,
   * and one connection runs commands in order, so the last count written is the newest.
   */
  async #setCounts(pairs: Array<[string, number]>, force: boolean): Promise<CountChange[]> {
    const keys = [
      this.#usersKey(this.#node),
      this.#pendingKey(this.#node),
      ...pairs.map(([u]) => this.#countsKey(u)),
    ]
    const args = [this.#node, force ? '1' : '0', ...pairs.flatMap(([u, n]) => [u, String(n)])]
    const out = (await this.#redis.eval(SET_COUNTS, keys.length, ...keys, ...args)) as number[]
    return pairs.map((_, i) => ({
      before: Number(out[3 * i]),
      after: Number(out[3 * i + 1]),
      publish: out[3 * i + 2] === 1,
    }))
  }

  /** One heartbeat, then (unless a beat is still waiting for Redis) a look for dead nodes. */
  #tick(): void {
    if (this.#beating || this.#stopped) return
    this.#beating = true
    this.#beat()
      .then(() => this.#findDead())
      .catch((err: unknown) => this.#log.warn({ err }, 'cluster heartbeat failed'))
      .finally(() => {
        this.#beating = false
      })
  }

  /** Refreshes this node's key; a lapsed key means the node may have been counted out: it re-asserts. */
  async #beat(reasserting = false): Promise<void> {
    const keys = [this.#heartbeatKey(this.#node), 'natter:node-seen', 'natter:nodes', 'natter:presence-epoch']
    const ttl = HEARTBEAT_LIVES * this.#heartbeatMs
    const [old, fresh] = (await this.#redis.eval(
      BEAT,
      keys.length,
      ...keys,
      this.#node,
      this.#boot,
      String(ttl),
      String(Date.now()),
    )) as [string | null, number]
    const first = this.#firstBeat
    this.#firstBeat = false
    if (fresh === 1) {
      this.#log.warn({ event: 'presence_store_empty' }, 'Redis has no presence state: publishing it again')
      this.#hooks?.lost()
    }
    if (!first && !reasserting && old !== this.#boot) {
      this.#log.warn(
        { event: 'heartbeat_lapsed', node: this.#node },
        'this node’s heartbeat had lapsed; writing its device counts again',
      )
      this.#reassert('lapsed')
    }
  }

  /**
   * Writes this node's whole share again (at most one run at a time; a request during a run runs
   * once more after it): its count of every user it holds, with a recheck of every user whose
   * total crossed 0 by it; then a recheck of every user it is counted for but does not hold, and
   * of every user still marked pending with no change under way (a publish that failed).
   */
  #reassert(reason: string): void {
    if (this.#stopped) return
    if (this.#reasserting) {
      this.#reassertAgain = reason
      return
    }
    this.#reasserting = this.#reassertNow(reason)
      .catch((err: unknown) => this.#log.warn({ err, reason }, 'could not write this node’s device counts'))
      .finally(() => {
        this.#reasserting = undefined
        const again = this.#reassertAgain
        this.#reassertAgain = undefined
        if (again) this.#reassert(again)
      })
  }

  async #reassertNow(reason: string): Promise<void> {
    const hooks = this.#hooks
    if (!hooks) return
    // The heartbeat first: a survivor that is counting this node out stops at it.
    if (reason === 'redis_back') await this.#beat(true)
    let changed = 0
    for (const users of chunks([...hooks.devices().keys()], BATCH)) {
      // Counts read now, as the command is sent (see #setCounts).
      const counts = hooks.devices()
      const result = await this.#setCounts(
        users.map((u) => [u, counts.get(u) ?? 0]),
        false,
      )
      result.forEach(({ publish }, i) => {
        if (!publish) return
        changed++
        // A failed recheck is logged and retried by the tracker.
        hooks.recheck(users[i] as string).catch(() => {})
      })
    }
    // Users counted here in Redis that this node does not hold, and users whose publish is
    // still marked: a change under way (skipped), or one that failed.
    const [listed, pending] = await Promise.all([
      this.#redis.smembers(this.#usersKey(this.#node)),
      this.#redis.smembers(this.#pendingKey(this.#node)),
    ])
    const stale = [...new Set([...listed.filter((u) => !hooks.devices().has(u)), ...pending])]
    for (const u of stale) hooks.recheck(u, { ifIdle: true }).catch(() => {})
    const fields = { reason, users: hooks.devices().size, changed, stale: stale.length }
    if (reason !== 'periodic')
      this.#log.info({ event: 'presence_reasserted', ...fields }, 'this node’s device counts written again')
    else if (changed > 0)
      this.#log.warn({ event: 'presence_drift', ...fields }, 'device counts in Redis had drifted; repaired')
    else this.#log.debug({ event: 'presence_reconciled', ...fields }, 'device counts checked')
  }

  async #findDead(): Promise<void> {
    if (this.#stopped) return
    // Back from an outage: every node's key may have lapsed meanwhile. The live ones beat again
    // within ioredis' retry delay; until they have, nobody is counted out.
    if (Date.now() - this.#backAt < HEARTBEAT_LIVES * this.#heartbeatMs) return
    if (!this.#reapingResumed) {
      this.#reapingResumed = true
      this.#log.info(
        { event: 'reaping_resumed' },
        'Redis is back for 3 heartbeats: counting out dead nodes again',
      )
    }
    for (const node of await this.#redis.smembers('natter:nodes')) {
      if (node === this.#node || (await this.#redis.exists(this.#heartbeatKey(node)))) continue
      // One survivor at a time cleans up after a dead node; the claim is given back at the end,
      // and lapses if this node dies meanwhile.
      const claimed = await this.#redis.set(`natter:reap:${node}`, this.#boot, 'PX', this.#claimMs(), 'NX')
      if (claimed) await this.#reap(node, false)
    }
  }

  /** How long a reap claim lasts unless extended (ms): it lapses when its holder dies. */
  #claimMs(): number {
    return REAP_CLAIM_HEARTBEATS * this.#heartbeatMs
  }

  /**
   * Counts out a dead node (force: this node's own earlier life, whatever its key says): removes
   * its counts, publishes again the state of each of its users who has no device left or whom it
   * was publishing, and takes each user off its lists once that is out. Stops, leaving the rest,
   * if the node beats again; gives the node up when its lists are empty.
   */
  async #reap(node: string, force: boolean): Promise<void> {
    const hooks = this.#hooks
    if (!hooks) return
    const flag = force ? '1' : '0'
    const lists = [this.#heartbeatKey(node), this.#usersKey(node), this.#pendingKey(node)]
    const claim = `natter:reap:${node}`
    const lastSeen = Number((await this.#redis.hget('natter:node-seen', node)) ?? Date.now())
    const users = [...new Set((await this.#redis.sunion(lists[1] as string, lists[2] as string)) ?? [])]
    let counted = 0
    let published = 0
    for (const batch of chunks(users, BATCH)) {
      if (this.#stopped) return
      if (!force) await this.#redis.eval(EXTEND_CLAIM, 1, claim, this.#boot, String(this.#claimMs()))
      const keys = [...lists, ...batch.map((u) => this.#countsKey(u))]
      const again = (await this.#redis.eval(FORGET, keys.length, ...keys, node, flag, ...batch)) as
        | number[]
        | null
      if (!again) {
        this.#log.info({ event: 'reap_abandoned', node }, 'a node thought dead beats again')
        break
      }
      // A user whose state could not be published stays on the lists: the next look for dead
      // nodes finds this one again and retries.
      const results = await Promise.allSettled(
        batch
          .filter((_, i) => again[i] === 1)
          .map(async (u) => {
            await hooks.recheck(u, { lastSeen })
            await this.#redis.eval(FORGET_USER, lists.length, ...lists, flag, u)
          }),
      )
      counted += batch.length
      published += results.filter((r) => r.status === 'fulfilled').length
    }
    const keys = [...lists, 'natter:nodes', 'natter:node-seen', claim]
    await this.#redis.eval(FINISH_REAP, keys.length, ...keys, node, flag, this.#boot)
    if (counted)
      this.#log.info(
        { event: 'node_reaped', node, users: counted, published },
        'a dead node’s devices were counted out',
      )
  }
}
