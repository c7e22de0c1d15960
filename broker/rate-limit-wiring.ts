import { createHash } from 'node:crypto'
import type { Client } from 'aedes'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { Settings } from '../config/schema.ts'
import type { DeviceIdentity } from '../services/auth/identity.ts'
import { PublishThrottle } from '../services/limits/publish-throttle.ts'
import { parseRate } from '../services/limits/rate.ts'
import { type LimitName, RateLimits, type Verdict } from '../services/limits/rate-limits.ts'
import { createLimitMetrics } from '../services/metrics/limit-metrics.ts'
import { type ErrorNotice, NatterError } from '../services/requests/envelope.ts'
import type { RequestContext } from '../services/requests/router.ts'
import { redisOptions } from './redis-url.ts'

// A limit check against Redis that takes longer than this fails over to the node's own count.
const REDIS_COMMAND_TIMEOUT_MS = 500

const SETTING: Record<LimitName, keyof Settings> = {
  sends_per_device: 'limitSendsPerDevice',
  sends_per_user: 'limitSendsPerUser',
  requests_per_device: 'limitRequestsPerDevice',
  requests_per_user: 'limitRequestsPerUser',
  typing_per_device: 'limitTypingPerDevice',
  typing_per_user: 'limitTypingPerUser',
  uploads_per_device: 'limitUploadsPerDevice',
  uploads_per_user: 'limitUploadsPerUser',
  connects_per_ip: 'limitConnectsPerIp',
  connects_per_user: 'limitConnectsPerUser',
  http_per_token: 'limitHttpPerToken',
}

/** A node's rate limits, as the hooks, the send and request paths and the HTTP API use them. */
export interface RateLimitWiring {
  /** Chat sends, per device and per user, held up to NATTER_LIMIT_HOLD_MS. */
  sends: PublishThrottle
  /** Requests (req/<op>), per device and per user, held likewise. */
  requests: PublishThrottle
  /** A CONNECT from this client's address, before its token is checked. */
  connectFrom(client: Client): Promise<Verdict | null>
  /** An accepted CONNECT of this user. */
  connectOf(userId: string): Promise<Verdict | null>
  /** Whether a typing indicator passes (over the limit it is dropped). */
  typing(who: DeviceIdentity): Promise<boolean>
  /** Router guard of media.begin, over MQTT and HTTP: throws NatterError rate_limited. */
  upload(ctx: RequestContext): Promise<void>
  /**
   * Router guard of the `send` operation (HTTP POST /v1/send, req/send): the chat-send limits
   * per device and per user that c/<chatId>/send counts against, held up to NATTER_LIMIT_HOLD_MS
   * while they will have room, else throws NatterError rate_limited at once.
   */
  sendOperation(ctx: RequestContext): Promise<void>
  /** An HTTP API call with this token: 0, or the ms after which to retry. */
  http(token: string): Promise<number>
  close(): Promise<void>
}

/**
 * The notice for a chat send refused by a rate limit, naming its clientMsgId: the message was
 * not stored, and the device sends it again after retryAfterMs.
 */
export function rateLimitedNotice(topic: string, payload: Buffer, retryAfterMs: number): ErrorNotice {
  let ref: unknown
  try {
    ref = (JSON.parse(payload.toString('utf8')) as { clientMsgId?: unknown } | null)?.clientMsgId
  } catch {}
  return {
    topic,
    code: 'rate_limited',
    message: `too many messages: not stored; send it again in ${retryAfterMs} ms`,
    retryAfterMs,
    ...(typeof ref === 'string' ? { ref } : {}),
  }
}

/** The IP address a client connected from: its TCP socket's, or the WebSocket upgrade request's. */
export function remoteAddress(client: Client): string | undefined {
  return (
    (client.conn as { remoteAddress?: string } | undefined)?.remoteAddress ??
    client.req?.socket?.remoteAddress
  )
}

/**
 * Builds the rate limits from the settings: in memory on the embedded default; with a Redis
 * connection of their own in a cluster, which fails at once while Redis is away (no offline
 * queue) so that a limit check never waits for Redis to come back.
 */
export function wireRateLimits(d: { settings: Settings; registry: Registry; log: Logger }): RateLimitWiring {
  const { settings, log } = d
  let redis: Redis | undefined
  if (settings.redisUrl) {
    const { url, options } = redisOptions(settings.redisUrl)
    const o = {
      ...options,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    }
    redis = url ? new Redis(url, o) : new Redis(o)
    let down = false
    redis.on('error', (err: Error) => {
      if (!down)
        log.warn({ event: 'redis_error', role: 'limits', err: err.message }, 'rate limits count per node')
      down = true
    })
    redis.on('ready', () => {
      down = false
    })
  }
  const rates = Object.fromEntries(
    Object.entries(SETTING).map(([name, key]) => [name, parseRate(String(settings[key]))]),
  )
  const limits = new RateLimits({ rates, redis, log, telemetry: createLimitMetrics(d.registry) })
  const holdMs = settings.limitHoldMs

  const refuseOver = (verdict: Verdict | null) => {
    if (verdict) limits.refused(verdict.limit)
    return verdict
  }
  return {
    sends: new PublishThrottle({ limits, perDevice: 'sends_per_device', perUser: 'sends_per_user', holdMs }),
    requests: new PublishThrottle({
      limits,
      perDevice: 'requests_per_device',
      perUser: 'requests_per_user',
      holdMs,
    }),
    connectFrom: (client) =>
      limits.check('connects_per_ip', remoteAddress(client) ?? 'unknown').then(refuseOver),
    connectOf: (userId) => limits.check('connects_per_user', userId).then(refuseOver),
    typing: (who) =>
      limits
        .checkPair('typing_per_device', who.clientId, 'typing_per_user', who.userId)
        .then((v) => refuseOver(v) === null),
    upload: async (ctx) => {
      const v = refuseOver(
        await limits.checkPair('uploads_per_device', ctx.who.clientId, 'uploads_per_user', ctx.who.userId),
      )
      if (v) {
        throw new NatterError(
          'rate_limited',
          `too many uploads (${v.limit.replace(/_/g, ' ')}): try again in ${v.waitMs} ms`,
          v.waitMs,
        )
      }
    },
    sendOperation: async (ctx) => {
      const arrived = Date.now()
      let heldBy: LimitName | undefined
      for (;;) {
        const v = await limits.checkPair(
          'sends_per_device',
          ctx.who.clientId,
          'sends_per_user',
          ctx.who.userId,
        )
        if (v === null) {
          if (heldBy) limits.delayed(heldBy)
          return
        }
        // No connection to hold back here (HTTP calls have their own limit per token): a send
        // that would wait past the hold is refused at once.
        if (Date.now() + v.waitMs - arrived > holdMs) {
          limits.refused(v.limit)
          throw new NatterError(
            'rate_limited',
            `too many messages (${v.limit.replace(/_/g, ' ')}): not stored; send it again in ${v.waitMs} ms`,
            v.waitMs,
          )
        }
        heldBy ??= v.limit
        await new Promise((resolve) => setTimeout(resolve, v.waitMs).unref())
      }
    },
    http: async (token) => {
      if (!limits.has('http_per_token')) return 0
      // Counted by a digest: no token is kept in memory or Redis as a key.
      const key = createHash('sha256').update(token).digest('base64url').slice(0, 22)
      return refuseOver(await limits.check('http_per_token', key))?.waitMs ?? 0
    },
    close: async () => {
      redis?.disconnect()
    },
  }
}
