import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'

/**
 * An entry of NATTER_CORS_ORIGINS: scheme "://" host [":" port], as a browser's Origin header
 * writes it (RFC 6454 §6.1). Schemes other than http(s) are allowed for hybrid apps
 * (capacitor://localhost); `null` (sandboxed frames, file:) is not an origin one can list.
 */
const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\d{1,5}))?$/i
const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443' }

/** How long a browser may reuse a preflight's answer, in seconds (Access-Control-Max-Age). */
export const PREFLIGHT_MAX_AGE_SECONDS = 600
/** Request headers a page may send: the Bearer token and the JSON body's type. */
const ALLOW_HEADERS = 'authorization, content-type'
/**
 * Response headers a page may read besides the CORS-safelisted ones: Retry-After of a 429
 * (RFC 9110 §10.2.3) and WWW-Authenticate of a 401 (RFC 6750 §3), which tell an app what to do next.
 */
const EXPOSE_HEADERS = 'retry-after, www-authenticate'
/** Distinct refused origins logged (once each); past it, refusals are not logged. */
const LOGGED_REFUSALS_MAX = 100

/** NATTER_CORS_ORIGINS parsed: any origin (`*`), or exactly these (normalized, see normalizeOrigin). */
export type CorsOrigins = { any: boolean; origins: ReadonlySet<string> }

/**
 * Parses NATTER_CORS_ORIGINS: `*`, or origins separated by commas
 * (`https://app.example.com,http://localhost:5173`); blanks around entries and empty entries are
 * ignored, and unset or empty is no origin. Returns `{ problems }` (one line each) for an entry
 * that is not scheme://host[:port] (a path, even a lone `/`, a query, user info, `null`), a port
 * out of 1-65535, or `*` beside other entries.
 */
export function parseCorsOrigins(text: string | undefined): CorsOrigins | { problems: string[] } {
  const entries = (text ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
  const problems: string[] = []
  if (entries.includes('*')) {
    if (entries.length > 1) problems.push('* (any origin) stands alone, not beside other origins')
    return problems.length ? { problems } : { any: true, origins: new Set() }
  }
  const origins = new Set<string>()
  for (const entry of entries) {
    const origin = normalizeOrigin(entry)
    if (origin === undefined) {
      problems.push(
        `"${entry}" is not an origin: expected scheme://host[:port] with no path, such as https://app.example.com or http://localhost:5173`,
      )
    } else origins.add(origin)
  }
  return problems.length ? { problems } : { any: false, origins }
}

/**
 * An origin as browsers serialize it (RFC 6454 §6.2): scheme and host lowercase, the scheme's
 * default port left out. Undefined for anything else, a port of 0 or over 65535 included.
 */
export function normalizeOrigin(text: string): string | undefined {
  const m = ORIGIN.exec(text)
  if (!m) return undefined
  const scheme = (m[1] as string).toLowerCase()
  const host = (m[2] as string).toLowerCase()
  const port = m[3]
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return undefined
  const shown = port === undefined || String(Number(port)) === DEFAULT_PORTS[scheme] ? '' : `:${Number(port)}`
  return `${scheme}://${host}${shown}`
}

/** Which CORS rules a route follows (see createCors). */
export type CorsRoute = 'api' | 'dev-token'

export interface Cors {
  /**
   * Adds the CORS headers for an allowed Origin to `res` (with setHeader, so whatever answer the
   * route writes carries them, errors included), and answers a preflight itself: true when it
   * did (204) and the route must not run. A request without Origin or from an origin not
   * allowed gets no Access-Control-* header and goes on to the route as any other request.
   */
  handle(req: IncomingMessage, res: ServerResponse, route: CorsRoute): boolean
  /** Whether a page of this origin may ask for dev tokens: listed exactly (`*` does not count). */
  allowsDevTokens(origin: string): boolean
}

/**
 * Cross-origin access (Fetch standard, "CORS protocol") for the routes a web app on another
 * origin needs: the API (`/v1/<op>`) and dev tokens (`/dev/token`). The operator API and the web
 * chat's own files never get CORS headers (they are not handed to this).
 *
 * - `/v1/<op>` takes only a Bearer token (no cookies), so `*` may open it to any page: a page
 *   still needs a token. No response ever carries Access-Control-Allow-Credentials, and the
 *   allowed origin is echoed rather than `*`, with `Vary: Origin`.
 * - `/dev/token` hands out tokens for any name to this machine: only an origin listed exactly
 *   may use it, never `*` (any web page the developer opens would otherwise get tokens).
 */
export function createCors(o: { origins: CorsOrigins; log: Logger }): Cors {
  const refused = new Set<string>()
  const enabled = o.origins.any || o.origins.origins.size > 0
  const allowed = (origin: string, route: CorsRoute): boolean => {
    const normal = normalizeOrigin(origin)
    if (normal === undefined) return false
    return o.origins.origins.has(normal) || (route === 'api' && o.origins.any)
  }
  return {
    handle(req, res, route) {
      // An answer that depends on Origin says so to caches, whether this origin got headers or not.
      if (enabled) res.setHeader('vary', 'Origin')
      const origin = req.headers.origin
      if (origin === undefined) return false
      if (!allowed(origin, route)) {
        if (refused.size < LOGGED_REFUSALS_MAX && !refused.has(origin)) {
          refused.add(origin)
          // Once per origin: the hint a developer needs when the browser only says "CORS".
          o.log.info(
            { event: 'cors_origin_refused', origin: origin.slice(0, 200), route },
            route === 'dev-token' && o.origins.any
              ? 'cross-origin request for a dev token: `*` does not open /dev/token, list the origin exactly in NATTER_CORS_ORIGINS'
              : 'cross-origin request from an origin not in NATTER_CORS_ORIGINS: no CORS headers',
          )
        }
        return false
      }
      res.setHeader('access-control-allow-origin', origin)
      const method = req.headers['access-control-request-method']
      if (req.method === 'OPTIONS' && method !== undefined) {
        res.setHeader('access-control-allow-methods', 'POST')
        res.setHeader('access-control-allow-headers', ALLOW_HEADERS)
        res.setHeader('access-control-max-age', String(PREFLIGHT_MAX_AGE_SECONDS))
        // Chromium's Private Network Access: a public page reaching a node on a private address.
        if (req.headers['access-control-request-private-network'] === 'true') {
          res.setHeader('access-control-allow-private-network', 'true')
        }
        res.writeHead(204, { 'content-length': '0' }).end()
        return true
      }
      res.setHeader('access-control-expose-headers', EXPOSE_HEADERS)
      return false
    },
    allowsDevTokens: (origin) => allowed(origin, 'dev-token'),
  }
}

/** The Cors of the corsOrigins setting (validated when the settings were loaded). */
export function corsFromSetting(corsOrigins: string | undefined, log: Logger): Cors {
  const origins = parseCorsOrigins(corsOrigins)
  if ('problems' in origins) throw new Error(`NATTER_CORS_ORIGINS: ${origins.problems.join('; ')}`)
  return createCors({ origins, log })
}
