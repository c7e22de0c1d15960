import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'

/**
 * Opens (creating it and its directory if needed) one of the stores' SQLite files the way every
 * store does: WAL, a 5 s busy timeout (the writer thread, another node's CLI), `secure_delete`
 * so that what a delete or update frees is zeroed rather than left in free pages (an account's
 * erase, docs/admin.md#erase), and the store's schema. `synchronous` FULL makes a commit survive
 * a power loss; NORMAL only a crash of the process (in WAL mode), for stores written on every
 * delivery, where an fsync each would cap the send path (docs/decisions.md).
 *
 * @param path the file, or ':memory:'
 * @param o.schema SQL run once opened (CREATE … IF NOT EXISTS)
 */
export function openSqliteFile(
  path: string,
  o: { synchronous: 'FULL' | 'NORMAL'; schema: string },
): DatabaseSync {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new DatabaseSync(path)
  db.exec(
    `PRAGMA journal_mode = WAL; PRAGMA synchronous = ${o.synchronous}; PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON;`,
  )
  db.exec(o.schema)
  return db
}

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

/**
 * A statement cache for one connection: the returned function gives the statement for an SQL
 * text, prepared on its first use and kept while the connection lives. Preparing parses and
 * plans the SQL, which cost more than running most of these lookups. The text is the key, so a
 * text built per call (a list of placeholders as long as the list) would fill the cache: such
 * queries take one JSON array parameter and read it with json_each instead.
 */
export function statementCache(db: DatabaseSync): (sql: string) => StatementSync {
  const statements = new Map<string, StatementSync>()
  return (sql) => {
    let statement = statements.get(sql)
    if (!statement) {
      statement = db.prepare(sql)
      statements.set(sql, statement)
    }
    return statement
  }
}
