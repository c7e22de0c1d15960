import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { openSqliteFile, statementCache } from '../storage/sqlite.ts'
import type { AuditEntry, AuditQuery, AuditStore, NewAuditEntry } from './audit-store.ts'

interface AuditRow {
  id: number
  at: number
  actor: string | null
  action: string
  target: string | null
  params: string
  result: string
  status: number
  remote: string | null
}

// The triggers make the table append-only for every connection, this one included: an entry can
// only be removed by deleting the file (docs/admin.md#audit-log).
const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT,
  action TEXT NOT NULL,
  target TEXT,
  params TEXT NOT NULL,
  result TEXT NOT NULL,
  status INTEGER NOT NULL,
  remote TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_target ON audit_log (target, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`

const toEntry = (r: AuditRow): AuditEntry => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  action: r.action,
  target: r.target,
  params: JSON.parse(r.params) as Record<string, unknown>,
  result: r.result,
  status: r.status,
  remote: r.remote,
})

/** The audit log in a SQLite file (WAL, synchronous=FULL: an entry written survives a power loss). */
export class SqliteAuditStore implements AuditStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'FULL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  async append(e: NewAuditEntry): Promise<AuditEntry> {
    const r = this.#sql(
      `INSERT INTO audit_log (at, actor, action, target, params, result, status, remote)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(e.at, e.actor, e.action, e.target, JSON.stringify(e.params), e.result, e.status, e.remote)
    return { id: Number(r.lastInsertRowid), ...e }
  }

  async list(q: AuditQuery): Promise<AuditEntry[]> {
    const where: string[] = ['id > ?']
    const args: (string | number)[] = [q.afterId]
    for (const [column, value] of [
      ['actor', q.actor],
      ['action', q.action],
      ['target', q.target],
    ] as const) {
      if (value === undefined) continue
      where.push(`${column} = ?`)
      args.push(value)
    }
    const found = this.#sql(`SELECT * FROM audit_log WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`).all(
      ...args,
      q.limit,
    ) as unknown as AuditRow[]
    return found.map(toEntry)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}
