import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TokenVerifier } from '../auth/token-verifier.ts'
import { TokenError } from '../auth/token-verifier.ts'
import type { ErrorCode } from './envelope.ts'
import type { RequestRouter } from './router.ts'

const MAX_BODY = 1024 * 1024

const statusOf: Record<ErrorCode, number> = {
  bad_request: 400,
  unknown_operation: 404,
  forbidden_topic: 403,
  retain_not_allowed: 400,
  token_expired: 401,
  chat_not_found: 404,
  not_found: 404,
  not_allowed: 403,
  too_many_members: 422,
  too_large: 413,
  rate_limited: 429,
  media_not_found: 404,
  unsupported_media_type: 415,
  upload_incomplete: 409,
  checksum_mismatch: 422,
  invalid_image: 422,
  internal: 500,
}

/**
 * The same operations as over MQTT, for clients that prefer REST: POST /v1/<op> with the JWT
 * as Bearer token and the params as the JSON body. One router serves both, so an operation
 * cannot differ between the two.
 */
export function createHttpApi(d: { verify: TokenVerifier; router: RequestRouter }) {
  return async (req: IncomingMessage, res: ServerResponse, op: string): Promise<void> => {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`)
    }
    const fail = (status: number, code: string, message: string) => json(status, { error: { code, message } })
    if (req.method !== 'POST') return fail(405, 'method_not_allowed', 'use POST')
    const auth = req.headers.authorization ?? ''
    let token: Awaited<ReturnType<TokenVerifier>>
    try {
      token = await d.verify(auth.startsWith('Bearer ') ? auth.slice(7).trim() : undefined)
    } catch (err) {
      const problem = err instanceof TokenError ? err.problem : 'malformed'
      res.setHeader('www-authenticate', `Bearer error="invalid_token"`)
      return fail(401, 'unauthorized', `bad or missing Bearer token (${problem})`)
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > MAX_BODY) return fail(413, 'too_large', `request body over ${MAX_BODY} bytes`)
      chunks.push(chunk as Buffer)
    }
    let params: unknown = {}
    if (size > 0) {
      try {
        params = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return fail(400, 'bad_request', 'body is not JSON')
      }
    }
    const who = { userId: token.userId, deviceId: 'http', clientId: `${token.userId}/http` }
    const outcome = await d.router.route(
      { who, tokenExpiresAt: token.expiresAt },
      `req/${op}`,
      Buffer.from(JSON.stringify({ id: 'http', params })),
    )
    if ('notice' in outcome) return fail(400, outcome.notice.code, outcome.notice.message)
    const reply = outcome.reply
    if (reply.ok) return json(200, { result: reply.result })
    return fail(statusOf[reply.error.code], reply.error.code, reply.error.message)
  }
}
