import { mediaKindOf } from '../client-sdk/src/media-types.ts'

/**
 * The type a picked file is uploaded with (docs/protocol.md#media, "Kinds, types and limits"):
 * its own when the server accepts it (the SDK's list, client-sdk/src/media-types.ts, which the
 * server uses too), else application/octet-stream. A type the server would refuse (an SVG, a
 * Windows zip type, none at all) goes as a file card, never a broken image.
 */
export function uploadTypeOf(file: { type: string }): string {
  const type = file.type.toLowerCase()
  return mediaKindOf(type) === undefined ? 'application/octet-stream' : type
}

/** Whether a file of this (upload) type is shown as an image. */
export function isImageType(type: string): boolean {
  return mediaKindOf(type) === 'image'
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
