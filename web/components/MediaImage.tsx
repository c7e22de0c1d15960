import { useEffect, useState } from 'preact/hooks'
import type { MediaUrls } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'

const urls = new Map<string, Promise<MediaUrls>>()

/** An image of a message: its thumbnail, opening the full image in a new tab. */
export function MediaImage({ mediaId }: { mediaId: string }) {
  const { client } = useApp()
  const [u, setU] = useState<MediaUrls | null>(null)
  const [failed, setFailed] = useState(false)
  useEffect(() => {
    let p = urls.get(mediaId)
    if (!p) {
      p = client.mediaUrl(mediaId)
      urls.set(mediaId, p)
    }
    let live = true
    p.then(
      (r) => live && setU(r),
      () => {
        urls.delete(mediaId)
        if (live) setFailed(true)
      },
    )
    return () => {
      live = false
    }
  }, [client, mediaId])
  if (failed) return <span class="media-missing">Image unavailable</span>
  if (!u) return <span class="media-placeholder" role="img" aria-label="Loading" />
  const { width, height, kind } = u.media
  if (kind !== 'image') {
    // Not an image: a card with its name and size, to download.
    return (
      <a
        href={u.url}
        target="_blank"
        rel="noopener noreferrer"
        class="file-card"
        download={u.media.name ?? ''}
      >
        <span class="file-name">{u.media.name ?? 'File'}</span>
        <span class="file-size">{sizeOf(u.media.size)}</span>
      </a>
    )
  }
  return (
    <a href={u.url} target="_blank" rel="noopener noreferrer" class="media-link">
      {/* Sized from the media info before it loads: nothing jumps when it arrives. */}
      <img
        class="media"
        alt={u.media.name ?? 'Attachment'}
        src={u.thumbnailUrl ?? u.url}
        width={width ?? undefined}
        height={height ?? undefined}
        style={width && height ? { aspectRatio: `${width} / ${height}` } : undefined}
      />
    </a>
  )
}

function sizeOf(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}
