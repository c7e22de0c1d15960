import { createContext } from 'preact'
import { useContext, useEffect, useLayoutEffect, useState } from 'preact/hooks'
import type { MediaInfo, MediaUrls } from '../../client-sdk/src/index.ts'
import { sizeOf, typeLabelOf } from '../attach-types.ts'
import { useApp } from '../context.ts'
import { fresh, mediaUrls } from '../media-urls.ts'

/**
 * Told when an attachment changed its height (its info came, its image loaded): the
 * conversation keeps a reader who follows the newest message at the bottom, so the newest
 * image is not cut off.
 */
export const MediaResized = createContext<() => void>(() => {})

/**
 * A media of a message, by its info (media.get): an image as its thumbnail, sized from the info
 * before it loads and opening the full image; anything else (PDF, text, zip, audio, video) as a
 * file card to download.
 */
export function Attachment({ mediaId }: { mediaId: string }) {
  const { client } = useApp()
  const resized = useContext(MediaResized)
  const [u, setU] = useState<MediaUrls | null>(null)
  const [failed, setFailed] = useState(false)
  useEffect(() => {
    let live = true
    mediaUrls(client, mediaId).then(
      (r) => live && setU(r),
      () => live && setFailed(true),
    )
    return () => {
      live = false
    }
  }, [client, mediaId])
  useLayoutEffect(() => resized(), [u, failed])
  if (failed) return <span class="media-missing">Attachment unavailable</span>
  if (!u) return <span class="media-placeholder" role="img" aria-label="Loading attachment" />
  const { width, height, kind } = u.media
  if (kind !== 'image') return <FileCard media={u.media} href={u} />
  return (
    <a href={u.url} target="_blank" rel="noopener noreferrer" class="media-link">
      {/* Sized from the media info before it loads: nothing jumps when it arrives. */}
      <img
        class="media"
        alt={u.media.name ?? 'Image'}
        src={u.thumbnailUrl ?? u.url}
        width={width ?? undefined}
        height={height ?? undefined}
        style={width && height ? { aspectRatio: `${width} / ${height}` } : undefined}
        onLoad={resized}
      />
    </a>
  )
}

/**
 * A file as a card: a type badge, its name, size and type, and a download link (its signed URL
 * asked again if it has expired since). Without `href` (an upload under way) it is not a link.
 */
export function FileCard({
  media,
  href,
  children,
}: {
  media: Pick<MediaInfo, 'name' | 'size' | 'contentType' | 'id'>
  href?: MediaUrls
  children?: preact.ComponentChildren
}) {
  const { client } = useApp()
  const name = media.name ?? 'File'
  const label = typeLabelOf(media.name, media.contentType)
  const body = (
    <>
      <span class="file-icon" aria-hidden="true">
        {label}
      </span>
      <span class="file-text">
        <span class="file-name">{name}</span>
        <span class="file-size">
          {sizeOf(media.size)} · {media.contentType}
        </span>
      </span>
    </>
  )
  if (!href) {
    return (
      <span class="file-card">
        {body}
        {children}
      </span>
    )
  }
  return (
    <span class="file-card">
      {body}
      <a
        class="file-download button"
        href={href.url}
        download={name}
        target="_blank"
        rel="noopener noreferrer"
        aria-label={`Download ${name}`}
        onClick={(e) => {
          if (fresh(href)) return
          // The signed URL has expired since it was shown: a new one, then the download.
          e.preventDefault()
          mediaUrls(client, media.id).then((u) => {
            const a = Object.assign(document.createElement('a'), {
              href: u.url,
              download: name,
              rel: 'noopener',
            })
            a.click()
          })
        }}
      >
        Download
      </a>
    </span>
  )
}
