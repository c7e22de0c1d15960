/**
 * Users' profiles (display name and avatar): one interface, a SQLite store (embedded default)
 * and a MongoDB one, held to one contract by test/contract/profile-store.contract.ts.
 */

export interface Profile {
  userId: string
  /** Shown instead of the user id; null: none set. At most 64 characters, visible ones only. */
  displayName: string | null
  /** The media id of an image the user uploaded; null: none set. */
  avatar: string | null
  /** When the profile last changed, ms since the epoch. */
  updatedAt: number
}

/** A partial update: a field left out keeps its value, null clears it. */
export interface ProfileChange {
  userId: string
  displayName?: string | null
  avatar?: string | null
  /** ms since the epoch. */
  at: number
}

export interface ProfileStore {
  /** Applies the change (creating the profile when the user has none) and returns the profile as it now is. */
  set(change: ProfileChange): Promise<Profile>
  /** The profiles of these users that exist, in no particular order; one query for all. */
  get(userIds: string[]): Promise<Profile[]>
  /** Whether a media is some user's avatar now (the media sweep keeps it). */
  isAvatar(mediaId: string): Promise<boolean>
  /** The users whose avatar this media is (one, unless an uploader shares it). */
  avatarOwners(mediaId: string): Promise<string[]>
  /** Removes the user's profile; false when there was none. */
  remove(userId: string): Promise<boolean>
  /**
   * Leaves nothing deleted before this in the store's files (account erasure, after the
   * deletes): on SQLite, deleted rows are zeroed as they go (secure_delete) and this truncates
   * the WAL, which held their old page images (services/storage/sqlite-checkpoint.ts); MongoDB:
   * nothing to do (docs/decisions.md, "Erasing a user in the stores").
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}
