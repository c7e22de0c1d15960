import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'

type Api = (req: IncomingMessage, res: ServerResponse, op: string) => Promise<void>
type Objects = { prefix: string; serve: (req: IncomingMessage, res: ServerResponse) => Promise<void> }

/**
 * Natter's HTTP port: liveness, readiness, Prometheus metrics, the operations over REST
 * (/v1/<op>), and on the embedded default the signed media URLs of the disk store.
 */
export function createHttpHandler(o: {
  isReady: () => boolean
  api: Api
  log: Logger
  metrics: Registry
  objects?: Objects | undefined
  /** The web chat; serves the request when it is one of its own. */
  web?: { handle(req: IncomingMessage, res: ServerResponse): boolean } | undefined
}) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`)
    if (o.objects && path.startsWith(o.objects.prefix)) {
      o.objects.serve(req, res).catch((err: unknown) => {
        o.log.error({ err, path }, 'media request failed')
        if (!res.headersSent)
          json(500, { error: { code: 'internal', message: 'the request failed on the server' } })
        else res.destroy()
      })
      return
    }
    const api = /^\/v1\/([a-z.]+)$/.exec(path)
    if (api?.[1]) {
      o.api(req, res, api[1]).catch((err: unknown) => {
        o.log.error({ err, path }, 'http request failed')
        if (!res.headersSent)
          json(500, { error: { code: 'internal', message: 'the request failed on the server' } })
        else res.destroy()
      })
      return
    }
    if (o.web?.handle(req, res)) return
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return json(405, { error: { code: 'method_not_allowed', message: 'use GET' } })
    }
    if (path === '/healthz') return json(200, { status: 'ok' })
    if (path === '/metrics') {
      o.metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': o.metrics.contentType }).end(text),
        (err: unknown) => {
          o.log.error({ err }, 'metrics failed')
          json(500, { error: { code: 'internal', message: 'metrics failed' } })
        },
      )
      return
    }
    if (path === '/readyz') {
      return o.isReady() ? json(200, { status: 'ready' }) : json(503, { status: 'not_ready' })
    }
    json(404, { error: { code: 'not_found', message: `no route ${path}` } })
  }
}
