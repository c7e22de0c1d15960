import type { MediaUrls, NatterClient } from '../client-sdk/src/index.ts'

/** Asked again this long (ms) before the signed URLs expire, so a link followed now still works. */
const MARGIN_MS = 30_000

const cache = new Map<string, Promise<MediaUrls>>()

/**
 * A media's signed URLs (media.get, docs/protocol.md#media), shared by everything showing it:
 * one request per media while its URLs are fresh (they last 5 minutes by default), a new one
 * after. A refusal is not kept, so a later render asks again.
 */
export function mediaUrls(client: NatterClient, mediaId: string): Promise<MediaUrls> {
  const held = cache.get(mediaId)
  if (held) return held
  const p = client.mediaUrl(mediaId)
  cache.set(mediaId, p)
  p.then(
    (u) => {
      const ttl = Math.max(0, u.expiresAt - Date.now() - MARGIN_MS)
      setTimeout(() => {
        if (cache.get(mediaId) === p) cache.delete(mediaId)
      }, ttl)
    },
    () => {
      if (cache.get(mediaId) === p) cache.delete(mediaId)
    },
  )
  return p
}

/** Whether URLs from this answer can still be followed (not within the margin of expiring). */
export function fresh(u: MediaUrls): boolean {
  return u.expiresAt - Date.now() > MARGIN_MS
}
