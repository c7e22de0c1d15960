import { Counter, type Registry } from 'prom-client'

export type UploadResult = 'ready' | 'duplicate' | 'checksum_mismatch' | 'invalid_image'

/** What the media service reports. */
export interface MediaTelemetry {
  upload(kind: string, result: UploadResult, bytes: number): void
  deleted(count: number): void
}

export function createMediaMetrics(registry: Registry): MediaTelemetry {
  const uploads = new Counter({
    name: 'natter_media_uploads_total',
    help: 'Uploads by kind and result (duplicate: the same bytes again, nothing uploaded)',
    labelNames: ['kind', 'result'],
    registers: [registry],
  })
  const bytes = new Counter({
    name: 'natter_media_bytes_total',
    help: 'Bytes of completed uploads, by kind',
    labelNames: ['kind'],
    registers: [registry],
  })
  const deleted = new Counter({
    name: 'natter_media_deleted_total',
    help: 'Media deleted by the sweep: expired uploads, and media no message needs any more',
    registers: [registry],
  })
  return {
    upload: (kind, result, n) => {
      uploads.inc({ kind, result })
      if (result === 'ready') bytes.inc({ kind }, n)
    },
    deleted: (n) => deleted.inc(n),
  }
}
