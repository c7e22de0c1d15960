import { mediaUrl, type Uploaded, type UploadOptions, uploadMedia } from '../media.ts'
import { NatterRequestError } from '../request.ts'
import {
  decryptMedia,
  ENCRYPTED_MEDIA_TYPE,
  type EncryptedMedia,
  encryptMedia,
  sha256Hex,
} from './encrypted-media.ts'

type Connection = Parameters<typeof mediaUrl>[0]

/** The part of the DOM's createImageBitmap used here (the SDK compiles without the DOM library too). */
type MeasureImage = (b: Blob) => Promise<{ width: number; height: number; close(): void }>

/** An image's size in pixels as displayed (EXIF rotation applied), where the platform can decode it (browsers). */
async function measureImage(
  bytes: Uint8Array,
  contentType: string,
): Promise<{ width?: number; height?: number }> {
  const measure = (globalThis as { createImageBitmap?: MeasureImage }).createImageBitmap
  if (!measure || typeof Blob === 'undefined') return {}
  try {
    const bitmap = await measure(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: contentType }))
    const size = { width: bitmap.width, height: bitmap.height }
    bitmap.close()
    return size
  } catch {
    // Not decodable here: the message goes without dimensions, as a file would.
    return {}
  }
}

/**
 * Uploads a file to an encrypted chat (docs/e2ee.md, "Media"): encrypted on the device with a fresh
 * AES-256-GCM key (encryptMedia), the ciphertext uploaded through the ordinary flow as
 * application/octet-stream without name or duration, so the server learns its size and nothing
 * else. Resolves with the server's record of the ciphertext and `encrypted`, the descriptor that
 * `send` puts inside the message. `onProgress` and `signal` work as for any upload (the total is
 * the ciphertext's size, 16 bytes more than the file). Rejects as uploadMedia does, and with
 * unsupported_media_type for a type media may not have or bad_request without a content type.
 */
export async function uploadEncryptedMedia(
  conn: Connection,
  data: Uint8Array | Blob,
  o: UploadOptions & { chatId: string },
): Promise<Uploaded & { encrypted: EncryptedMedia }> {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(await data.arrayBuffer())
  const contentType = o.contentType ?? (typeof Blob !== 'undefined' && data instanceof Blob ? data.type : '')
  if (!contentType) throw new NatterRequestError('bad_request', 'a content type is needed for raw bytes')
  const measured =
    contentType.startsWith('image/') && (o.width === undefined || o.height === undefined)
      ? await measureImage(bytes, contentType)
      : {}
  const sealed = await encryptMedia(bytes, {
    contentType,
    name: o.name,
    width: o.width ?? measured.width,
    height: o.height ?? measured.height,
    durationMs: o.durationMs,
  })
  const up = await uploadMedia(conn, sealed.ciphertext, {
    chatId: o.chatId,
    contentType: ENCRYPTED_MEDIA_TYPE,
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  })
  return { ...up, encrypted: { id: up.mediaId, ...sealed.media } }
}

/** Options of downloadMedia. */
export interface DownloadOptions {
  /** Aborts the download: the promise rejects with NatterRequestError `cancelled`. */
  signal?: AbortSignal
}

/**
 * Downloads a media and checks it: an encrypted chat's (an EncryptedMedia from a message's
 * `encryptedMedia`) is decrypted and checked against its descriptor (decryptMedia); a plaintext
 * chat's (its media id) is checked against the SHA-256 the server recorded. Resolves with the
 * file's bytes. Rejects with NatterRequestError: media_not_found (the server's: not a member of a
 * chat that carried it, or gone), download_failed (the storage answered an error, or the
 * connection broke), media_corrupt (bytes, tag or hash not what was sent), cancelled.
 */
export async function downloadMedia(
  conn: Connection,
  media: EncryptedMedia | string,
  o: DownloadOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  const id = typeof media === 'string' ? media : media.id
  const urls = await mediaUrl(conn, id)
  let bytes: Uint8Array<ArrayBuffer>
  try {
    const res = await fetch(urls.url, o.signal ? { signal: o.signal } : {})
    if (!res.ok)
      throw new NatterRequestError(
        'download_failed',
        `the storage refused the download of ${id} (${res.status}): ${(await res.text()).slice(0, 300)}`,
      )
    bytes = new Uint8Array(await res.arrayBuffer())
  } catch (err) {
    if (err instanceof NatterRequestError) throw err
    if (o.signal?.aborted) throw new NatterRequestError('cancelled', 'the download was cancelled')
    throw new NatterRequestError('download_failed', `the download of ${id} broke: ${(err as Error).message}`)
  }
  if (typeof media !== 'string') return decryptMedia(bytes, media)
  if (bytes.length !== urls.media.size || (await sha256Hex(bytes)) !== urls.media.sha256)
    throw new NatterRequestError('media_corrupt', `media ${id}: the downloaded bytes do not have its SHA-256`)
  return bytes
}
