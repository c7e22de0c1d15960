import type { z } from 'zod'
import type { DeviceIdentity } from '../auth/identity.ts'
import { type ErrorNotice, NatterError, type Reply, requestSchema } from './envelope.ts'

export interface RequestContext {
  who: DeviceIdentity
  /** When the connection's token expires, ms since the epoch. */
  tokenExpiresAt: number
  /**
   * Whether the caller is a device on a live MQTT connection (a request over MQTT); false or
   * absent for HTTP calls, whose device id is the pseudo-device `http`.
   */
  connected?: boolean
}

interface Operation<S extends z.ZodType> {
  params: S
  handle: (ctx: RequestContext, params: z.infer<S>) => Promise<unknown> | unknown
}

export type RouteOutcome = { reply: Reply } | { notice: ErrorNotice }

/**
 * The request/response convention: a device publishes {id, params} to req/<op> and gets
 * {id, ok, result|error} on its own reply topic. A payload too broken to carry an id is
 * answered on the device's error topic instead.
 */
export class RequestRouter {
  readonly #ops = new Map<string, Operation<z.ZodType>>()
  readonly #guards = new Map<string, (ctx: RequestContext) => Promise<void> | void>()

  register<S extends z.ZodType>(op: string, operation: Operation<S>): this {
    if (this.#ops.has(op)) throw new Error(`operation ${op} registered twice`)
    this.#ops.set(op, operation as unknown as Operation<z.ZodType>)
    return this
  }

  get operations(): string[] {
    return [...this.#ops.keys()].sort()
  }

  /**
   * Runs `check` before every call of `op` that passed validation, over MQTT and HTTP alike; a
   * NatterError it throws is the reply (a rate limit: services/limits/).
   */
  guard(op: string, check: (ctx: RequestContext) => Promise<void> | void): this {
    this.#guards.set(op, check)
    return this
  }

  /**
   * Answers a request with `err` without running it (a request over a rate limit): a reply when
   * the payload carries an id, else a notice for the error topic.
   */
  refuse(topic: string, payload: Buffer, err: NatterError): RouteOutcome {
    let id: unknown
    try {
      id = (JSON.parse(payload.toString('utf8')) as { id?: unknown })?.id
    } catch {}
    if (requestSchema.shape.id.safeParse(id).success) return { reply: fail(id as string, err) }
    return { notice: { topic, ...errorBody(err) } }
  }

  async route(ctx: RequestContext, topic: string, payload: Buffer): Promise<RouteOutcome> {
    let json: unknown
    try {
      json = JSON.parse(payload.toString('utf8'))
    } catch {
      return { notice: { topic, code: 'bad_request', message: 'payload is not JSON' } }
    }
    const envelope = requestSchema.safeParse(json)
    if (!envelope.success) {
      const ref = typeof (json as { id?: unknown })?.id === 'string' ? (json as { id: string }).id : undefined
      return {
        notice: {
          topic,
          code: 'bad_request',
          message: `request must be {"id": string, "params"?: object}: ${envelope.error.issues[0]?.message}`,
          ...(ref ? { ref } : {}),
        },
      }
    }
    const { id } = envelope.data
    const op = this.#ops.get(topic.slice('req/'.length))
    if (!op) {
      return { reply: fail(id, new NatterError('unknown_operation', `no operation ${topic.slice(4)}`)) }
    }
    const params = op.params.safeParse(envelope.data.params ?? {})
    if (!params.success) {
      const issue = params.error.issues[0]
      const where = issue?.path.length ? `params.${issue.path.join('.')}: ` : ''
      return { reply: fail(id, new NatterError('bad_request', `${where}${issue?.message ?? 'invalid'}`)) }
    }
    try {
      await this.#guards.get(topic.slice('req/'.length))?.(ctx)
      return { reply: { id, ok: true, result: await op.handle(ctx, params.data) } }
    } catch (err) {
      if (err instanceof NatterError) return { reply: fail(id, err) }
      throw err
    }
  }
}

function errorBody(err: NatterError) {
  return {
    code: err.code,
    message: err.message,
    ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}),
    ...(err.epoch !== undefined ? { epoch: err.epoch } : {}),
  }
}

function fail(id: string, err: NatterError): Reply {
  return { id, ok: false, error: errorBody(err) }
}
