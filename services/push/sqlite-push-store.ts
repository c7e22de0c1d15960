import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { inTransaction, openSqliteFile, statementCache } from '../storage/sqlite.ts'
import { truncateWal } from '../storage/sqlite-checkpoint.ts'
import {
  type JobState,
  jobKey,
  type NewJob,
  type Platform,
  type PushJob,
  type PushStore,
  type Registration,
} from './push-store.ts'

interface RegistrationRow {
  user_id: string
  device_id: string
  platform: string
  token: string
  apns_topic: string | null
  sandbox: number
  locale: string | null
  hide_text: number
  updated_at: number
}

interface JobRow {
  user_id: string
  device_id: string
  chat_id: string
  state: string
  last_seq: number
  covered_seq: number
  claimed_seq: number
  due_at: number
  attempts: number
  owner: string | null
  lease_until: number
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS push_devices (
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  platform TEXT NOT NULL,
  token TEXT NOT NULL,
  apns_topic TEXT,
  sandbox INTEGER NOT NULL,
  locale TEXT,
  hide_text INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, device_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS push_devices_token ON push_devices (token);
CREATE TABLE IF NOT EXISTS push_mutes (
  user_id TEXT NOT NULL,
  chat_id TEXT NOT NULL,
  PRIMARY KEY (user_id, chat_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS push_jobs (
  key TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  chat_id TEXT NOT NULL,
  state TEXT NOT NULL,
  last_seq INTEGER NOT NULL,
  covered_seq INTEGER NOT NULL,
  claimed_seq INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  owner TEXT,
  lease_until INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS push_jobs_due ON push_jobs (state, due_at);
CREATE INDEX IF NOT EXISTS push_jobs_device ON push_jobs (user_id, device_id);
`

const toRegistration = (r: RegistrationRow): Registration => ({
  userId: r.user_id,
  deviceId: r.device_id,
  platform: r.platform as Platform,
  token: r.token,
  apnsTopic: r.apns_topic,
  sandbox: r.sandbox === 1,
  locale: r.locale,
  hideText: r.hide_text === 1,
  updatedAt: r.updated_at,
})

const toJob = (r: JobRow): PushJob => ({
  userId: r.user_id,
  deviceId: r.device_id,
  chatId: r.chat_id,
  state: r.state as JobState,
  lastSeq: r.last_seq,
  coveredSeq: r.covered_seq,
  claimedSeq: r.claimed_seq,
  dueAt: r.due_at,
  attempts: r.attempts,
  owner: r.owner,
  leaseUntil: r.lease_until,
})

/**
 * Push state in a SQLite file of the data directory. synchronous=NORMAL: a committed job
 * survives a crash of the process (the WAL is written before the commit returns); only a
 * power cut can lose the last ones, and with them a notification, never a message.
 */
export class SqlitePushStore implements PushStore {
  readonly #db: DatabaseSync
  readonly #sql: (sql: string) => StatementSync

  constructor(path: string) {
    this.#db = openSqliteFile(path, { synchronous: 'NORMAL', schema: SCHEMA })
    this.#sql = statementCache(this.#db)
  }

  #tx<T>(fn: () => T): T {
    return inTransaction(this.#db, fn)
  }

  async register(r: Registration): Promise<void> {
    this.#tx(() => {
      const others = this.#sql(
        'SELECT user_id, device_id FROM push_devices WHERE token = ? AND NOT (user_id = ? AND device_id = ?)',
      ).all(r.token, r.userId, r.deviceId) as unknown as { user_id: string; device_id: string }[]
      for (const o of others) this.#remove(o.user_id, o.device_id)
      this.#sql(
        `INSERT INTO push_devices (user_id, device_id, platform, token, apns_topic, sandbox, locale, hide_text, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (user_id, device_id) DO UPDATE SET platform = excluded.platform, token = excluded.token,
             apns_topic = excluded.apns_topic, sandbox = excluded.sandbox, locale = excluded.locale,
             hide_text = excluded.hide_text, updated_at = excluded.updated_at`,
      ).run(
        r.userId,
        r.deviceId,
        r.platform,
        r.token,
        r.apnsTopic,
        r.sandbox ? 1 : 0,
        r.locale,
        r.hideText ? 1 : 0,
        r.updatedAt,
      )
    })
  }

  async registration(userId: string, deviceId: string): Promise<Registration | null> {
    const row = this.#sql('SELECT * FROM push_devices WHERE user_id = ? AND device_id = ?').get(
      userId,
      deviceId,
    ) as unknown as RegistrationRow | undefined
    return row ? toRegistration(row) : null
  }

  async registrations(userIds: string[]): Promise<Registration[]> {
    if (userIds.length === 0) return []
    const rows = this.#sql(
      `SELECT * FROM push_devices WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY user_id, device_id`,
    ).all(JSON.stringify(userIds)) as unknown as RegistrationRow[]
    return rows.map(toRegistration)
  }

  #remove(userId: string, deviceId: string): boolean {
    this.#sql('DELETE FROM push_jobs WHERE user_id = ? AND device_id = ?').run(userId, deviceId)
    const gone = this.#sql('DELETE FROM push_devices WHERE user_id = ? AND device_id = ?').run(
      userId,
      deviceId,
    )
    return Number(gone.changes) === 1
  }

  async unregister(userId: string, deviceId: string): Promise<boolean> {
    return this.#tx(() => this.#remove(userId, deviceId))
  }

  async unregisterToken(userId: string, deviceId: string, token: string): Promise<boolean> {
    return this.#tx(() => {
      const current = this.#sql('SELECT token FROM push_devices WHERE user_id = ? AND device_id = ?').get(
        userId,
        deviceId,
      ) as { token: string } | undefined
      return current?.token === token ? this.#remove(userId, deviceId) : false
    })
  }

  async setMuted(userId: string, chatId: string, muted: boolean): Promise<void> {
    if (muted) {
      this.#sql('INSERT INTO push_mutes (user_id, chat_id) VALUES (?, ?) ON CONFLICT DO NOTHING').run(
        userId,
        chatId,
      )
    } else {
      this.#sql('DELETE FROM push_mutes WHERE user_id = ? AND chat_id = ?').run(userId, chatId)
    }
  }

  async mutes(userIds: string[]): Promise<{ userId: string; chatId: string }[]> {
    if (userIds.length === 0) return []
    const rows = this.#sql(
      'SELECT user_id, chat_id FROM push_mutes WHERE user_id IN (SELECT value FROM json_each(?))',
    ).all(JSON.stringify(userIds)) as unknown as { user_id: string; chat_id: string }[]
    return rows.map((r) => ({ userId: r.user_id, chatId: r.chat_id }))
  }

  async enqueue(jobs: NewJob[]): Promise<void> {
    if (jobs.length === 0) return
    const upsert = this.#sql(
      `INSERT INTO push_jobs (key, user_id, device_id, chat_id, state, last_seq, covered_seq, claimed_seq, due_at, attempts, owner, lease_until)
       VALUES (:key, :userId, :deviceId, :chatId, 'pending', :seq, 0, 0, :dueAt, 0, NULL, 0)
       ON CONFLICT (key) DO UPDATE SET
         due_at = CASE WHEN state = 'idle' THEN :dueAt ELSE due_at END,
         state = CASE WHEN state = 'idle' THEN 'pending' ELSE state END,
         last_seq = max(last_seq, :seq)
       WHERE :seq > covered_seq`,
    )
    this.#tx(() => {
      for (const j of jobs) {
        upsert.run({
          key: jobKey(j),
          userId: j.userId,
          deviceId: j.deviceId,
          chatId: j.chatId,
          seq: j.seq,
          dueAt: j.dueAt,
        })
      }
    })
  }

  async claim(now: number, owner: string, leaseMs: number, limit: number): Promise<PushJob[]> {
    return this.#tx(() => {
      const rows = this.#sql(
        `SELECT * FROM push_jobs
           WHERE (state = 'pending' AND due_at <= :now) OR (state = 'claimed' AND lease_until < :now)
           ORDER BY due_at LIMIT :limit`,
      ).all({ now, limit }) as unknown as JobRow[]
      const take = this.#sql(
        `UPDATE push_jobs SET state = 'claimed', owner = ?, lease_until = ?, claimed_seq = last_seq WHERE key = ?`,
      )
      for (const r of rows) take.run(owner, now + leaseMs, jobKey(toJob(r)))
      return rows.map((r) => ({
        ...toJob(r),
        state: 'claimed' as const,
        owner,
        leaseUntil: now + leaseMs,
        claimedSeq: r.last_seq,
      }))
    })
  }

  async markSending(job: PushJob, owner: string): Promise<boolean> {
    const done = this.#sql(
      `UPDATE push_jobs SET state = 'sending' WHERE key = ? AND state = 'claimed' AND owner = ?`,
    ).run(jobKey(job), owner)
    return Number(done.changes) === 1
  }

  async finish(job: PushJob, owner: string, coveredSeq: number, nextDueAt: number): Promise<void> {
    this.#sql(
      `UPDATE push_jobs SET
           covered_seq = max(covered_seq, :covered),
           state = CASE WHEN last_seq > max(covered_seq, :covered) THEN 'pending' ELSE 'idle' END,
           due_at = :next, attempts = 0, owner = NULL, lease_until = 0
         WHERE key = :key AND state IN ('claimed', 'sending') AND owner = :owner`,
    ).run({ key: jobKey(job), owner, covered: coveredSeq, next: nextDueAt })
  }

  async retryAt(job: PushJob, owner: string, dueAt: number, attempts: number): Promise<void> {
    this.#sql(
      `UPDATE push_jobs SET state = 'pending', due_at = ?, attempts = ?, owner = NULL, lease_until = 0
         WHERE key = ? AND state IN ('claimed', 'sending') AND owner = ?`,
    ).run(dueAt, attempts, jobKey(job), owner)
  }

  async recoverInDoubt(now: number, limit: number): Promise<PushJob[]> {
    return this.#tx(() => {
      const rows = this.#sql(
        `SELECT * FROM push_jobs WHERE state = 'sending' AND lease_until < ? LIMIT ?`,
      ).all(now, limit) as unknown as JobRow[]
      const close = this.#sql(
        `UPDATE push_jobs SET covered_seq = max(covered_seq, claimed_seq),
           state = CASE WHEN last_seq > max(covered_seq, claimed_seq) THEN 'pending' ELSE 'idle' END,
           due_at = ?, attempts = 0, owner = NULL, lease_until = 0
         WHERE key = ?`,
      )
      for (const r of rows) close.run(now, jobKey(toJob(r)))
      return rows.map(toJob)
    })
  }

  async job(userId: string, deviceId: string, chatId: string): Promise<PushJob | null> {
    const row = this.#sql('SELECT * FROM push_jobs WHERE key = ?').get(
      jobKey({ userId, deviceId, chatId }),
    ) as unknown | undefined
    return row ? toJob(row as JobRow) : null
  }

  async registrationsOf(userId: string): Promise<Registration[]> {
    return this.registrations([userId])
  }

  async forgetUser(userId: string): Promise<number> {
    // push_jobs_device and the other two primary keys lead with the user.
    return inTransaction(this.#db, () => {
      let n = Number(this.#sql('DELETE FROM push_jobs WHERE user_id = ?').run(userId).changes)
      n += Number(this.#sql('DELETE FROM push_devices WHERE user_id = ?').run(userId).changes)
      n += Number(this.#sql('DELETE FROM push_mutes WHERE user_id = ?').run(userId).changes)
      return n
    })
  }

  async purgeErased(): Promise<void> {
    await truncateWal(this.#db)
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close()
  }
}
