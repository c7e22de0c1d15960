/**
 * Account states an operator sets: banned, being erased, erased. One interface, a SQLite store
 * (accounts.db in the data directory, the embedded default) and a MongoDB store, held to one
 * contract (test/contract/account-store.contract.ts). A user with no record is in good standing;
 * records are few (only banned and erased users), so a node holds them all in memory
 * (services/accounts/account-list.ts). Rules (who may be unbanned, what an erase does) live in
 * services/accounts/account-service.ts and services/privacy/erasure.ts: a store records.
 */

export type AccountStatus = 'banned' | 'erasing' | 'erased'

/** Where an erase stands, so that any node can resume it after a crash (services/privacy/erasure.ts). */
export interface EraseState {
  /** The step to run next (erasure.ts names them); 'done' once erased. */
  step: string
  /** Messages erased so far. */
  done: number
  /** The node working on it (its lease), or null when nobody holds it. */
  owner: string | null
  /** ms since the epoch: the owner's lease runs out then, and another node may claim the erase. */
  leaseUntil: number
}

export interface AccountRecord {
  userId: string
  status: AccountStatus
  /** ms since the epoch: when the account entered this status. */
  since: number
  /** The operator's reason for a ban; null otherwise (an erase drops it: free text may name the user). */
  reason: string | null
  /** Who set the status: the admin credential's name. */
  by: string
  /** Present while erasing and once erased. */
  erase?: EraseState
}

/** The outcome of a change: the record after it, and whether this call changed it. */
export interface AccountChange {
  record: AccountRecord
  changed: boolean
}

export interface AccountStore {
  /** The user's record, or null when the account is in good standing. */
  get(userId: string): Promise<AccountRecord | null>
  /** Every record (banned, erasing and erased users), for the in-memory list a node builds. */
  all(): Promise<AccountRecord[]>
  /**
   * Bans a user in good standing (since = at). A banned, erasing or erased user's record is left
   * as it is (changed false): the first ban's time and reason stay.
   */
  ban(userId: string, b: { reason: string | null; by: string; at: number }): Promise<AccountChange>
  /** Lifts a ban: removes a banned user's record. False when the user is not banned (erasing and erased users stay so). */
  unban(userId: string): Promise<boolean>
  /**
   * Starts an erase: a user in good standing or banned becomes erasing at step `step`, with no
   * owner (reason dropped). An erasing or erased user is left as it is (changed false): an
   * erase is resumed, never restarted, and erased stays erased.
   */
  beginErase(userId: string, b: { by: string; at: number; step: string }): Promise<AccountChange>
  /**
   * Atomically takes the erase of an erasing user for `owner` until now + leaseMs (ms), when
   * nobody holds it, the owner already does, or the holder's lease ran out (leaseUntil <= now).
   * Returns the record claimed, or null (not erasing, or another node holds a live lease): one
   * node works on an erase at a time in a cluster.
   */
  claimErase(userId: string, owner: string, now: number, leaseMs: number): Promise<AccountRecord | null>
  /**
   * Records the owner's progress and extends its lease to leaseUntil (ms); false when `owner`
   * no longer holds the erase (its lease was taken over): it must stop.
   */
  progress(
    userId: string,
    owner: string,
    p: { step: string; done: number; leaseUntil: number },
  ): Promise<boolean>
  /** Marks the owner's erase finished: status erased since `at`, step 'done', no owner. False when `owner` does not hold it. */
  finishErase(userId: string, owner: string, at: number): Promise<boolean>
  /**
   * Leaves nothing deleted or overwritten before this in the store's files (a ban's reason an
   * erase dropped): on SQLite, freed space is zeroed as it goes (secure_delete) and this truncates
   * the WAL; MongoDB: nothing to do.
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}
