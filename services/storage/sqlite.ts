import type { DatabaseSync } from 'node:sqlite'

/**
 * Runs work in one transaction and returns its result; rolls back and rethrows when it throws.
 * IMMEDIATE: another connection to the same file (the writer thread, the CLI) waits for the
 * write lock up front instead of failing halfway through with SQLITE_BUSY.
 */
export function inTransaction<T>(db: DatabaseSync, work: () => T): T {
  db.exec('BEGIN IMMEDIATE')
  try {
    const result = work()
    db.exec('COMMIT')
    return result
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw err
  }
}
