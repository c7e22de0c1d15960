import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { ADMIN_PREFIX } from '../services/admin/admin-api.ts'
import { HttpError, sendError, sendJson } from '../services/requests/http-errors.ts'
import { requestTarget } from '../services/requests/request-target.ts'
import type { Cors } from './cors.ts'

type Api = (req: IncomingMessage, res: ServerResponse, op: string) => Promise<void>
type Objects = { prefix: string; serve: (req: IncomingMessage, res: ServerResponse) => Promise<void> }

/** The routes of this module, with their methods (the web chat's and the API's are their own). */
const PROBES = new Set(['/healthz', '/readyz', '/metrics'])

// Errors of a request whose client went away: nothing to answer, and no fault of the server.
const CLIENT_GONE = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'])

/**
 * A body left unread by a refusal (a 401 before the body, a 413 halfway) is read and dropped
 * before the answer, up to this many bytes and this long: answering first and closing (what Node
 * does with an unread body) resets the connection under a client still sending, which then never
 * sees the answer. Past either bound, the answer goes out at once and the connection closes.
 */
const DRAIN_MAX_BYTES = 8 * 1024 * 1024
const DRAIN_MAX_MS = 5000

/**
 * Natter's HTTP port: liveness, readiness, Prometheus metrics, the operations over REST
 * (/v1/<op>), the admin API (/admin/v1/), the web chat, and on the embedded default the signed media URLs of the disk store.
 *
 * Every request goes through one catch-all: an HttpError a route throws is answered with its
 * code and the code's status (4xx), a client that went away is left alone, and anything else is
 * a server fault, logged and answered 500 `internal`. So no input a client sends can make it
 * answer 5xx unless the server itself failed, nor throw out of the request listener (which
 * would end the process).
 */
export function createHttpHandler(o: {
  isReady: () => boolean
  api: Api
  log: Logger
  metrics: Registry
  objects?: Objects | undefined
  /** The admin API (services/admin/admin-api.ts): every path under /admin/v1/. */
  admin?: ((req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>) | undefined
  /** The web chat: a promise when the request is one of its own, undefined otherwise. */
  web?: { handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> | undefined } | undefined
  /** CORS (broker/cors.ts) for /v1/<op> and, with the web chat, /dev/token; never the admin API. */
  cors?: Cors | undefined
}) {
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = requestTarget(req.url)
    if (!url) throw new HttpError('bad_request', 'the request target is not a path')
    const path = url.pathname
    if (o.objects && path.startsWith(o.objects.prefix)) return o.objects.serve(req, res)
    if (o.admin && path.startsWith(ADMIN_PREFIX)) return o.admin(req, res, url)
    const api = /^\/v1\/([a-z.]+)$/.exec(path)
    const corsRoute = api?.[1] ? 'api' : o.web && path === '/dev/token' ? 'dev-token' : undefined
    // Headers set here stay on whatever answer follows, a refusal of the catch-all included.
    if (corsRoute && o.cors?.handle(req, res, corsRoute)) return
    if (api?.[1]) return o.api(req, res, api[1])
    const web = o.web?.handle(req, res, url)
    if (web) return web
    if (!PROBES.has(path)) throw new HttpError('not_found', `no route ${path}`)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new HttpError('method_not_allowed', 'use GET', { allow: 'GET, HEAD' })
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' })
    if (path === '/readyz') {
      return o.isReady()
        ? sendJson(res, 200, { status: 'ready' })
        : sendJson(res, 503, { status: 'not_ready' })
    }
    const text = await o.metrics.metrics()
    res.writeHead(200, { 'content-type': o.metrics.contentType }).end(text)
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res)
      .catch((err: unknown) => answerFailure(req, res, err, o.log))
      .catch((err: unknown) => {
        o.log.error({ err }, 'http error answer failed')
        res.destroy()
      })
  }
}

/** The catch-all's answer to what a route threw (see createHttpHandler). */
async function answerFailure(
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  log: Logger,
): Promise<void> {
  const path = requestTarget(req.url)?.pathname
  const code = (err as { code?: unknown } | null)?.code
  if (!(err instanceof HttpError)) {
    if (req.socket.destroyed || res.destroyed || (typeof code === 'string' && CLIENT_GONE.has(code))) {
      log.debug({ event: 'http_client_gone', method: req.method, path, code }, 'client went away')
      return void res.destroy()
    }
    log.error({ err, method: req.method, path }, 'http request failed')
  }
  if (res.headersSent) return void res.destroy()
  if (!(await drained(req))) res.setHeader('connection', 'close')
  if (err instanceof HttpError) sendError(res, err.code, err.message, err.headers)
  else sendError(res, 'internal', 'the request failed on the server')
}

/** Reads what is left of a request body and drops it; false past the bounds of DRAIN_MAX_BYTES. */
function drained(req: IncomingMessage): Promise<boolean> {
  if (req.complete) return Promise.resolve(true)
  if (req.destroyed) return Promise.resolve(false)
  if (Number(req.headers['content-length'] ?? 0) > DRAIN_MAX_BYTES) return Promise.resolve(false)
  return new Promise((resolve) => {
    let seen = 0
    const onData = (chunk: Buffer) => {
      seen += chunk.length
      if (seen > DRAIN_MAX_BYTES) finish(false)
    }
    const onEnd = () => finish(true)
    const onClose = () => finish(req.complete)
    const timer = setTimeout(() => finish(false), DRAIN_MAX_MS)
    const finish = (ok: boolean) => {
      clearTimeout(timer)
      req.off('data', onData).off('end', onEnd).off('close', onClose)
      req.pause()
      resolve(ok)
    }
    req.on('data', onData).once('end', onEnd).once('close', onClose)
    req.resume()
  })
}
