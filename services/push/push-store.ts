/**
 * Push registrations, per-chat mutes and push jobs: one interface, a SQLite store (embedded
 * default) and a MongoDB one, held to one contract by test/contract/push-store.contract.ts.
 * Jobs live here, not in a process's memory, so a push survives the crash of the node that
 * created it.
 */

export type Platform = 'fcm' | 'apns'

export interface Registration {
  userId: string
  deviceId: string
  platform: Platform
  /** The FCM registration token or the APNs device token. */
  token: string
  /** APNs: the app's bundle id (apns-topic). */
  apnsTopic: string | null
  /** APNs: the development environment rather than production. */
  sandbox: boolean
  /** BCP 47, for the notification's fixed texts. */
  locale: string | null
  /** Show "New message" instead of the text. */
  hideText: boolean
  updatedAt: number
}

/**
 * idle: nothing to send. pending: due at dueAt. claimed: a worker took it (lease until
 * leaseUntil) and has not called the provider yet. sending: the provider call is under way.
 */
export type JobState = 'idle' | 'pending' | 'claimed' | 'sending'

/** One device's notification for one chat: a burst of messages collapses into it. */
export interface PushJob {
  userId: string
  deviceId: string
  chatId: string
  state: JobState
  /** The newest message it is about. */
  lastSeq: number
  /** Messages up to here were notified (or seen): never notified again. */
  coveredSeq: number
  /** lastSeq when a worker claimed it: what that worker's push covers. */
  claimedSeq: number
  dueAt: number
  attempts: number
  owner: string | null
  leaseUntil: number
}

export interface NewJob {
  userId: string
  deviceId: string
  chatId: string
  seq: number
  dueAt: number
}

export interface PushStore {
  /** Adds or replaces the device's registration; the token leaves any other device it was on. */
  register(r: Registration): Promise<void>
  registration(userId: string, deviceId: string): Promise<Registration | null>
  /** The registered devices of these users (one query for all: a group's members at once), by user and device. */
  registrations(userIds: string[]): Promise<Registration[]>
  /** Removes the device's registration and its jobs; false when it had none. */
  unregister(userId: string, deviceId: string): Promise<boolean>
  /** Removes the registration only while it still holds this token (the provider refused it). */
  unregisterToken(userId: string, deviceId: string, token: string): Promise<boolean>

  setMuted(userId: string, chatId: string, muted: boolean): Promise<void>
  /** The chats these users muted. */
  mutes(userIds: string[]): Promise<{ userId: string; chatId: string }[]>

  /**
   * Records messages for devices: a device and chat with a push pending gets its lastSeq moved
   * (the burst collapses, dueAt stays); one without gets a pending job due at dueAt. Seqs
   * already covered are ignored.
   */
  enqueue(jobs: NewJob[]): Promise<void>
  /**
   * Takes up to limit jobs due at now (or claimed by a worker whose lease ran out) for owner,
   * until now + leaseMs.
   */
  claim(now: number, owner: string, leaseMs: number, limit: number): Promise<PushJob[]>
  /** claimed → sending, right before the provider call; false when owner lost the job. */
  markSending(job: PushJob, owner: string): Promise<boolean>
  /**
   * Done with a claimed or sending job: messages up to coveredSeq need no push any more. Newer
   * messages that arrived meanwhile leave it pending, due at nextDueAt.
   */
  finish(job: PushJob, owner: string, coveredSeq: number, nextDueAt: number): Promise<void>
  /** Back to pending for another attempt at dueAt. */
  retryAt(job: PushJob, owner: string, dueAt: number, attempts: number): Promise<void>
  /**
   * Jobs whose worker died during the provider call: whether the push went out is unknown, so
   * they are closed as sent (at most once) and returned.
   */
  recoverInDoubt(now: number, limit: number): Promise<PushJob[]>
  /** Every push registration of the user (export), ordered by deviceId. */
  registrationsOf(userId: string): Promise<Registration[]>
  /** Removes the user's registrations, mutes and push jobs (account erasure); returns how many records went. */
  forgetUser(userId: string): Promise<number>
  job(userId: string, deviceId: string, chatId: string): Promise<PushJob | null>
  /**
   * Leaves nothing deleted before this in the store's files (account erasure, after the
   * deletes): on SQLite, deleted rows are zeroed as they go (secure_delete) and this truncates
   * the WAL, which held their old page images (services/storage/sqlite-checkpoint.ts); MongoDB:
   * nothing to do (docs/decisions.md, "Erasing a user in the stores").
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}

export const jobKey = (j: { userId: string; deviceId: string; chatId: string }): string =>
  `${j.userId}/${j.deviceId}/${j.chatId}`
