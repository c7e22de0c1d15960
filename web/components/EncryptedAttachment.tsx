import { useContext, useEffect, useLayoutEffect, useState } from 'preact/hooks'
import type { EncryptedMedia, NatterClient } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { sayError } from '../error-words.ts'
import { FileCard, MediaResized } from './Attachment.tsx'

/** Decrypted files by media id: one download and decryption each, shared by whatever shows it. */
const files = new Map<string, Promise<Blob>>()

/**
 * The file of an encrypted chat's media, downloaded and decrypted on this device (the SDK's
 * downloadMedia: AES-256-GCM with the key the message carried, checked against its hashes). A
 * failure is not kept, so a later render asks again.
 */
function decrypted(client: NatterClient, media: EncryptedMedia): Promise<Blob> {
  const held = files.get(media.id)
  if (held) return held
  const p = client
    .downloadMedia(media)
    .then((bytes) => new Blob([bytes as Uint8Array<ArrayBuffer>], { type: media.contentType }))
  files.set(media.id, p)
  p.catch(() => {
    if (files.get(media.id) === p) files.delete(media.id)
  })
  return p
}

/**
 * A media of an encrypted chat's message (docs/e2ee.md, "Media"): what it is (type, name, size,
 * an image's shape) comes from inside the message, the bytes from the storage as ciphertext. An
 * image is decrypted at once and shown from a blob: URL, sized before it arrives; the URL is
 * revoked when the message leaves the screen. Anything else is a file card whose Download
 * decrypts first.
 */
export function EncryptedAttachment({ media }: { media: EncryptedMedia }) {
  const { client } = useApp()
  const resized = useContext(MediaResized)
  const [url, setUrl] = useState<string | null>(null)
  const [failed, setFailed] = useState('')
  const image = media.kind === 'image'
  useEffect(() => {
    if (!image) return
    let live = true
    let made: string | null = null
    decrypted(client, media).then(
      (blob) => {
        if (!live) return
        made = URL.createObjectURL(blob)
        setUrl(made)
      },
      (e: unknown) => live && setFailed(sayError(e)),
    )
    return () => {
      live = false
      if (made) URL.revokeObjectURL(made)
    }
  }, [client, media.id, image])
  useLayoutEffect(() => resized(), [url, failed])
  if (!image) return <EncryptedFile media={media} />
  if (failed) return <span class="media-missing">{`Image unavailable: ${failed}`}</span>
  const { width, height } = media
  const sized = width && height ? { aspectRatio: `${width} / ${height}` } : undefined
  if (!url) {
    return (
      <span
        class="media-placeholder"
        role="img"
        aria-label="Decrypting image"
        style={
          width && height
            ? { ...sized, height: 'auto', width: `min(100%, ${Math.min(320, width)}px)` }
            : undefined
        }
      />
    )
  }
  return (
    <a href={url} target="_blank" rel="noopener noreferrer" class="media-link">
      <img
        class="media"
        alt={media.name ?? 'Image'}
        src={url}
        width={width ?? undefined}
        height={height ?? undefined}
        style={sized}
        onLoad={resized}
      />
    </a>
  )
}

/** A file of an encrypted chat as a card; Download fetches and decrypts it, then saves it under its name. */
function EncryptedFile({ media }: { media: EncryptedMedia }) {
  const { client } = useApp()
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  const name = media.name ?? 'File'
  const download = () => {
    setBusy(true)
    setError('')
    decrypted(client, media).then(
      (blob) => {
        setBusy(false)
        const href = URL.createObjectURL(blob)
        Object.assign(document.createElement('a'), { href, download: name }).click()
        // The browser has taken the file once the click's task is done.
        setTimeout(() => URL.revokeObjectURL(href), 1000)
      },
      (e: unknown) => {
        setBusy(false)
        setError(sayError(e))
      },
    )
  }
  return (
    <FileCard media={{ id: media.id, name: media.name, size: media.size, contentType: media.contentType }}>
      <button
        type="button"
        class="file-download button"
        disabled={busy}
        aria-label={`Download ${name}`}
        onClick={download}
      >
        {busy ? 'Decrypting…' : 'Download'}
      </button>
      {error && (
        <span class="media-missing" role="alert">
          {error}
        </span>
      )}
    </FileCard>
  )
}
