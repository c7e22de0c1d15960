import type { MediaKind } from './media-kinds.ts'

/**
 * What Natter knows about each media object: who uploaded it, its checksum and metadata, its
 * state, and the chats it was sent in (who may download it). One interface, a SQLite catalog
 * (embedded default) and a MongoDB one, held to test/contract/media-catalog.contract.ts.
 */

export type MediaStatus = 'pending' | 'ready' | 'deleting'

export interface MediaRecord {
  id: string
  uploaderId: string
  /**
   * 64 hex digits. One uploader has one record per checksum, content type and size: the same
   * bytes declared as another type (or size) are another record, uploaded on their own.
   */
  sha256: string
  size: number
  contentType: string
  kind: MediaKind
  /** The file name the uploader gave, for downloads. */
  name: string | null
  status: MediaStatus
  createdAt: number
  /** Pending: the upload must be completed before this; past it the upload is swept. */
  expiresAt: number
  /**
   * When it became ready; while it was never sent, moved up to when its uploader last began the
   * same bytes again (begin), since the week an unsent media is kept counts from this.
   */
  readyAt: number | null
  /** When a message last referenced it; null until it is first sent. */
  lastSentAt: number | null
  width: number | null
  height: number | null
  /** As declared by the uploader, for audio and video. */
  durationMs: number | null
  hasThumbnail: boolean
}

export type NewMedia = Pick<
  MediaRecord,
  | 'id'
  | 'uploaderId'
  | 'sha256'
  | 'size'
  | 'contentType'
  | 'kind'
  | 'name'
  | 'createdAt'
  | 'expiresAt'
  | 'durationMs'
>

export interface MediaFacts {
  width: number | null
  height: number | null
  hasThumbnail: boolean
}

/** When unused media may go: never sent and ready before unsentBefore, or last sent before sentBefore. */
export interface SweepCutoffs {
  now: number
  unsentBefore: number
  sentBefore: number
}

export interface MediaCatalog {
  /**
   * Records a pending upload; when the uploader has a record with that checksum, content type
   * and size (whatever its name and status), returns it instead, and if that one is ready and was never sent, moves its readyAt up to m.createdAt
   * (the same bytes picked again, say as a profile photo once more, are kept another week from
   * now), atomically with respect to markDeleting: the record returned is either renewed or
   * already being deleted.
   */
  begin(m: NewMedia): Promise<{ record: MediaRecord; created: boolean }>
  get(id: string): Promise<MediaRecord | null>
  /** Gives a pending upload a new deadline (its uploader asked for a new URL). */
  extend(id: string, expiresAt: number): Promise<void>
  /** Pending to ready, with what the server learnt; null when it was not pending. */
  complete(id: string, facts: MediaFacts, at: number): Promise<MediaRecord | null>
  /**
   * Records that a message in chatId references the media; false when it is not ready (not
   * uploaded, or being deleted), in which case nothing is recorded.
   */
  reference(id: string, chatId: string, at: number): Promise<boolean>
  /** The chats a media was sent in: their members may download it for as long as it is kept. */
  chatsOf(id: string): Promise<string[]>
  /** Records to sweep: expired pending uploads, unused ready media, and deletions left unfinished. */
  due(c: SweepCutoffs, limit: number): Promise<MediaRecord[]>
  /** Marks a due record as being deleted, checked again atomically; false when it is no longer due. */
  markDeleting(id: string, c: SweepCutoffs): Promise<boolean>
  /** Every record the user uploaded, whatever its status, oldest first (ties by id). */
  uploadedBy(userId: string): Promise<MediaRecord[]>
  /**
   * Marks the user's record as being deleted whatever its status (account erasure): it can no
   * longer be sent, and the sweep finishes the deletion should the eraser stop. False when the
   * record is gone or another user's.
   */
  markDeletingOf(userId: string, id: string): Promise<boolean>
  /** Drops the record and its references (after its objects are gone). */
  remove(id: string): Promise<void>
  /**
   * Leaves nothing deleted before this in the store's files (account erasure, after the
   * deletes): on SQLite, deleted rows are zeroed as they go (secure_delete) and this truncates
   * the WAL, which held their old page images (services/storage/sqlite-checkpoint.ts); MongoDB:
   * nothing to do (docs/decisions.md, "Erasing a user in the stores").
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}
