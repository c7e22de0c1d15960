import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from 'rate-limiter-flexible'
import type { Rate } from './rate.ts'

/** Every limit, by what it counts and per what: the `limit` label of the metrics. */
export const limitNames = [
  'sends_per_device',
  'sends_per_user',
  'requests_per_device',
  'requests_per_user',
  'typing_per_device',
  'typing_per_user',
  'uploads_per_device',
  'uploads_per_user',
  'connects_per_ip',
  'connects_per_user',
  'http_per_token',
] as const
export type LimitName = (typeof limitNames)[number]

/**
 * Limits counted on each node alone: a device is connected to one node at a time, so its count
 * needs no round trip to Redis. A device that reconnects elsewhere starts a new count there, and
 * is still held by its user's limit (shared) and the connect limits.
 */
const NODE_LOCAL = new Set<LimitName>([
  'sends_per_device',
  'requests_per_device',
  'typing_per_device',
  'uploads_per_device',
])

/** A limit that has no room: which one, and in how many ms it has (at least 1). */
export interface Verdict {
  limit: LimitName
  waitMs: number
}

/** What the limits report (services/metrics/limit-metrics.ts). */
export interface LimitTelemetry {
  /** A publish was held back by a limit (its PUBACK delayed), then let through. */
  delayed(limit: LimitName): void
  /** Something over a limit was refused (or dropped, for typing). */
  refused(limit: LimitName): void
}

const ADMITTED: Promise<Verdict | null> = Promise.resolve(null)
const admitted = () => null

/**
 * Natter's rate limits on rate-limiter-flexible: fixed windows of `points` per `seconds`, kept in
 * memory on the embedded default. In a cluster (a Redis client given) the limits per user, IP and
 * token are counted in Redis, so that they hold across nodes for a user connected to two; a key
 * over its limit is then answered from memory until its window ends (no Redis call per refused
 * attempt), and while Redis cannot be reached each node counts alone (the insurance limiter)
 * rather than waiting for it.
 */
export class RateLimits {
  readonly #limiters = new Map<LimitName, RateLimiterAbstract>()
  /** One rejection handler per limit, made once: no closure per check. */
  readonly #onOver = new Map<LimitName, (res: unknown) => Verdict | null>()
  readonly #telemetry: LimitTelemetry
  readonly #log: Logger
  #storeErrorLogged = 0

  constructor(d: {
    /** Each limit's rate; null or absent: no limit. */
    rates: Partial<Record<LimitName, Rate | null>>
    /** Set in a cluster; best with enableOfflineQueue off, so that an absent Redis fails at once. */
    redis?: Redis
    log: Logger
    telemetry: LimitTelemetry
  }) {
    this.#telemetry = d.telemetry
    this.#log = d.log
    for (const name of limitNames) {
      const rate = d.rates[name]
      if (!rate) continue
      const keyPrefix = `natter:limit:${name}`
      const memory = () => new RateLimiterMemory({ keyPrefix, points: rate.points, duration: rate.seconds })
      this.#limiters.set(
        name,
        d.redis && !NODE_LOCAL.has(name)
          ? new RateLimiterRedis({
              storeClient: d.redis,
              keyPrefix,
              points: rate.points,
              duration: rate.seconds,
              inMemoryBlockOnConsumed: rate.points + 1,
              rejectIfRedisNotReady: true,
              insuranceLimiter: memory(),
            })
          : memory(),
      )
      this.#onOver.set(name, (res) => this.#over(name, res))
    }
  }

  /** Whether a limit is set (not "off"). */
  has(name: LimitName): boolean {
    return this.#limiters.has(name)
  }

  /**
   * Counts one against `name` for `key`: resolves null when there was room, or with the verdict
   * when there was none (the attempt still counts, as in any fixed window). Never rejects: a
   * failing store admits (and is logged).
   */
  check(name: LimitName, key: string): Promise<Verdict | null> {
    const limiter = this.#limiters.get(name)
    if (limiter === undefined) return ADMITTED
    return limiter.consume(key).then(admitted, this.#onOver.get(name))
  }

  /**
   * Counts one against two limits (a device's and its user's): `a` first, then `b` only if `a`
   * had room; when `b` has none, `a`'s count is given back, so a refused attempt costs the device
   * nothing beyond the user's limit.
   */
  async checkPair(a: LimitName, aKey: string, b: LimitName, bKey: string): Promise<Verdict | null> {
    const first = await this.check(a, aKey)
    if (first) return first
    const second = await this.check(b, bKey)
    if (second)
      this.#limiters
        .get(a)
        ?.reward(aKey, 1)
        .catch(() => {})
    return second
  }

  delayed(limit: LimitName): void {
    this.#telemetry.delayed(limit)
  }

  refused(limit: LimitName): void {
    this.#telemetry.refused(limit)
  }

  #over(name: LimitName, res: unknown): Verdict | null {
    if (res instanceof RateLimiterRes)
      return { limit: name, waitMs: Math.max(1, Math.ceil(res.msBeforeNext)) }
    // Not a verdict: the store failed and had no fallback. Admitting is the lesser harm; said
    // at most once a minute.
    const now = Date.now()
    if (now - this.#storeErrorLogged > 60_000) {
      this.#storeErrorLogged = now
      this.#log.warn({ err: res, limit: name }, 'rate limit store failed; admitting')
    }
    return null
  }
}
