import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { inTransaction, openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import type { Profile, ProfileChange, ProfileStore } from './profile-store.ts'

interface ProfileRow {
  user_id: string
  display_name: string | null
  avatar: string | null
  updated_at: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS profiles (
  user_id TEXT PRIMARY KEY,
  display_name TEXT,
  avatar TEXT,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS profiles_avatar ON profiles (avatar) WHERE avatar IS NOT NULL;
`

const toProfile = (r: ProfileRow): Profile => ({
  userId: r.user_id,
  displayName: r.display_name,
  avatar: r.avatar,
  updatedAt: r.updated_at,
})

/** Profiles in a SQLite file of the data directory (WAL, synchronous=NORMAL like the other stores). */
export class SqliteProfileStore implements ProfileStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'NORMAL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  async set(c: ProfileChange): Promise<Profile> {
    return inTransaction(this.#db, () => {
      const row = this.#sql('SELECT * FROM profiles WHERE user_id = ?').get(c.userId) as unknown as
        | ProfileRow
        | undefined
      const next: Profile = {
        userId: c.userId,
        displayName: c.displayName !== undefined ? c.displayName : (row?.display_name ?? null),
        avatar: c.avatar !== undefined ? c.avatar : (row?.avatar ?? null),
        updatedAt: c.at,
      }
      this.#sql(
        `INSERT INTO profiles (user_id, display_name, avatar, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,
             avatar = excluded.avatar, updated_at = excluded.updated_at`,
      ).run(next.userId, next.displayName, next.avatar, next.updatedAt)
      return next
    })
  }

  async get(userIds: string[]): Promise<Profile[]> {
    if (userIds.length === 0) return []
    const rows = this.#sql('SELECT * FROM profiles WHERE user_id IN (SELECT value FROM json_each(?))').all(
      JSON.stringify([...new Set(userIds)]),
    ) as unknown as ProfileRow[]
    return rows.map(toProfile)
  }

  async isAvatar(mediaId: string): Promise<boolean> {
    return this.#sql('SELECT 1 FROM profiles WHERE avatar = ? LIMIT 1').get(mediaId) !== undefined
  }

  async avatarOwners(mediaId: string): Promise<string[]> {
    const rows = this.#sql('SELECT user_id FROM profiles WHERE avatar = ?').all(mediaId) as unknown as {
      user_id: string
    }[]
    return rows.map((r) => r.user_id)
  }

  async remove(userId: string): Promise<boolean> {
    return Number(this.#sql('DELETE FROM profiles WHERE user_id = ?').run(userId).changes) > 0
  }

  async purgeErased(): Promise<void> {
    await truncateWal(this.#db)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}
