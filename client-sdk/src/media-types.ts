/**
 * The content types media may have, by kind (docs/protocol.md#media): the server accepts these
 * for uploads, and the SDK holds the type named inside an encrypted message to them too, since in
 * an encrypted chat the server never sees it. SVG and HTML are not among them: served back from
 * the app's origin (or opened as a blob: URL of it) they could run script in a browser.
 */

export const mediaKinds = ['image', 'video', 'audio', 'file'] as const
export type MediaKind = (typeof mediaKinds)[number]

export const MEDIA_TYPES: Readonly<Record<MediaKind, readonly string[]>> = {
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
  mediaKinds.flatMap((kind) => MEDIA_TYPES[kind].map((type) => [type, kind] as const)),
)

/** The kind a content type belongs to, or undefined when it is not accepted. */
export function mediaKindOf(contentType: string): MediaKind | undefined {
  return kindOfType.get(contentType)
}
