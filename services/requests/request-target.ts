/**
 * A `.` or `..` path segment, plain or percent-encoded: URL parsing removes them (RFC 3986
 * §5.2.4), so `/v1/../admin/v1/…` would reach a route that a proxy matching on the raw path let
 * through. No route of Natter's has one.
 */
const DOT_SEGMENT = /(^|\/)(\.|%2e){1,2}(\/|$)/i

/**
 * The path and query of an HTTP request target, or null when it is none a server can use (one
 * with a dot-segment among them). Never throws: `new URL(req.url, base)` does on targets Node's
 * parser lets through (`//`, `//@`), and a throw in a request or upgrade listener would take
 * the whole process down.
 *
 * Accepts the origin form (`/path?query`, RFC 9112 §3.2.1, `//x` being the path `//x`, not a
 * host) and the absolute form (`http://host/path`, §3.2.2, which servers must accept). The
 * pathname stays percent-encoded; decode parts of it with decodePathPart.
 */
export function requestTarget(raw: string | undefined): URL | null {
  if (raw === undefined || raw === '') return null
  if (DOT_SEGMENT.test(raw.split(/[?#]/, 1)[0] as string)) return null
  try {
    if (raw.startsWith('/')) return new URL(`http://localhost${raw}`)
    const url = new URL(raw)
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null
  } catch {
    return null
  }
}

/** A percent-encoded part of a path, decoded; null when its escapes are not UTF-8 (`%E0%A4%A`). */
export function decodePathPart(encoded: string): string | null {
  try {
    return decodeURIComponent(encoded)
  } catch {
    return null
  }
}
