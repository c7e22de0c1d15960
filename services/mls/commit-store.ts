/**
 * The accepted MLS Commits of each chat's group, one per epoch (docs/e2ee.md#3-commit-ordering-built):
 * what decides which Commit of an epoch wins. One interface, a SQLite store (embedded default)
 * and a MongoDB one, held to one contract by test/contract/commit-store.contract.ts.
 */

/** A Commit the Delivery Service accepted. */
export interface AcceptedCommit {
  chatId: string
  /** The epoch it was made in; it starts epoch + 1. Unique per chat. */
  epoch: number
  senderId: string
  deviceId: string
  /** The group's leaves after it (services/mls/leaf-map.ts). */
  leaves: (string | null)[]
  /** The MLSMessage bytes. */
  bytes: Uint8Array
  /** The devices it adds (`userId/deviceId`), in the order of its Adds. */
  added: string[]
  /** The Welcome (MLSMessage bytes) for the devices it adds; null when it adds none. */
  welcome: Uint8Array | null
  /** ms since the epoch. */
  at: number
  /** Its seq in the chat once appended to the message store; null until then. */
  seq: number | null
}

export interface CommitStore {
  /** The chat's Commit made in `epoch`, or null. */
  get(chatId: string, epoch: number): Promise<AcceptedCommit | null>
  /** The chat's Commit of the highest epoch, or null when its group has none (epoch 0). */
  latest(chatId: string): Promise<AcceptedCommit | null>
  /**
   * Records the Commit for its epoch unless the chat has one for that epoch already: true when
   * this call recorded it. Atomic on every node: of two inserts for one epoch at the same
   * instant, exactly one returns true (the unique key of chat and epoch decides).
   */
  insert(c: AcceptedCommit): Promise<boolean>
  /** Records the seq the message store gave the Commit of this epoch. */
  setSeq(chatId: string, epoch: number, seq: number): Promise<void>
  close(): Promise<void>
}
