import type { DatabaseSync, StatementSync } from 'node:sqlite'

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
