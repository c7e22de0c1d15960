import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TokenVerifier, VerifiedToken } from '../auth/token-verifier.ts'
import { TokenError } from '../auth/token-verifier.ts'
import { type ErrorBody, httpStatusOf } from './envelope.ts'
import { HttpError, sendJson } from './http-errors.ts'
import { parseJsonBody, readBody } from './json-body.ts'
import type { RequestRouter } from './router.ts'

/** Largest body of POST /v1/<op>, in bytes (docs/protocol.md#over-http). */
export const MAX_BODY_BYTES = 1024 * 1024
/**
 * Deepest nesting of arrays and objects in a body. The deepest params of any operation nest 2;
 * the bound keeps every recursive walk of a body (validation, JSON.stringify) far from the stack
 * limit, which a few thousand levels reach.
 */
export const MAX_JSON_DEPTH = 32

/**
 * The same operations as over MQTT, for clients that prefer REST: POST /v1/<op> with the JWT
 * as Bearer token and the params as the JSON body. One router serves both, so an operation
 * cannot differ between the two. Refusals are thrown as HttpError (answered by the HTTP port's
 * catch-all, broker/http.ts); an operation's own error is answered here with its code's status.
 */
export function createHttpApi(d: {
  verify: TokenVerifier
  router: RequestRouter
  /** The rate limit per token (services/limits/): 0, or ms until the next call may pass. */
  limit?: (authorization: string) => Promise<number>
}) {
  return async (req: IncomingMessage, res: ServerResponse, op: string): Promise<void> => {
    if (req.method !== 'POST') throw new HttpError('method_not_allowed', 'use POST', { allow: 'POST' })
    const token = await authenticate(d.verify, req.headers.authorization)
    const retryAfterMs = (await d.limit?.(req.headers.authorization ?? '')) ?? 0
    if (retryAfterMs > 0) {
      throw new HttpError('rate_limited', `too many calls with this token: try again in ${retryAfterMs} ms`, {
        'retry-after': String(Math.ceil(retryAfterMs / 1000)),
      })
    }
    // The body is read only for a caller with a valid token, and at most MAX_BODY_BYTES of it.
    const params = parseJsonBody(await readBody(req, MAX_BODY_BYTES), MAX_JSON_DEPTH)
    const who = { userId: token.userId, deviceId: 'http', clientId: `${token.userId}/http` }
    const outcome = await d.router.route(
      { who, tokenExpiresAt: token.expiresAt },
      `req/${op}`,
      Buffer.from(JSON.stringify({ id: 'http', params })),
    )
    if ('notice' in outcome) return sendFailure(res, outcome.notice)
    if (outcome.reply.ok) return sendJson(res, 200, { result: outcome.reply.result })
    sendFailure(res, outcome.reply.error)
  }
}

/** An operation's refusal: its code, with the code's HTTP status. */
function sendFailure(res: ServerResponse, e: ErrorBody): void {
  if (e.retryAfterMs === undefined) {
    const epoch = e.epoch !== undefined ? { epoch: e.epoch } : {}
    sendJson(res, httpStatusOf(e.code), { error: { code: e.code, message: e.message, ...epoch } })
    return
  }
  // rate_limited: Retry-After in whole seconds (RFC 9110 §10.2.3), the exact ms in the body.
  sendJson(
    res,
    httpStatusOf(e.code),
    { error: { code: e.code, message: e.message, retryAfterMs: e.retryAfterMs } },
    { 'retry-after': String(Math.ceil(e.retryAfterMs / 1000)) },
  )
}

/**
 * The Bearer token of an Authorization header (RFC 6750 §2.1), verified as on MQTT CONNECT.
 * Throws HttpError 401: token_expired for a token past its exp, unauthorized for a missing or
 * any other bad one, with the WWW-Authenticate header RFC 6750 §3 asks for.
 */
async function authenticate(verify: TokenVerifier, header: string | undefined): Promise<VerifiedToken> {
  const bearer = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header ?? '')?.[1]
  if (bearer === undefined) {
    throw new HttpError('unauthorized', 'an Authorization: Bearer <JWT> header is required', {
      'www-authenticate': 'Bearer realm="natter"',
    })
  }
  try {
    return await verify(bearer)
  } catch (err) {
    if (!(err instanceof TokenError)) throw err
    const expired = err.problem === 'expired'
    throw new HttpError(
      expired ? 'token_expired' : 'unauthorized',
      expired ? 'the token has expired: get a fresh one' : `bad Bearer token (${err.problem})`,
      {
        'www-authenticate': `Bearer realm="natter", error="invalid_token", error_description="${expired ? 'token expired' : err.problem}"`,
      },
    )
  }
}
