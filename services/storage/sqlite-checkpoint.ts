import type { DatabaseSync } from 'node:sqlite'

/** Checkpoint attempts before truncateWal gives up on a reader that keeps the WAL. */
const TRIES = 50
/** Wait between attempts, ms. */
const RETRY_MS = 10

/**
 * Copies the WAL into the database file and truncates the WAL to zero bytes
 * (`PRAGMA wal_checkpoint(TRUNCATE)`): the old page images it held (rows deleted or overwritten
 * since, secure_delete or not) are gone from the files. A reader whose snapshot still needs the
 * WAL keeps it from truncating (SQLite answers busy): tried again every 10 ms, 50 times, then
 * rejects with an Error saying so.
 */
export async function truncateWal(db: DatabaseSync): Promise<void> {
  for (let tries = 1; ; tries++) {
    const r = db.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get() as { busy: number }
    if (r.busy === 0) return
    if (tries === TRIES) throw new Error('a reader kept the WAL from being truncated')
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
  }
}
