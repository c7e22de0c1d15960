import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import type { AccountChange, AccountRecord, AccountStatus, AccountStore } from './account-store.ts'

interface AccountRow {
  user_id: string
  status: AccountStatus
  since: number
  reason: string | null
  by_name: string
  step: string | null
  done: number
  owner: string | null
  lease_until: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS accounts (
  user_id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  since INTEGER NOT NULL,
  reason TEXT,
  by_name TEXT NOT NULL,
  step TEXT,
  done INTEGER NOT NULL DEFAULT 0,
  owner TEXT,
  lease_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`

const toRecord = (r: AccountRow): AccountRecord => ({
  userId: r.user_id,
  status: r.status,
  since: r.since,
  reason: r.reason,
  by: r.by_name,
  ...(r.step !== null
    ? { erase: { step: r.step, done: r.done, owner: r.owner, leaseUntil: r.lease_until } }
    : {}),
})

/**
 * Account states in a SQLite file (WAL, synchronous=FULL: a ban the operator was told of
 * survives a power loss; secure_delete: a lifted ban's reason is zeroed, not left in free pages).
 */
export class SqliteAccountStore implements AccountStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'FULL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  async get(userId: string): Promise<AccountRecord | null> {
    const r = this.#sql('SELECT * FROM accounts WHERE user_id = ?').get(userId) as AccountRow | undefined
    return r ? toRecord(r) : null
  }

  async all(): Promise<AccountRecord[]> {
    return (this.#sql('SELECT * FROM accounts').all() as unknown as AccountRow[]).map(toRecord)
  }

  async ban(userId: string, b: { reason: string | null; by: string; at: number }): Promise<AccountChange> {
    const r = this.#sql(
      `INSERT INTO accounts (user_id, status, since, reason, by_name) VALUES (?, 'banned', ?, ?, ?)
       ON CONFLICT DO NOTHING`,
    ).run(userId, b.at, b.reason, b.by)
    return { record: (await this.get(userId)) as AccountRecord, changed: Number(r.changes) > 0 }
  }

  async unban(userId: string): Promise<boolean> {
    const r = this.#sql("DELETE FROM accounts WHERE user_id = ? AND status = 'banned'").run(userId)
    return Number(r.changes) > 0
  }

  async beginErase(userId: string, b: { by: string; at: number; step: string }): Promise<AccountChange> {
    // One statement: a concurrent ban or erase cannot slip between a read and the write.
    const r = this.#sql(
      `INSERT INTO accounts (user_id, status, since, reason, by_name, step, done, owner, lease_until)
       VALUES (?, 'erasing', ?, NULL, ?, ?, 0, NULL, 0)
       ON CONFLICT (user_id) DO UPDATE SET status = 'erasing', since = excluded.since, reason = NULL,
         by_name = excluded.by_name, step = excluded.step, done = 0, owner = NULL, lease_until = 0
       WHERE status = 'banned'`,
    ).run(userId, b.at, b.by, b.step)
    return { record: (await this.get(userId)) as AccountRecord, changed: Number(r.changes) > 0 }
  }

  async claimErase(
    userId: string,
    owner: string,
    now: number,
    leaseMs: number,
  ): Promise<AccountRecord | null> {
    const r = this.#sql(
      `UPDATE accounts SET owner = ?, lease_until = ?
       WHERE user_id = ? AND status = 'erasing' AND (owner IS NULL OR owner = ? OR lease_until <= ?)
       RETURNING *`,
    ).get(owner, now + leaseMs, userId, owner, now) as AccountRow | undefined
    return r ? toRecord(r) : null
  }

  async progress(
    userId: string,
    owner: string,
    p: { step: string; done: number; leaseUntil: number },
  ): Promise<boolean> {
    const r = this.#sql(
      `UPDATE accounts SET step = ?, done = ?, lease_until = ?
       WHERE user_id = ? AND status = 'erasing' AND owner = ?`,
    ).run(p.step, p.done, p.leaseUntil, userId, owner)
    return Number(r.changes) > 0
  }

  async finishErase(userId: string, owner: string, at: number): Promise<boolean> {
    const r = this.#sql(
      `UPDATE accounts SET status = 'erased', since = ?, step = 'done', owner = NULL, lease_until = 0
       WHERE user_id = ? AND status = 'erasing' AND owner = ?`,
    ).run(at, userId, owner)
    return Number(r.changes) > 0
  }

  purgeErased(): Promise<void> {
    return truncateWal(this.#db)
  }

  async close(): Promise<void> {
    this.#db.close()
  }
}
