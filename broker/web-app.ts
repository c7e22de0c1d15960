import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { build } from 'esbuild'
import { signDevToken } from '../services/auth/dev-token.ts'
import { isValidId } from '../services/auth/identity.ts'
import { HttpError, sendJson } from '../services/requests/http-errors.ts'
import { parseJsonBody, readBody } from '../services/requests/json-body.ts'
import { createHostCheck } from './host-check.ts'

const WEB = new URL('../web/', import.meta.url)
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1'])
const DEV_TOKEN_TTL_SECONDS = 3600
/** `{"userId": "…"}` and nothing more: bytes, and nesting of arrays and objects. */
const DEV_TOKEN_BODY = { maxBytes: 1024, maxDepth: 2 }

export interface WebApp {
  /**
   * Serves the request when it is one of the web app's routes: a promise that rejects with an
   * HttpError for a refusal (the HTTP port's catch-all answers it). Undefined otherwise.
   */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> | undefined
}

/**
 * The web chat on Natter's HTTP port: the page, its script (the client SDK and the app, bundled
 * by esbuild on first request and kept in memory), and on the embedded default dev tokens for
 * any name, given only to requests from this machine. Every route checks Host and Origin
 * (broker/host-check.ts) against DNS rebinding.
 */
export function createWebApp(o: {
  /** The MQTT-over-WebSocket URL for a page loaded from this request's host. */
  wsUrl: (host: string) => string
  /** Set on the embedded default (the generated dev secret): signs dev tokens. */
  devSecret: Uint8Array | undefined
  issuer?: string | undefined
  audience?: string | undefined
  /** Host names the pages may be loaded from (allowedHosts of broker/host-check.ts). */
  hosts: readonly string[]
  /** Origins besides this server's own whose pages may ask for dev tokens (Cors.allowsDevTokens). */
  devTokenOrigins?: ((origin: string) => boolean) | undefined
}): WebApp {
  const checkHost = createHostCheck(o.hosts)
  let bundle: Promise<string> | undefined
  const script = () => {
    bundle ??= build({
      entryPoints: [new URL('app.tsx', WEB).pathname],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      jsx: 'automatic',
      jsxImportSource: 'preact',
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
  const send = (res: ServerResponse, type: string, body: string): void => {
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' }).end(body)
  }
  const pages: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    '/': async (_req, res) =>
      send(res, 'text/html; charset=utf-8', await readFile(new URL('index.html', WEB), 'utf8')),
    '/style.css': async (_req, res) =>
      send(res, 'text/css; charset=utf-8', await readFile(new URL('style.css', WEB), 'utf8')),
    '/app.js': async (_req, res) => send(res, 'text/javascript; charset=utf-8', await script()),
    '/web/config.json': async (req, res) => {
      // The Host header passed the host check: a name this server answers to.
      const host = (req.headers.host ?? 'localhost').replace(/:\d+$/, '')
      sendJson(res, 200, { wsUrl: o.wsUrl(host), devTokens: o.devSecret !== undefined })
    },
  }
  pages['/index.html'] = pages['/'] as (typeof pages)[string]

  return {
    handle(req, res, url) {
      const path = url.pathname
      const page = pages[path]
      if (page) {
        return (async () => {
          checkHost(req)
          if (req.method !== 'GET' && req.method !== 'HEAD') {
            throw new HttpError('method_not_allowed', 'use GET', { allow: 'GET, HEAD' })
          }
          await page(req, res)
        })()
      }
      if (path === '/dev/token') {
        return (async () => {
          checkHost(req, o.devTokenOrigins)
          if (req.method !== 'POST') throw new HttpError('method_not_allowed', 'use POST', { allow: 'POST' })
          await devToken(req, res)
        })()
      }
      return undefined
    },
  }

  async function devToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!o.devSecret) {
      throw new HttpError('not_found', 'dev tokens exist only on the embedded default (no NATTER_JWT_SECRET)')
    }
    // Anyone who can reach this could be anyone: only this machine gets dev tokens.
    if (!LOOPBACK.has(req.socket.remoteAddress ?? '')) {
      throw new HttpError('not_allowed', 'dev tokens are given to local requests only')
    }
    const body = parseJsonBody(await readBody(req, DEV_TOKEN_BODY.maxBytes), DEV_TOKEN_BODY.maxDepth)
    const userId = (body as { userId?: unknown } | null)?.userId
    if (typeof userId !== 'string' || !isValidId(userId)) {
      throw new HttpError('bad_request', 'body must be {"userId": "…"}: 1-64 letters, digits or . _ @ : -')
    }
    const token = await signDevToken({
      secret: o.devSecret,
      userId,
      ttlSeconds: DEV_TOKEN_TTL_SECONDS,
      issuer: o.issuer,
      audience: o.audience,
    })
    sendJson(res, 200, { token, expiresInSeconds: DEV_TOKEN_TTL_SECONDS })
  }
}
