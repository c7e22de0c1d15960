import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { build } from 'esbuild'
import type { Logger } from 'pino'
import { signDevToken } from '../services/auth/dev-token.ts'

const WEB = new URL('../web/', import.meta.url)
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1'])
const DEV_TOKEN_TTL_SECONDS = 3600

export interface WebApp {
  /** Serves the request when it is the web app's; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean
}

/**
 * The web chat on Natter's HTTP port: the page, its script (the client SDK and the app, bundled
 * by esbuild on first request and kept in memory), and on the embedded default dev tokens for
 * any name, given only to requests from this machine.
 */
export function createWebApp(o: {
  /** The MQTT-over-WebSocket URL for a page loaded from this request's host. */
  wsUrl: (host: string) => string
  /** Set on the embedded default (the generated dev secret): signs dev tokens. */
  devSecret: Uint8Array | undefined
  issuer?: string | undefined
  audience?: string | undefined
  log: Logger
}): WebApp {
  let bundle: Promise<string> | undefined
  const script = () => {
    bundle ??= build({
      entryPoints: [new URL('app.ts', WEB).pathname],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      write: false,
      logLevel: 'silent',
    }).then(
      (r) => r.outputFiles[0]?.text ?? '',
      (err: unknown) => {
        bundle = undefined
        throw err
      },
    )
    return bundle
  }
  const send = (res: ServerResponse, status: number, type: string, body: string): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-cache' }).end(body)
  }
  const json = (res: ServerResponse, status: number, body: unknown): void =>
    send(res, status, 'application/json', `${JSON.stringify(body)}\n`)
  const fail = (res: ServerResponse, err: unknown) => {
    o.log.error({ err }, 'web app request failed')
    if (!res.headersSent)
      json(res, 500, { error: { code: 'internal', message: 'the web app failed to load' } })
  }

  return {
    handle(req, res) {
      const path = new URL(req.url ?? '/', 'http://x').pathname
      if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
        readFile(new URL('index.html', WEB), 'utf8').then(
          (html) => send(res, 200, 'text/html; charset=utf-8', html),
          (e) => fail(res, e),
        )
        return true
      }
      if (req.method === 'GET' && path === '/style.css') {
        readFile(new URL('style.css', WEB), 'utf8').then(
          (css) => send(res, 200, 'text/css; charset=utf-8', css),
          (e) => fail(res, e),
        )
        return true
      }
      if (req.method === 'GET' && path === '/app.js') {
        script().then(
          (js) => send(res, 200, 'text/javascript; charset=utf-8', js),
          (e) => fail(res, e),
        )
        return true
      }
      if (req.method === 'GET' && path === '/web/config.json') {
        const host = (req.headers.host ?? 'localhost').replace(/:\d+$/, '')
        json(res, 200, { wsUrl: o.wsUrl(host), devTokens: o.devSecret !== undefined })
        return true
      }
      if (req.method === 'POST' && path === '/dev/token') {
        devToken(req, res).catch((e: unknown) => fail(res, e))
        return true
      }
      return false
    },
  }

  async function devToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!o.devSecret) {
      return json(res, 404, {
        error: {
          code: 'not_found',
          message: 'dev tokens exist only on the embedded default (no NATTER_JWT_SECRET)',
        },
      })
    }
    // Anyone who can reach this could be anyone: only this machine gets dev tokens.
    if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
      return json(res, 403, {
        error: { code: 'not_allowed', message: 'dev tokens are given to local requests only' },
      })
    }
    let body = ''
    for await (const chunk of req) {
      body += chunk
      if (body.length > 1024)
        return json(res, 413, { error: { code: 'too_large', message: 'body over 1 KB' } })
    }
    let userId: unknown
    try {
      userId = (JSON.parse(body) as { userId?: unknown }).userId
    } catch {
      return json(res, 400, { error: { code: 'bad_request', message: 'body must be {"userId": "…"}' } })
    }
    if (typeof userId !== 'string') {
      return json(res, 400, { error: { code: 'bad_request', message: 'body must be {"userId": "…"}' } })
    }
    try {
      const token = await signDevToken({
        secret: o.devSecret,
        userId,
        ttlSeconds: DEV_TOKEN_TTL_SECONDS,
        issuer: o.issuer,
        audience: o.audience,
      })
      json(res, 200, { token, expiresInSeconds: DEV_TOKEN_TTL_SECONDS })
    } catch (err) {
      json(res, 400, { error: { code: 'bad_request', message: (err as Error).message } })
    }
  }
}
