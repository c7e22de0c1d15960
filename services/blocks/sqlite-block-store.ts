import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import type { Block, BlockStore } from './block-store.ts'

interface BlockRow {
  blocker_id: string
  blocked_id: string
  at: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS blocks (
  blocker_id TEXT NOT NULL,
  blocked_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;
`

const toBlock = (r: BlockRow): Block => ({ blockerId: r.blocker_id, blockedId: r.blocked_id, at: r.at })

/** Blocks in a SQLite file (WAL, synchronous=FULL: a block the user was told of survives a power loss). */
export class SqliteBlockStore implements BlockStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'FULL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  async block(b: Block): Promise<boolean> {
    const r = this.#sql(
      'INSERT INTO blocks (blocker_id, blocked_id, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ).run(b.blockerId, b.blockedId, b.at)
    return Number(r.changes) > 0
  }

  async unblock(blockerId: string, blockedId: string): Promise<boolean> {
    const r = this.#sql('DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?').run(
      blockerId,
      blockedId,
    )
    return Number(r.changes) > 0
  }

  async get(blockerId: string, blockedId: string): Promise<Block | null> {
    const r = this.#sql('SELECT * FROM blocks WHERE blocker_id = ? AND blocked_id = ?').get(
      blockerId,
      blockedId,
    ) as BlockRow | undefined
    return r ? toBlock(r) : null
  }

  async blockedBy(blockerId: string): Promise<Block[]> {
    const rows = this.#sql('SELECT * FROM blocks WHERE blocker_id = ? ORDER BY at, blocked_id').all(
      blockerId,
    ) as unknown as BlockRow[]
    return rows.map(toBlock)
  }

  async all(): Promise<Block[]> {
    const rows = this.#sql('SELECT * FROM blocks').all() as unknown as BlockRow[]
    return rows.map(toBlock)
  }

  async removeUser(userId: string): Promise<number> {
    // The primary key leads with the blocker; the blocks on the user are a scan (blocks are few).
    const r = this.#sql('DELETE FROM blocks WHERE blocker_id = ?1 OR blocked_id = ?1').run(userId)
    return Number(r.changes)
  }

  async purgeErased(): Promise<void> {
    await truncateWal(this.#db)
  }

  async close(): Promise<void> {
    this.#db.close()
  }
}
