import { MEDIA_TYPES, type MediaKind, mediaKindOf, mediaKinds } from '../../client-sdk/src/media-types.ts'
import { sanitizeName } from '../text/visible-names.ts'

/**
 * What may be uploaded: each accepted content type belongs to one kind, and each kind has its
 * own size limit. SVG and HTML are not accepted: served back from our origin they could run
 * script in a browser.
 */

// The list is the SDK's (client-sdk/src/media-types.ts): it also checks the type named inside an
// encrypted message, which the server never sees.
export { type MediaKind, mediaKinds }

/** The kind a content type belongs to, or undefined when it is not accepted. */
export function kindOf(contentType: string): MediaKind | undefined {
  return mediaKindOf(contentType)
}

export function acceptedTypes(kind: MediaKind): readonly string[] {
  return MEDIA_TYPES[kind]
}

/** Images, video and audio play inline; anything else is served as a download. */
export function dispositionOf(kind: MediaKind): 'inline' | 'attachment' {
  return kind === 'file' ? 'attachment' : 'inline'
}

/**
 * A Content-Disposition header value (RFC 6266), the name in both of its forms: `filename*`
 * (RFC 8187, ex-5987: UTF-8, percent-encoded outside attr-char) and an ASCII `filename` for older
 * agents. The name is first cleaned as services/text/visible-names.ts sanitizeName does, so that
 * names stored before the name rules (a right-to-left override making "invoice‮fdp.exe" show as
 * "invoiceexe.pdf", controls, zero-width characters) never reach a browser; slashes become "_".
 * A name with nothing visible left is left out.
 */
export function contentDisposition(kind: MediaKind, name: string | null): string {
  const type = dispositionOf(kind)
  const clean = name === null ? null : sanitizeName(name)?.replace(/[/\\]/g, '_')
  if (!clean) return type
  // Quoted-string: no quote or backslash; "%" too, which some agents decode (RFC 6266 appendix D).
  const ascii = clean.replace(/[^\x20-\x7e]|["\\%]/g, '_')
  // encodeURIComponent leaves ' ( ) * as they are, which are not attr-char (RFC 8187 section 3.2.1).
  const encoded = encodeURIComponent(clean).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
  return `${type}; filename="${ascii}"; filename*=UTF-8''${encoded}`
}
