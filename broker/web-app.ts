import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { basename } from 'node:path'
import { promisify } from 'node:util'
import { brotliCompress, gzip, constants as zlib } from 'node:zlib'
import { build } from 'esbuild'
import { signDevToken } from '../services/auth/dev-token.ts'
import { isValidId } from '../services/auth/identity.ts'
import { HttpError, sendJson } from '../services/requests/http-errors.ts'
import { parseJsonBody, readBody } from '../services/requests/json-body.ts'
import { createHostCheck } from './host-check.ts'

const WEB = new URL('../web/', import.meta.url)
/** Where the content-hashed files are served: a name changes with its content, so they are kept for good. */
const ASSETS = '/assets/'
const IMMUTABLE = 'public, max-age=31536000, immutable'
const NO_CACHE = 'no-cache'
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
 * The web chat on Natter's HTTP port: the page, its script and stylesheet (the Preact app and the
 * client SDK, bundled and minified by esbuild on first request, kept in memory precompressed under
 * content-hashed names: cached for good, while index.html is revalidated), /favicon.ico, and on
 * the embedded default dev tokens for
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
  /** NATTER_MAX_TEXT_CHARS: the composer counts against it (characters, as the server counts). */
  maxTextChars: number
}): WebApp {
  const checkHost = createHostCheck(o.hosts)
  let built: Promise<Assets> | undefined
  const assets = () => {
    built ??= buildAssets().catch((err: unknown) => {
      built = undefined
      throw err
    })
    return built
  }
  const serve =
    (pick: (a: Assets) => Asset | undefined) => async (req: IncomingMessage, res: ServerResponse) => {
      const asset = pick(await assets())
      if (!asset) throw new HttpError('not_found', 'no such asset')
      sendAsset(req, res, asset)
    }
  const pages: Partial<Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>>> = {
    '/': serve((a) => a.html),
    // The unhashed names of earlier versions: the same files, revalidated each time.
    '/style.css': serve(
      (a) => a.byName.get(a.cssName) && { ...(a.byName.get(a.cssName) as Asset), cache: NO_CACHE },
    ),
    // A module that imports the hashed app: the app's own relative imports of its chunks then
    // resolve under /assets/ (served here as the app itself, they would resolve at the root).
    '/app.js': serve((a) => a.legacyJs),
    '/favicon.ico': serve((a) => a.favicon),
    '/web/config.json': async (req, res) => {
      // The Host header passed the host check: a name this server answers to.
      const host = (req.headers.host ?? 'localhost').replace(/:\d+$/, '')
      sendJson(res, 200, {
        wsUrl: o.wsUrl(host),
        devTokens: o.devSecret !== undefined,
        maxTextChars: o.maxTextChars,
      })
    },
  }
  pages['/index.html'] = pages['/']

  return {
    handle(req, res, url) {
      const path = url.pathname
      const name = path.startsWith(ASSETS) ? path.slice(ASSETS.length) : undefined
      const page = pages[path] ?? (name !== undefined ? serve((a) => a.byName.get(name)) : undefined)
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

/** One file of the web chat, with its compressed forms. */
interface Asset {
  type: string
  cache: string
  etag: string
  body: Buffer
  br: Buffer
  gzip: Buffer
}

interface Assets {
  html: Asset
  favicon: Asset
  /** Content-hashed files under /assets/, by name. */
  byName: Map<string, Asset>
  jsName: string
  cssName: string
  /** /app.js of earlier pages: `import "/assets/app-<hash>.js"`, revalidated each time. */
  legacyJs: Asset
}

const brotli = promisify(brotliCompress)
const gzipped = promisify(gzip)

async function asset(type: string, body: Buffer, cache: string): Promise<Asset> {
  const [br, gz] = await Promise.all([
    brotli(body, {
      params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length },
    }),
    gzipped(body, { level: 9 }),
  ])
  return { type, cache, etag: `"${hashOf(body)}"`, body, br, gzip: gz }
}

const hashOf = (b: Buffer) => createHash('sha256').update(b).digest('base64url').slice(0, 12)

/**
 * The web chat's files, built once on first request: the app (web/app.tsx, Preact and the
 * client SDK) and the stylesheet, minified by esbuild under content-hashed names; index.html
 * naming them (and chunks, were splitting on: none now, see below); all precompressed
 * with brotli and gzip.
 */
async function buildAssets(): Promise<Assets> {
  const common = {
    bundle: true,
    minify: true,
    write: false,
    logLevel: 'silent',
    target: 'es2022',
  } as const
  const [js, css, html] = await Promise.all([
    build({
      ...common,
      entryPoints: [new URL('app.tsx', WEB).pathname],
      format: 'esm',
      platform: 'browser',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      // One file, the SDK's MLS client (ts-mls, ~40 KB brotli) in it: every signed-in tab is an
      // MLS client (web/session.ts) and imports it as it starts, and a tab reloaded without a
      // network must start (offlineStart) with no chunk left to fetch. Chunks, were splitting
      // turned on, are served beside the app under /assets/.
      splitting: false,
      outdir: ASSETS,
      entryNames: 'app',
      chunkNames: 'chunk-[hash]',
    }),
    build({ ...common, entryPoints: [new URL('style.css', WEB).pathname] }),
    readFile(new URL('index.html', WEB), 'utf8'),
  ])
  const entry = js.outputFiles.find((f) => basename(f.path) === 'app.js')
  const jsBody = Buffer.from(entry?.contents ?? new Uint8Array())
  // Chunks keep esbuild's names (content-hashed): the entry imports them by those, relative to /assets/.
  const chunks = await Promise.all(
    js.outputFiles
      .filter((f) => f !== entry)
      .map(
        async (f) =>
          [
            basename(f.path),
            await asset('text/javascript; charset=utf-8', Buffer.from(f.contents), IMMUTABLE),
          ] as const,
      ),
  )
  const cssBody = Buffer.from(css.outputFiles[0]?.contents ?? new Uint8Array())
  const jsName = `app-${hashOf(jsBody)}.js`
  const cssName = `style-${hashOf(cssBody)}.css`
  const page = html.replace('/style.css', `${ASSETS}${cssName}`).replace('/app.js', `${ASSETS}${jsName}`)
  const [jsAsset, cssAsset, htmlAsset, favicon, legacyJs] = await Promise.all([
    asset('text/javascript; charset=utf-8', jsBody, IMMUTABLE),
    asset('text/css; charset=utf-8', cssBody, IMMUTABLE),
    asset('text/html; charset=utf-8', Buffer.from(page), NO_CACHE),
    asset('image/svg+xml', Buffer.from(FAVICON), 'public, max-age=86400'),
    asset(
      'text/javascript; charset=utf-8',
      Buffer.from(`import ${JSON.stringify(ASSETS + jsName)}\n`),
      NO_CACHE,
    ),
  ])
  return {
    html: htmlAsset,
    favicon,
    byName: new Map([[jsName, jsAsset], [cssName, cssAsset], ...chunks]),
    jsName,
    cssName,
    legacyJs,
  }
}

const FAVICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#0a58ca"/><path d="M8 10h16v10H14l-6 5z" fill="#fff"/></svg>'

/** Sends an asset in the best encoding the request accepts (brotli, gzip, none); 304 for a known ETag. */
function sendAsset(req: IncomingMessage, res: ServerResponse, a: Asset): void {
  const headers: Record<string, string> = {
    'content-type': a.type,
    'cache-control': a.cache,
    etag: a.etag,
    vary: 'accept-encoding',
  }
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, headers).end()
    return
  }
  const accepts = acceptedEncodings(req.headers['accept-encoding'])
  let body = a.body
  if (accepts.has('br')) {
    body = a.br
    headers['content-encoding'] = 'br'
  } else if (accepts.has('gzip')) {
    body = a.gzip
    headers['content-encoding'] = 'gzip'
  }
  headers['content-length'] = String(body.length)
  res.writeHead(200, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** The encodings an Accept-Encoding header allows (q=0 excludes). */
function acceptedEncodings(header: string | undefined): Set<string> {
  const out = new Set<string>()
  for (const part of (header ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';')
    const q = params.map((p) => /^\s*q=([\d.]+)/.exec(p)?.[1]).find((v) => v !== undefined)
    if (name && (q === undefined || Number(q) > 0)) out.add(name)
  }
  return out
}
