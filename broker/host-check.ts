import type { IncomingMessage } from 'node:http'
import type { Settings } from '../config/schema.ts'
import { HttpError } from '../services/requests/http-errors.ts'

// host [":" port] of a Host header (RFC 9110 §7.2): a name or IPv4 address, or an IPv6 literal
// in brackets. Anything else (userinfo, paths, spaces) is refused rather than parsed.
const HOST_HEADER = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/

const WILDCARD_ADDRESSES = new Set(['0.0.0.0', '::', '[::]'])

/**
 * The host names a browser may use for the web chat and dev tokens: the loopback names, the
 * address the node binds to when it is a specific one (NATTER_HOST), and the host of
 * NATTER_PUBLIC_URL. Lowercase, IPv6 in brackets as in a Host header.
 */
export function allowedHosts(settings: Pick<Settings, 'host' | 'publicUrl'>): string[] {
  const hosts = new Set(['localhost', '127.0.0.1', '[::1]'])
  const bound = settings.host.toLowerCase()
  if (!WILDCARD_ADDRESSES.has(bound)) hosts.add(bound.includes(':') ? `[${bound}]` : bound)
  if (settings.publicUrl) {
    try {
      hosts.add(new URL(settings.publicUrl).hostname.toLowerCase())
    } catch {
      // The settings schema accepted it as an http(s) URL; an unparsable one allows nothing more.
    }
  }
  return [...hosts]
}

/**
 * Checks that a request was meant for this server and made by its own pages, against DNS
 * rebinding (a page of evil.example whose name is made to point at 127.0.0.1 then reaches
 * localhost with `Host: evil.example`) and cross-site requests:
 * - Host must name one of `hosts` (any port): else HttpError host_not_allowed (421);
 * - Origin, when present, must be this same origin (http or https, the Host's name and port):
 *   else HttpError origin_not_allowed (403). Requests without Origin (curl, navigations, a
 *   same-origin GET) pass, and so do origins `alsoFrom` accepts (for /dev/token: the exact
 *   entries of NATTER_CORS_ORIGINS, broker/cors.ts).
 */
export function createHostCheck(
  hosts: readonly string[],
): (req: IncomingMessage, alsoFrom?: (origin: string) => boolean) => void {
  const allowed = new Set(hosts.map((h) => h.toLowerCase()))
  return (req, alsoFrom) => {
    const host = HOST_HEADER.exec(req.headers.host ?? '')
    const name = host?.[1]?.toLowerCase()
    if (!host || name === undefined || !allowed.has(name)) {
      throw new HttpError(
        'host_not_allowed',
        `this server answers the web chat as ${[...allowed].join(', ')} only (Host header)`,
      )
    }
    const origin = req.headers.origin
    if (origin === undefined) return
    let from: URL | undefined
    try {
      from = new URL(origin)
    } catch {
      from = undefined
    }
    const defaultPort = from?.protocol === 'https:' ? '443' : '80'
    const sameOrigin =
      from !== undefined &&
      (from.protocol === 'http:' || from.protocol === 'https:') &&
      from.hostname.toLowerCase() === name &&
      (from.port || defaultPort) === (host[2] ?? defaultPort)
    if (!sameOrigin && !alsoFrom?.(origin))
      throw new HttpError('origin_not_allowed', 'cross-origin requests are not allowed here')
  }
}
