import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { openSqliteFile, statementCache } from '../storage/sqlite.ts'
import type { AcceptedCommit, CommitStore } from './commit-store.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mls_commits (
  chat_id TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  sender_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  leaves TEXT NOT NULL,
  bytes BLOB NOT NULL,
  added TEXT NOT NULL,
  welcome BLOB,
  at INTEGER NOT NULL,
  seq INTEGER,
  PRIMARY KEY (chat_id, epoch)
) WITHOUT ROWID;
`

interface Row {
  chat_id: string
  epoch: number
  sender_id: string
  device_id: string
  leaves: string
  bytes: Uint8Array
  added: string
  welcome: Uint8Array | null
  at: number
  seq: number | null
}

const toCommit = (r: Row): AcceptedCommit => ({
  chatId: r.chat_id,
  epoch: r.epoch,
  senderId: r.sender_id,
  deviceId: r.device_id,
  leaves: JSON.parse(r.leaves) as (string | null)[],
  bytes: new Uint8Array(r.bytes),
  added: JSON.parse(r.added) as string[],
  welcome: r.welcome === null ? null : new Uint8Array(r.welcome),
  at: r.at,
  seq: r.seq,
})

/**
 * Accepted Commits in a SQLite file of the data directory (the KeyPackages' file, mls.db), FULL
 * synchronous: an accepted Commit is what every member's next Commit builds on. The primary key
 * (chat, epoch) makes a second Commit for an epoch fail, through any connection.
 */
export class SqliteCommitStore implements CommitStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'FULL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  async get(chatId: string, epoch: number): Promise<AcceptedCommit | null> {
    const r = this.#sql('SELECT * FROM mls_commits WHERE chat_id = ? AND epoch = ?').get(chatId, epoch) as
      | Row
      | undefined
    return r ? toCommit(r) : null
  }

  async latest(chatId: string): Promise<AcceptedCommit | null> {
    const r = this.#sql('SELECT * FROM mls_commits WHERE chat_id = ? ORDER BY epoch DESC LIMIT 1').get(
      chatId,
    ) as Row | undefined
    return r ? toCommit(r) : null
  }

  async insert(c: AcceptedCommit): Promise<boolean> {
    const r = this.#sql(
      `INSERT INTO mls_commits (chat_id, epoch, sender_id, device_id, leaves, bytes, added, welcome, at, seq)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, epoch) DO NOTHING`,
    ).run(
      c.chatId,
      c.epoch,
      c.senderId,
      c.deviceId,
      JSON.stringify(c.leaves),
      c.bytes,
      JSON.stringify(c.added),
      c.welcome,
      c.at,
      c.seq,
    )
    return Number(r.changes) === 1
  }

  async setSeq(chatId: string, epoch: number, seq: number): Promise<void> {
    this.#sql('UPDATE mls_commits SET seq = ? WHERE chat_id = ? AND epoch = ?').run(seq, chatId, epoch)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}
