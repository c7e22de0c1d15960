import type { MqttClient } from 'mqtt'
import { NatterRequestError, request } from './request.ts'

/** What the server tells about a media (docs/protocol.md#media); the server builds it with this very type. */
export interface MediaInfo {
  id: string
  kind: 'image' | 'video' | 'audio' | 'file'
  contentType: string
  size: number
  sha256: string
  name: string | null
  width: number | null
  height: number | null
  durationMs: number | null
  uploaderId: string
  createdAt: number
}

export interface MediaUrls {
  media: MediaInfo
  url: string
  /** A WebP of at most 320 pixels on its longest edge, for images. */
  thumbnailUrl: string | null
  /** ms since the epoch; ask again after. */
  expiresAt: number
}

export interface UploadOptions {
  /** The chat the media is for; the caller must be a member. */
  chatId: string
  /** One of the accepted types (docs/protocol.md#media); a Blob's own type when omitted. */
  contentType?: string
  /** File name, shown on download. */
  name?: string
  /** Audio and video: the length in ms, as the app measured it. */
  durationMs?: number
}

export interface Uploaded {
  mediaId: string
  media: MediaInfo
  /** False when the server had these bytes from this user already and nothing was sent. */
  uploaded: boolean
}

interface Connection {
  client: MqttClient
  clientId: string
}

type BeginResult =
  | { mediaId: string; status: 'ready'; media: MediaInfo }
  | {
      mediaId: string
      status: 'upload'
      upload: { method: 'PUT'; url: string; headers: Record<string, string>; expiresAt: number }
    }

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * Uploads bytes (a Uint8Array, a Node Buffer, or a browser Blob or File) for a chat and resolves
 * with a media id to send in a message's "media". The same bytes uploaded before by the same user
 * are not sent again. Rejects with NatterRequestError: the server's code, or "upload_failed"
 * when the storage refused the PUT.
 */
export async function uploadMedia(
  conn: Connection,
  data: Uint8Array | Blob,
  o: UploadOptions,
): Promise<Uploaded> {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(await data.arrayBuffer())
  const contentType = o.contentType ?? (data instanceof Blob ? data.type : '')
  if (!contentType) throw new NatterRequestError('bad_request', 'a content type is needed for raw bytes')
  const begun = await request<BeginResult>(conn.client, conn.clientId, 'media.begin', {
    chatId: o.chatId,
    sha256: await sha256Hex(bytes),
    size: bytes.length,
    contentType,
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.durationMs !== undefined ? { durationMs: o.durationMs } : {}),
  })
  if (begun.status === 'ready') return { mediaId: begun.mediaId, media: begun.media, uploaded: false }
  const res = await fetch(begun.upload.url, {
    method: begun.upload.method,
    headers: begun.upload.headers,
    body: bytes as Uint8Array<ArrayBuffer>,
  })
  if (!res.ok) {
    const detail = (await res.text()).slice(0, 300)
    throw new NatterRequestError('upload_failed', `the storage refused the upload (${res.status}): ${detail}`)
  }
  const done = await request<{ mediaId: string; media: MediaInfo }>(
    conn.client,
    conn.clientId,
    'media.complete',
    {
      mediaId: begun.mediaId,
    },
  )
  return { mediaId: done.mediaId, media: done.media, uploaded: true }
}

/** Short-lived URLs to download a media (and its thumbnail); media_not_found unless one may see it. */
export function mediaUrl(conn: Connection, mediaId: string): Promise<MediaUrls> {
  return request<MediaUrls>(conn.client, conn.clientId, 'media.get', { mediaId })
}
