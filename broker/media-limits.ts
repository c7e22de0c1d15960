import type { Settings } from '../config/schema.ts'
import type { MediaLimits } from '../services/media/media-service.ts'

/** The media limits out of the settings, the same for a node and for `natter media`. */
export function mediaLimits(s: Settings): MediaLimits {
  return {
    maxBytes: {
      image: s.mediaMaxImageBytes,
      video: s.mediaMaxVideoBytes,
      audio: s.mediaMaxAudioBytes,
      file: s.mediaMaxFileBytes,
    },
    uploadUrlSeconds: s.mediaUploadUrlSeconds,
    downloadUrlSeconds: s.mediaDownloadUrlSeconds,
    retentionDays: s.retentionDays,
  }
}
