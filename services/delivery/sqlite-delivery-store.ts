import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { inTransaction, openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import {
  type ConnectResult,
  type CursorMove,
  type DeliveryStore,
  type DeviceCursor,
  type DeviceRef,
  type DeviceSession,
  type DeviceSummary,
  type Revocation,
  sessionAfterConnect,
} from './delivery-store.ts'

interface SessionRow {
  user_id: string
  device_id: string
  since: number
  last_seen: number
  connected: number
  conn: string
  clean: number
  inbox_qos: number | null
}

interface CursorRow {
  user_id: string
  device_id: string
  chat_id: string
  seq: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  since INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  connected INTEGER NOT NULL,
  conn TEXT NOT NULL,
  clean INTEGER NOT NULL,
  inbox_qos INTEGER,
  PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_last_seen ON sessions (last_seen);
CREATE TABLE IF NOT EXISTS cursors (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  chat_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (user_id, device_id, chat_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cursors_chat ON cursors (chat_id);
CREATE TABLE IF NOT EXISTS revocations (
  user_id TEXT NOT NULL,
  -- '' for "every device but except_device".
  device_id TEXT NOT NULL,
  before INTEGER NOT NULL,
  except_device TEXT,
  PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
`

interface RevocationRow {
  user_id: string
  device_id: string
  before: number
  except_device: string | null
}

const toSession = (r: SessionRow): DeviceSession => ({
  userId: r.user_id,
  deviceId: r.device_id,
  since: r.since,
  lastSeen: r.last_seen,
  connected: r.connected === 1,
  conn: r.conn,
  clean: r.clean === 1,
  inboxQos: r.inbox_qos === 0 || r.inbox_qos === 1 ? r.inbox_qos : null,
})

/**
 * Delivery state in a SQLite file of the data directory (`delivery.db`), on the main thread:
 * every call is a few index lookups. synchronous=NORMAL: a crash of the process loses nothing
 * committed; a power cut can lose the last acknowledgements, and then a message is delivered
 * again (marked DUP), never lost.
 */
export class SqliteDeliveryStore implements DeliveryStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'NORMAL', schema: SCHEMA })
    // first_seen came after the table did: a file made before it gets the column, from since.
    const columns = this.#db.prepare('PRAGMA table_info(sessions)').all() as { name: string }[]
    if (!columns.some((c) => c.name === 'first_seen')) {
      this.#db.exec(
        'ALTER TABLE sessions ADD COLUMN first_seen INTEGER; UPDATE sessions SET first_seen = since',
      )
    }
    this.#sql = statementCache(this.#db)
  }

  #tx<T>(fn: () => T): T {
    return inTransaction(this.#db, fn)
  }

  #session(userId: string, deviceId: string): DeviceSession | null {
    const row = this.#sql('SELECT * FROM sessions WHERE user_id = ? AND device_id = ?').get(
      userId,
      deviceId,
    ) as SessionRow | undefined
    return row ? toSession(row) : null
  }

  #dropCursors(userId: string, deviceId: string): void {
    this.#sql('DELETE FROM cursors WHERE user_id = ? AND device_id = ?').run(userId, deviceId)
  }

  async connect(d: DeviceRef & { clean: boolean; conn: string; at: number }): Promise<ConnectResult> {
    return this.#tx(() => {
      const previous = this.#session(d.userId, d.deviceId)
      const { session, fresh } = sessionAfterConnect(previous, d)
      if (fresh) this.#dropCursors(d.userId, d.deviceId)
      this.#sql(
        `INSERT INTO sessions (user_id, device_id, since, last_seen, connected, conn, clean, inbox_qos, first_seen)
         VALUES (:userId, :deviceId, :since, :lastSeen, 1, :conn, :clean, :inboxQos, :lastSeen)
         ON CONFLICT (user_id, device_id) DO UPDATE SET since = excluded.since, last_seen = excluded.last_seen,
           connected = 1, conn = excluded.conn, clean = excluded.clean, inbox_qos = excluded.inbox_qos`,
      ).run({
        inboxQos: session.inboxQos,
        userId: session.userId,
        deviceId: session.deviceId,
        since: session.since,
        lastSeen: session.lastSeen,
        conn: session.conn,
        clean: session.clean ? 1 : 0,
      })
      return { session, previous, fresh }
    })
  }

  async disconnect(d: DeviceRef & { conn: string; at: number }): Promise<void> {
    this.#sql(
      'UPDATE sessions SET connected = 0, last_seen = ? WHERE user_id = ? AND device_id = ? AND conn = ?',
    ).run(d.at, d.userId, d.deviceId, d.conn)
  }

  async subscribe(d: DeviceRef & { qos: 0 | 1 | null }): Promise<void> {
    this.#sql('UPDATE sessions SET inbox_qos = ? WHERE user_id = ? AND device_id = ?').run(
      d.qos,
      d.userId,
      d.deviceId,
    )
  }

  async touch(devices: DeviceRef[], at: number): Promise<void> {
    if (devices.length === 0) return
    const move = this.#sql('UPDATE sessions SET last_seen = ? WHERE user_id = ? AND device_id = ?')
    this.#tx(() => {
      for (const d of devices) move.run(at, d.userId, d.deviceId)
    })
  }

  async session(d: DeviceRef): Promise<DeviceSession | null> {
    return this.#session(d.userId, d.deviceId)
  }

  /** `since` is not needed here: advance() and connect() are serialized on one connection. */
  async cursors(d: DeviceRef & { since?: number }): Promise<Map<string, number>> {
    const rows = this.#sql('SELECT chat_id, seq FROM cursors WHERE user_id = ? AND device_id = ?').all(
      d.userId,
      d.deviceId,
    ) as unknown as Pick<CursorRow, 'chat_id' | 'seq'>[]
    return new Map(rows.map((r) => [r.chat_id, r.seq]))
  }

  async advance(moves: CursorMove[]): Promise<void> {
    if (moves.length === 0) return
    // The WHERE on the SELECT also keeps SQLite from reading ON CONFLICT as a join constraint.
    // connect() runs on this same connection, so the session read here is the current one.
    const upsert = this.#sql(
      `INSERT INTO cursors (user_id, device_id, chat_id, seq)
       SELECT :userId, :deviceId, :chatId, :seq
       WHERE EXISTS (SELECT 1 FROM sessions WHERE user_id = :userId AND device_id = :deviceId
         AND (:since IS NULL OR since = :since))
       ON CONFLICT (user_id, device_id, chat_id) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > cursors.seq`,
    )
    this.#tx(() => {
      for (const m of moves) {
        upsert.run({
          userId: m.userId,
          deviceId: m.deviceId,
          chatId: m.chatId,
          seq: m.seq,
          since: m.since ?? null,
        })
      }
    })
  }

  async chatCursors(chatId: string): Promise<DeviceCursor[]> {
    const rows = this.#sql(
      'SELECT user_id, device_id, chat_id, seq FROM cursors WHERE chat_id = ? ORDER BY user_id, device_id',
    ).all(chatId) as unknown as CursorRow[]
    return rows.map((r) => ({ userId: r.user_id, deviceId: r.device_id, chatId: r.chat_id, seq: r.seq }))
  }

  async forgetCursor(d: DeviceRef & { chatId: string }): Promise<void> {
    this.#sql('DELETE FROM cursors WHERE user_id = ? AND device_id = ? AND chat_id = ?').run(
      d.userId,
      d.deviceId,
      d.chatId,
    )
  }

  async expire(cutoff: number): Promise<DeviceRef[]> {
    return this.#tx(() => {
      const gone = this.#sql(
        'SELECT user_id, device_id FROM sessions WHERE last_seen < ? ORDER BY user_id, device_id',
      ).all(cutoff) as unknown as Pick<SessionRow, 'user_id' | 'device_id'>[]
      const drop = this.#sql('DELETE FROM sessions WHERE user_id = ? AND device_id = ?')
      for (const g of gone) {
        this.#dropCursors(g.user_id, g.device_id)
        drop.run(g.user_id, g.device_id)
      }
      return gone.map((g) => ({ userId: g.user_id, deviceId: g.device_id }))
    })
  }

  async devices(userId: string): Promise<DeviceSummary[]> {
    const rows = this.#sql(
      'SELECT device_id, first_seen, last_seen, connected, since FROM sessions WHERE user_id = ? ORDER BY device_id',
    ).all(userId) as unknown as (Pick<SessionRow, 'device_id' | 'last_seen' | 'connected' | 'since'> & {
      first_seen: number | null
    })[]
    return rows.map((r) => ({
      deviceId: r.device_id,
      firstSeen: r.first_seen ?? r.since,
      lastSeen: r.last_seen,
      connected: r.connected === 1,
    }))
  }

  async deviceCount(userId: string): Promise<number> {
    const row = this.#sql('SELECT count(*) AS n FROM sessions WHERE user_id = ?').get(userId) as { n: number }
    return row.n
  }

  async remove(d: DeviceRef): Promise<boolean> {
    return this.#tx(() => {
      this.#dropCursors(d.userId, d.deviceId)
      const r = this.#sql('DELETE FROM sessions WHERE user_id = ? AND device_id = ?').run(
        d.userId,
        d.deviceId,
      )
      return Number(r.changes) > 0
    })
  }

  async forgetUser(userId: string): Promise<DeviceRef[]> {
    return this.#tx(() => {
      const gone = this.#sql('SELECT device_id FROM sessions WHERE user_id = ? ORDER BY device_id').all(
        userId,
      ) as unknown as Array<{ device_id: string }>
      // Each table's primary key leads with the user.
      this.#sql('DELETE FROM cursors WHERE user_id = ?').run(userId)
      this.#sql('DELETE FROM sessions WHERE user_id = ?').run(userId)
      this.#sql('DELETE FROM revocations WHERE user_id = ?').run(userId)
      return gone.map((r) => ({ userId, deviceId: r.device_id }))
    })
  }

  async revoke(r: Revocation): Promise<void> {
    if (r.deviceId === null) {
      this.#sql(
        `INSERT INTO revocations (user_id, device_id, before, except_device) VALUES (?, '', ?, ?)
         ON CONFLICT (user_id, device_id) DO UPDATE SET before = excluded.before, except_device = excluded.except_device`,
      ).run(r.userId, r.before, r.except)
      return
    }
    this.#sql(
      `INSERT INTO revocations (user_id, device_id, before, except_device) VALUES (?, ?, ?, NULL)
       ON CONFLICT (user_id, device_id) DO UPDATE SET before = max(before, excluded.before)`,
    ).run(r.userId, r.deviceId, r.before)
  }

  async revocations(): Promise<Revocation[]> {
    const rows = this.#sql(
      'SELECT * FROM revocations ORDER BY user_id, device_id',
    ).all() as unknown as RevocationRow[]
    return rows.map((r) => ({
      userId: r.user_id,
      deviceId: r.device_id === '' ? null : r.device_id,
      before: r.before,
      except: r.device_id === '' ? r.except_device : null,
    }))
  }

  async purgeErased(): Promise<void> {
    await truncateWal(this.#db)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}
