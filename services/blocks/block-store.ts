/**
 * Who blocks whom: one interface, a SQLite store (embedded default) and a MongoDB store, held to
 * one contract (test/contract/block-store.contract.ts). A block is one way: `blockerId` blocks
 * `blockedId`. What a block hides is decided in services/blocks/, not here: a store records.
 */

export interface Block {
  blockerId: string
  blockedId: string
  /** ms since the epoch: when the block was made. */
  at: number
}

export interface BlockStore {
  /** Records that blockerId blocks blockedId; false (and `at` unchanged) when it already did. */
  block(b: Block): Promise<boolean>
  /** Removes the block; false when there was none. */
  unblock(blockerId: string, blockedId: string): Promise<boolean>
  /** The block of blockerId on blockedId, or null. */
  get(blockerId: string, blockedId: string): Promise<Block | null>
  /** The users blockerId blocks, oldest block first (ties by blocked id). */
  blockedBy(blockerId: string): Promise<Block[]>
  /** Every block, for the in-memory index a node builds at start. */
  all(): Promise<Block[]>
  /** Removes every block the user made and every block made on the user; returns how many went. */
  removeUser(userId: string): Promise<number>
  /**
   * Leaves nothing deleted before this in the store's files (account erasure, after the
   * deletes): on SQLite, deleted rows are zeroed as they go (secure_delete) and this truncates
   * the WAL, which held their old page images (services/storage/sqlite-checkpoint.ts); MongoDB:
   * nothing to do (docs/decisions.md, "Erasing a user in the stores").
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}
