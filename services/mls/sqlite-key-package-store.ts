import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { inTransaction, openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import {
  type ClaimedKeyPackage,
  type KeyPackageCount,
  type KeyPackageStore,
  uniqueNew,
} from './key-package-store.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS key_packages (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  ref TEXT NOT NULL,
  last_resort INTEGER NOT NULL,
  bytes BLOB NOT NULL,
  not_after INTEGER NOT NULL,
  added_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, device_id, ref)
);
CREATE UNIQUE INDEX IF NOT EXISTS key_packages_last_resort ON key_packages (user_id, device_id) WHERE last_resort = 1;
CREATE TABLE IF NOT EXISTS key_package_claims (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  ref TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (user_id, device_id, ref)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS key_packages_oldest ON key_packages (user_id, device_id, last_resort, added_at);
`

interface Row {
  device_id: string
  ref: string
  bytes: Uint8Array
  last_resort: number
}

/**
 * The KeyPackage directory in a SQLite file of the data directory. Every write is one
 * IMMEDIATE transaction, so a claim through another connection to the file waits for it:
 * a package is deleted by the claim that hands it out, never by two. The refs handed out stay
 * (key_package_claims), so a package handed out is never stored or handed out again.
 */
export class SqliteKeyPackageStore implements KeyPackageStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'FULL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  async add(u: Parameters<KeyPackageStore['add']>[0]) {
    return inTransaction(this.#db, () => {
      this.#sql('DELETE FROM key_packages WHERE user_id = ? AND device_id = ? AND not_after <= ?').run(
        u.userId,
        u.deviceId,
        u.now,
      )
      const rows = this.#sql(
        'SELECT ref, last_resort FROM key_packages WHERE user_id = ? AND device_id = ?',
      ).all(u.userId, u.deviceId) as unknown as { ref: string; last_resort: number }[]
      const oneTime = rows.filter((r) => r.last_resort === 0).length
      // A ref the device has already (either role), or the one becoming its last resort, is skipped.
      const have = new Set(rows.map((r) => r.ref))
      if (u.lastResort) have.add(u.lastResort.ref)
      // A package handed out before is never stored again.
      for (const r of this.#sql(
        'SELECT ref FROM key_package_claims WHERE user_id = ? AND device_id = ? AND ref IN (SELECT value FROM json_each(?))',
      ).all(u.userId, u.deviceId, JSON.stringify(u.packages.map((p) => p.ref))) as unknown as {
        ref: string
      }[])
        have.add(r.ref)
      const fresh = uniqueNew(u.packages, have)
      if (oneTime + fresh.length > u.max) return { overCap: oneTime }
      const insert = this.#sql(
        'INSERT INTO key_packages (user_id, device_id, ref, last_resort, bytes, not_after, added_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      // added_at orders claims oldest first; within one batch, in the order uploaded.
      fresh.forEach((p, i) => {
        insert.run(u.userId, u.deviceId, p.ref, 0, p.bytes, p.notAfter, u.now * 1000 + i)
      })
      if (u.lastResort) {
        this.#sql('DELETE FROM key_packages WHERE user_id = ? AND device_id = ? AND last_resort = 1').run(
          u.userId,
          u.deviceId,
        )
        // The same ref as a one-time package: the last-resort role wins, so it is never consumed.
        this.#sql('DELETE FROM key_packages WHERE user_id = ? AND device_id = ? AND ref = ?').run(
          u.userId,
          u.deviceId,
          u.lastResort.ref,
        )
        insert.run(
          u.userId,
          u.deviceId,
          u.lastResort.ref,
          1,
          u.lastResort.bytes,
          u.lastResort.notAfter,
          u.now * 1000,
        )
      }
      return { stored: fresh.length, ...this.#count(u.userId, u.deviceId, u.now) }
    })
  }

  #count(userId: string, deviceId: string, now: number): KeyPackageCount {
    const r = this.#sql(
      `SELECT COALESCE(SUM(last_resort = 0), 0) AS n, COALESCE(MAX(last_resort), 0) AS lr
         FROM key_packages WHERE user_id = ? AND device_id = ? AND not_after > ?`,
    ).get(userId, deviceId, now) as { n: number; lr: number }
    return { count: Number(r.n), lastResort: Number(r.lr) === 1 }
  }

  async count(userId: string, deviceId: string, now: number): Promise<KeyPackageCount> {
    return this.#count(userId, deviceId, now)
  }

  async claim(userId: string, now: number): Promise<ClaimedKeyPackage[]> {
    return inTransaction(this.#db, () => {
      const devices = this.#sql(
        'SELECT DISTINCT device_id FROM key_packages WHERE user_id = ? AND not_after > ? ORDER BY device_id',
      ).all(userId, now) as unknown as { device_id: string }[]
      const out: ClaimedKeyPackage[] = []
      for (const { device_id } of devices) {
        const oneTime = this.#sql(
          `DELETE FROM key_packages WHERE rowid = (
             SELECT rowid FROM key_packages WHERE user_id = ? AND device_id = ? AND last_resort = 0 AND not_after > ?
             ORDER BY added_at LIMIT 1)
           RETURNING device_id, ref, bytes, last_resort`,
        ).get(userId, device_id, now) as unknown as Row | undefined
        if (oneTime)
          this.#sql('INSERT INTO key_package_claims (user_id, device_id, ref, at) VALUES (?, ?, ?, ?)').run(
            userId,
            device_id,
            oneTime.ref,
            now,
          )
        const row =
          oneTime ??
          (this.#sql(
            'SELECT device_id, ref, bytes, last_resort FROM key_packages WHERE user_id = ? AND device_id = ? AND last_resort = 1 AND not_after > ?',
          ).get(userId, device_id, now) as unknown as Row | undefined)
        if (row)
          out.push({
            deviceId: row.device_id,
            ref: row.ref,
            bytes: new Uint8Array(row.bytes),
            lastResort: row.last_resort === 1,
          })
      }
      return out
    })
  }

  async uploaded(userId: string, deviceId: string, ref: string): Promise<boolean> {
    return (
      this.#sql(
        `SELECT 1 FROM key_packages WHERE user_id = ?1 AND device_id = ?2 AND ref = ?3
         UNION ALL SELECT 1 FROM key_package_claims WHERE user_id = ?1 AND device_id = ?2 AND ref = ?3 LIMIT 1`,
      ).get(userId, deviceId, ref) !== undefined
    )
  }

  async removeDevice(userId: string, deviceId: string): Promise<number> {
    this.#sql('DELETE FROM key_package_claims WHERE user_id = ? AND device_id = ?').run(userId, deviceId)
    return Number(
      this.#sql('DELETE FROM key_packages WHERE user_id = ? AND device_id = ?').run(userId, deviceId).changes,
    )
  }

  async removeOtherDevices(userId: string, keep: string): Promise<number> {
    this.#sql('DELETE FROM key_package_claims WHERE user_id = ? AND device_id <> ?').run(userId, keep)
    return Number(
      this.#sql('DELETE FROM key_packages WHERE user_id = ? AND device_id <> ?').run(userId, keep).changes,
    )
  }

  async removeUser(userId: string): Promise<void> {
    inTransaction(this.#db, () => {
      this.#sql('DELETE FROM key_packages WHERE user_id = ?').run(userId)
      this.#sql('DELETE FROM key_package_claims WHERE user_id = ?').run(userId)
    })
  }

  async purgeErased(): Promise<void> {
    await truncateWal(this.#db)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}
