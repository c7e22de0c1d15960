/**
 * What may be uploaded: each accepted content type belongs to one kind, and each kind has its
 * own size limit. SVG and HTML are not accepted: served back from our origin they could run
 * script in a browser.
 */

export const mediaKinds = ['image', 'video', 'audio', 'file'] as const
export type MediaKind = (typeof mediaKinds)[number]

const TYPES: Record<MediaKind, readonly string[]> = {
  image: ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/avif'],
  video: ['video/mp4', 'video/webm', 'video/quicktime'],
  audio: ['audio/mpeg', 'audio/mp4', 'audio/aac', 'audio/ogg', 'audio/webm', 'audio/wav'],
  file: [
    'application/pdf',
    'application/zip',
    'application/octet-stream',
    'text/plain',
    'text/csv',
    'application/msword',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
    'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  ],
}

const kindOfType = new Map<string, MediaKind>(
  mediaKinds.flatMap((kind) => TYPES[kind].map((type) => [type, kind] as const)),
)

/** The kind a content type belongs to, or undefined when it is not accepted. */
export function kindOf(contentType: string): MediaKind | undefined {
  return kindOfType.get(contentType)
}

export function acceptedTypes(kind: MediaKind): readonly string[] {
  return TYPES[kind]
}

/** Images, video and audio play inline; anything else is served as a download. */
export function dispositionOf(kind: MediaKind): 'inline' | 'attachment' {
  return kind === 'file' ? 'attachment' : 'inline'
}

/** A Content-Disposition header value, with the name in the RFC 6266 / 5987 forms. */
export function contentDisposition(kind: MediaKind, name: string | null): string {
  const type = dispositionOf(kind)
  if (!name) return type
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_')
  return `${type}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}
