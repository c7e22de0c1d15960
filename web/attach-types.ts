/**
 * What a picked file is sent as (docs/protocol.md#media, "Kinds, types and limits"): the image
 * types the server decodes and thumbnails, and the types it keeps as other kinds. A type the
 * server would refuse (an SVG, a Windows zip type, none at all) goes as
 * application/octet-stream: a file card, never a broken image.
 */
const IMAGE = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/avif'])
const OTHER = new Set([
  'video/mp4',
  'video/webm',
  'video/quicktime',
  'audio/mpeg',
  'audio/mp4',
  'audio/aac',
  'audio/ogg',
  'audio/webm',
  'audio/wav',
  'application/pdf',
  'application/zip',
  'application/octet-stream',
  'text/plain',
  'text/csv',
  'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
])

/** The type a file is uploaded with. */
export function uploadTypeOf(file: { type: string }): string {
  const type = file.type.toLowerCase()
  return IMAGE.has(type) || OTHER.has(type) ? type : 'application/octet-stream'
}

/** Whether a file of this (upload) type is shown as an image. */
export function isImageType(type: string): boolean {
  return IMAGE.has(type)
}

/** A size in bytes as people read it (B, KB, MB; 1 KB = 1,024 bytes). */
export function sizeOf(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

/** A short label of a file's type for its card's icon: the extension, else from the content type. */
export function typeLabelOf(name: string | null, contentType: string): string {
  const ext = /\.([A-Za-z0-9]{1,4})$/.exec(name ?? '')?.[1]
  if (ext) return ext.toUpperCase()
  const sub = contentType.split('/')[1] ?? ''
  if (contentType === 'application/pdf') return 'PDF'
  if (contentType === 'application/zip') return 'ZIP'
  if (contentType.startsWith('text/')) return 'TXT'
  return sub.length <= 4 && sub ? sub.toUpperCase() : 'FILE'
}
