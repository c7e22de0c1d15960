import type { Upload } from '../uploads.ts'
import { FileCard } from './Attachment.tsx'

/** The bubble's image box (px): as a received image shows, at most 320 wide and 240 high. */
function boxWidth({ width, height }: { width: number; height: number }): number {
  return Math.max(1, Math.round(Math.min(320, width, (240 * width) / Math.max(1, height))))
}

/**
 * A file being uploaded, shown at once as the user's own bubble: the local image dimmed, in its
 * own shape, or a file card; a progress bar with the share sent; Cancel (aborts the upload), or
 * after a failure why, Retry and Remove.
 */
export function UploadItem({
  u,
  onCancel,
  onRetry,
}: {
  u: Upload
  onCancel: (id: string) => void
  onRetry: (id: string) => void
}) {
  const percent = u.totalBytes > 0 ? Math.floor((u.sentBytes / u.totalBytes) * 100) : 0
  const image = u.image
  return (
    <li class="msg mine upload" data-upload={u.id} data-status={u.error ? 'failed' : 'uploading'}>
      {image ? (
        <span
          class="upload-image"
          style={{
            aspectRatio: `${image.width} / ${image.height}`,
            width: `${boxWidth(image)}px`,
          }}
        >
          {u.preview && <img src={u.preview} alt={u.name} width={image.width} height={image.height} />}
        </span>
      ) : (
        <FileCard media={{ id: u.id, name: u.name, size: u.totalBytes, contentType: u.contentType }} />
      )}
      {u.error ? (
        <span class="failed-actions">
          <span class="failure">{u.error}</span>
          <button type="button" class="retry" onClick={() => onRetry(u.id)}>
            Retry
          </button>
          <button type="button" class="cancel" onClick={() => onCancel(u.id)}>
            Remove
          </button>
        </span>
      ) : (
        <span class="upload-progress">
          <progress value={u.sentBytes} max={u.totalBytes || 1} aria-label={`Uploading ${u.name}`} />
          <span class="upload-percent">{percent}%</span>
          <button
            type="button"
            class="cancel-upload"
            aria-label={`Cancel uploading ${u.name}`}
            onClick={() => onCancel(u.id)}
          >
            Cancel
          </button>
        </span>
      )}
    </li>
  )
}
