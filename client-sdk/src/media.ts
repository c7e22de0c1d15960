import type { MqttClient } from 'mqtt'
import type { EncryptedMedia } from './mls/encrypted-media.ts'
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

/**
 * What an upload is for: a chat (`chatId`, the caller must be a member), or this user's profile
 * photo (`purpose: 'avatar'`: no chat needed, an image only, to pass to setProfile). Exactly one.
 */
export type UploadTarget = { chatId: string; purpose?: never } | { purpose: 'avatar'; chatId?: never }

/** Options of uploadMedia: its target (UploadTarget) and the rest (UploadSettings). */
export type UploadOptions = UploadTarget & UploadSettings

export interface UploadSettings {
  /** One of the accepted types (docs/protocol.md#media); a Blob's own type when omitted. */
  contentType?: string
  /**
   * File name, shown on download. In an encrypted chat it goes inside the message only (the
   * server refuses a name there).
   */
  name?: string
  /** Audio and video: the length in ms, as the app measured it (in an encrypted chat: inside the message). */
  durationMs?: number
  /**
   * Encrypted chats only: an image's size in pixels as displayed, carried inside the message (the
   * server cannot decode ciphertext). In browsers the SDK measures an image itself
   * (createImageBitmap) when these are not given.
   */
  width?: number
  height?: number
  /**
   * Called as the bytes go out, with the bytes sent so far and the total (bytes): in browsers
   * from XMLHttpRequest's upload progress events, in Node per 64 KiB chunk of the streamed body
   * as the HTTP client takes it (the socket's buffers may still hold the last chunks). Called
   * once with (0, total) before the PUT and once with (total, total) when the storage has
   * answered; only (total, total) when the server had these bytes already.
   */
  onProgress?: (sentBytes: number, totalBytes: number) => void
  /**
   * Aborts the upload: the PUT is cancelled where it is, media.complete is not called, and the
   * promise rejects with NatterRequestError code `cancelled`. Nothing is sent to the chat.
   */
  signal?: AbortSignal
}

export interface Uploaded {
  mediaId: string
  /** What the server holds: in an encrypted chat, the ciphertext (application/octet-stream, no name). */
  media: MediaInfo
  /** False when the server had these bytes from this user already and nothing was sent. */
  uploaded: boolean
  /**
   * Encrypted chats: the file's descriptor with its key, which `send` puts inside the message
   * (pass the media id or this to send). Undefined for plaintext chats and avatars.
   */
  encrypted?: EncryptedMedia
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

/** The part of XMLHttpRequest used here (the SDK compiles without the DOM library too). */
interface Xhr {
  open(method: string, url: string): void
  setRequestHeader(name: string, value: string): void
  send(body: Uint8Array): void
  abort(): void
  upload: { onprogress: ((e: { loaded: number }) => void) | null }
  onload: (() => void) | null
  onerror: (() => void) | null
  onabort: (() => void) | null
  status: number
  responseText: string
}

/** Bytes of the Node streamed body handed to the HTTP client at a time. */
const CHUNK_BYTES = 64 * 1024

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')
}

const aborted = () => new NatterRequestError('cancelled', 'the upload was cancelled')

/** Rejects with `cancelled` as soon as the signal aborts, else settles as the promise does. */
function unlessAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p
  if (signal.aborted) return Promise.reject(aborted())
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted())
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/**
 * Uploads bytes (a Uint8Array, a Node Buffer, or a browser Blob or File) for a chat and resolves
 * with a media id to send in a message's "media"; with `purpose: 'avatar'` instead of a chatId,
 * a profile photo for setProfile({avatar}) (an image; docs/protocol.md#profiles). The same bytes
 * uploaded before by the same user are not sent again. `onProgress` follows the PUT, `signal`
 * aborts it (UploadOptions). Rejects with NatterRequestError: the server's code
 * (unsupported_media_type for a photo that is not an image, bad_request for both or neither of
 * chatId and purpose), "upload_failed" when the storage refused the PUT or the connection to it
 * broke, "cancelled" when the signal aborted.
 */
export async function uploadMedia(
  conn: Connection,
  data: Uint8Array | Blob,
  o: UploadOptions,
): Promise<Uploaded> {
  const { signal } = o
  if (signal?.aborted) throw aborted()
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(await data.arrayBuffer())
  const contentType = o.contentType ?? (data instanceof Blob ? data.type : '')
  if (!contentType) throw new NatterRequestError('bad_request', 'a content type is needed for raw bytes')
  const begun = await unlessAborted(
    (async () =>
      request<BeginResult>(conn.client, conn.clientId, 'media.begin', {
        // Both as given: the server refuses both or neither with bad_request.
        ...(o.chatId !== undefined ? { chatId: o.chatId } : {}),
        ...(o.purpose !== undefined ? { purpose: o.purpose } : {}),
        sha256: await sha256Hex(bytes),
        size: bytes.length,
        contentType,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.durationMs !== undefined ? { durationMs: o.durationMs } : {}),
      }))(),
    signal,
  )
  if (begun.status === 'ready') {
    o.onProgress?.(bytes.length, bytes.length)
    return { mediaId: begun.mediaId, media: begun.media, uploaded: false }
  }
  o.onProgress?.(0, bytes.length)
  const res = await put(begun.upload, bytes, o.onProgress, signal)
  if (res.status < 200 || res.status > 299) {
    throw new NatterRequestError(
      'upload_failed',
      `the storage refused the upload (${res.status}): ${res.body.slice(0, 300)}`,
    )
  }
  o.onProgress?.(bytes.length, bytes.length)
  const done = await unlessAborted(
    request<{ mediaId: string; media: MediaInfo }>(conn.client, conn.clientId, 'media.complete', {
      mediaId: begun.mediaId,
    }),
    signal,
  )
  return { mediaId: done.mediaId, media: done.media, uploaded: true }
}

/**
 * The PUT of the bytes to the signed URL: XMLHttpRequest where there is one (browsers: fetch
 * reports no upload progress), else fetch, with a counted stream body in Node.
 */
function put(
  upload: { method: 'PUT'; url: string; headers: Record<string, string> },
  bytes: Uint8Array,
  onProgress: ((sent: number, total: number) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<{ status: number; body: string }> {
  const XhrClass = (globalThis as { XMLHttpRequest?: new () => Xhr }).XMLHttpRequest
  if (XhrClass) return putXhr(new XhrClass(), upload, bytes, onProgress, signal)
  return putFetch(upload, bytes, onProgress, signal)
}

function putXhr(
  xhr: Xhr,
  upload: { method: 'PUT'; url: string; headers: Record<string, string> },
  bytes: Uint8Array,
  onProgress: ((sent: number, total: number) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    xhr.open(upload.method, upload.url)
    for (const [k, v] of Object.entries(upload.headers)) xhr.setRequestHeader(k, v)
    const onAbort = () => xhr.abort()
    const settle = () => signal?.removeEventListener('abort', onAbort)
    xhr.upload.onprogress = (e) => onProgress?.(e.loaded, bytes.length)
    xhr.onload = () => {
      settle()
      resolve({ status: xhr.status, body: xhr.responseText })
    }
    xhr.onerror = () => {
      settle()
      reject(new NatterRequestError('upload_failed', 'the connection to the storage broke during the upload'))
    }
    xhr.onabort = () => {
      settle()
      reject(aborted())
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    xhr.send(bytes)
  })
}

async function putFetch(
  upload: { method: 'PUT'; url: string; headers: Record<string, string> },
  bytes: Uint8Array,
  onProgress: ((sent: number, total: number) => void) | undefined,
  signal: AbortSignal | undefined,
): Promise<{ status: number; body: string }> {
  // Node's fetch (undici) takes a stream body with the length given: progress is counted as it
  // pulls chunks. Elsewhere (a worker without XMLHttpRequest) the body goes whole, and progress
  // is only its start and end: browsers refuse a Content-Length header and stream bodies over HTTP/1.1.
  const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string'
  let body: Uint8Array | ReadableStream<Uint8Array> = bytes
  const headers: Record<string, string> = { ...upload.headers }
  if (isNode && onProgress) {
    let at = 0
    body = new ReadableStream<Uint8Array>(
      {
        pull(c) {
          if (at >= bytes.length) {
            c.close()
            return
          }
          const end = Math.min(at + CHUNK_BYTES, bytes.length)
          c.enqueue(bytes.subarray(at, end))
          at = end
          onProgress(at, bytes.length)
        },
      },
      { highWaterMark: 0 },
    )
    headers['content-length'] = String(bytes.length)
  }
  try {
    const res = await fetch(upload.url, {
      method: upload.method,
      headers,
      body,
      ...(signal ? { signal } : {}),
      // Needed by Node for a stream body.
      ...(body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit)
    return { status: res.status, body: await res.text() }
  } catch (err) {
    if (signal?.aborted) throw aborted()
    throw new NatterRequestError(
      'upload_failed',
      `the connection to the storage broke during the upload: ${(err as Error).message}`,
    )
  }
}

/** Short-lived URLs to download a media (and its thumbnail); media_not_found unless one may see it. */
export function mediaUrl(conn: Connection, mediaId: string): Promise<MediaUrls> {
  return request<MediaUrls>(conn.client, conn.clientId, 'media.get', { mediaId })
}
