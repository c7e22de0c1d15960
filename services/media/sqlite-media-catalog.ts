import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite'
import { inTransaction, openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import type { MediaCatalog, MediaFacts, MediaRecord, NewMedia, SweepCutoffs } from './media-catalog.ts'
import type { MediaKind } from './media-kinds.ts'

interface MediaRow {
  id: string
  uploader_id: string
  sha256: string
  size: number
  content_type: string
  kind: string
  name: string | null
  status: string
  created_at: number
  expires_at: number
  ready_at: number | null
  last_sent_at: number | null
  width: number | null
  height: number | null
  duration_ms: number | null
  has_thumbnail: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS media (
  id TEXT PRIMARY KEY,
  uploader_id TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  content_type TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT,
  status TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  ready_at INTEGER,
  last_sent_at INTEGER,
  width INTEGER,
  height INTEGER,
  duration_ms INTEGER,
  has_thumbnail INTEGER NOT NULL DEFAULT 0
);
-- One record per uploader and declared bytes: checksum, type and size. Catalogs made before the
-- type and size were part of it had media_uploader_sha (uploader, checksum): replaced, since a
-- pending upload of the same bytes under another type would otherwise block that one.
CREATE UNIQUE INDEX IF NOT EXISTS media_uploader_bytes ON media (uploader_id, sha256, content_type, size);
DROP INDEX IF EXISTS media_uploader_sha;
CREATE INDEX IF NOT EXISTS media_status ON media (status);
CREATE TABLE IF NOT EXISTS media_chats (
  media_id TEXT NOT NULL,
  chat_id TEXT NOT NULL,
  PRIMARY KEY (media_id, chat_id)
) WITHOUT ROWID;
`

// The same condition in due() and markDeleting(), so a record is marked only while it is due.
const DUE = `(
  (status = 'pending' AND expires_at < :now)
  OR (status = 'ready' AND last_sent_at IS NULL AND ready_at < :unsentBefore)
  OR (status = 'ready' AND last_sent_at < :sentBefore)
  OR status = 'deleting'
)`
// Built once: the statement cache is keyed by the text.
const SELECT_DUE = `SELECT * FROM media WHERE ${DUE} ORDER BY created_at LIMIT :limit`
const MARK_DELETING = `UPDATE media SET status = 'deleting' WHERE id = :id AND ${DUE}`

function toRecord(r: MediaRow): MediaRecord {
  return {
    id: r.id,
    uploaderId: r.uploader_id,
    sha256: r.sha256,
    size: r.size,
    contentType: r.content_type,
    kind: r.kind as MediaKind,
    name: r.name,
    status: r.status as MediaRecord['status'],
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    readyAt: r.ready_at,
    lastSentAt: r.last_sent_at,
    width: r.width,
    height: r.height,
    durationMs: r.duration_ms,
    hasThumbnail: r.has_thumbnail === 1,
  }
}

const cutoffParams = (c: SweepCutoffs): Record<string, SQLInputValue> => ({
  now: c.now,
  unsentBefore: c.unsentBefore,
  sentBefore: c.sentBefore,
})

/** The media catalog in a SQLite file of the data directory. Its writes are rare and small. */
export class SqliteMediaCatalog implements MediaCatalog {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'FULL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  async begin(m: NewMedia): Promise<{ record: MediaRecord; created: boolean }> {
    // One statement, so a sweep marking the record deleting comes wholly before or after it.
    this.#sql(
      `INSERT INTO media (id, uploader_id, sha256, size, content_type, kind, name, status, created_at, expires_at, duration_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)
         ON CONFLICT (uploader_id, sha256, content_type, size) DO UPDATE SET ready_at = max(ready_at, excluded.created_at)
           WHERE status = 'ready' AND last_sent_at IS NULL`,
    ).run(
      m.id,
      m.uploaderId,
      m.sha256,
      m.size,
      m.contentType,
      m.kind,
      m.name,
      m.createdAt,
      m.expiresAt,
      m.durationMs,
    )
    const row = this.#sql(
      'SELECT * FROM media WHERE uploader_id = ? AND sha256 = ? AND content_type = ? AND size = ?',
    ).get(m.uploaderId, m.sha256, m.contentType, m.size) as unknown as MediaRow
    return { record: toRecord(row), created: row.id === m.id }
  }

  async get(id: string): Promise<MediaRecord | null> {
    const row = this.#sql('SELECT * FROM media WHERE id = ?').get(id) as unknown as MediaRow | undefined
    return row ? toRecord(row) : null
  }

  async extend(id: string, expiresAt: number): Promise<void> {
    this.#sql(`UPDATE media SET expires_at = max(expires_at, ?) WHERE id = ? AND status = 'pending'`).run(
      expiresAt,
      id,
    )
  }

  async complete(id: string, f: MediaFacts, at: number): Promise<MediaRecord | null> {
    const done = this.#sql(
      `UPDATE media SET status = 'ready', ready_at = ?, width = ?, height = ?, has_thumbnail = ?
         WHERE id = ? AND status = 'pending'`,
    ).run(at, f.width, f.height, f.hasThumbnail ? 1 : 0, id)
    return Number(done.changes) === 1 ? this.get(id) : null
  }

  async reference(id: string, chatId: string, at: number): Promise<boolean> {
    return inTransaction(this.#db, () => {
      const marked = this.#sql(
        `UPDATE media SET last_sent_at = max(coalesce(last_sent_at, 0), ?) WHERE id = ? AND status = 'ready'`,
      ).run(at, id)
      if (Number(marked.changes) === 1) {
        this.#sql('INSERT INTO media_chats (media_id, chat_id) VALUES (?, ?) ON CONFLICT DO NOTHING').run(
          id,
          chatId,
        )
      }
      return Number(marked.changes) === 1
    })
  }

  async chatsOf(id: string): Promise<string[]> {
    const rows = this.#sql('SELECT chat_id FROM media_chats WHERE media_id = ?').all(id) as unknown as {
      chat_id: string
    }[]
    return rows.map((r) => r.chat_id)
  }

  async due(c: SweepCutoffs, limit: number): Promise<MediaRecord[]> {
    const rows = this.#sql(SELECT_DUE).all({ ...cutoffParams(c), limit }) as unknown as MediaRow[]
    return rows.map(toRecord)
  }

  async markDeleting(id: string, c: SweepCutoffs): Promise<boolean> {
    const marked = this.#sql(MARK_DELETING).run({ ...cutoffParams(c), id })
    return Number(marked.changes) === 1
  }

  async uploadedBy(userId: string): Promise<MediaRecord[]> {
    // media_uploader_bytes leads with the uploader.
    const rows = this.#sql('SELECT * FROM media WHERE uploader_id = ? ORDER BY created_at, id').all(
      userId,
    ) as unknown as MediaRow[]
    return rows.map(toRecord)
  }

  async markDeletingOf(userId: string, id: string): Promise<boolean> {
    const marked = this.#sql("UPDATE media SET status = 'deleting' WHERE id = ? AND uploader_id = ?").run(
      id,
      userId,
    )
    return Number(marked.changes) === 1
  }

  async remove(id: string): Promise<void> {
    inTransaction(this.#db, () => {
      this.#sql('DELETE FROM media_chats WHERE media_id = ?').run(id)
      this.#sql('DELETE FROM media WHERE id = ?').run(id)
    })
  }

  async purgeErased(): Promise<void> {
    await truncateWal(this.#db)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}
