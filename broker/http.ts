import type { IncomingMessage, ServerResponse } from 'node:http'

/** Natter's HTTP port: liveness and readiness now; REST and media arrive on it later. */
export function createHttpHandler(isReady: () => boolean) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return json(405, { error: { code: 'method_not_allowed', message: 'use GET' } })
    }
    if (path === '/healthz') return json(200, { status: 'ok' })
    if (path === '/readyz') {
      return isReady() ? json(200, { status: 'ready' }) : json(503, { status: 'not_ready' })
    }
    json(404, { error: { code: 'not_found', message: `no route ${path}` } })
  }
}
