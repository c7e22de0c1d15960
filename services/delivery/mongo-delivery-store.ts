import { type AnyBulkWriteOperation, type Collection, MongoBulkWriteError, type MongoClient } from 'mongodb'
import { withDeadline } from '../storage/deadline.ts'
import { KeyedQueue } from '../storage/keyed-queue.ts'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
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

interface SessionDoc extends DeviceSession {
  /** JSON of [userId, deviceId]: every lookup of a device's session is by _id. */
  _id: string
  /** Kept across sessions; absent on documents written before it existed (since stands in). */
  firstSeen?: number
}

interface RevocationDoc {
  /** JSON of [userId, deviceId], deviceId null for "every device but except". */
  _id: string
  userId: string
  deviceId: string | null
  before: number
  except: string | null
}

interface CursorDoc extends DeviceCursor {
  /** JSON of [userId, deviceId, chatId]. */
  _id: string
  /**
   * The since of the session the cursor belongs to (CursorMove); absent on documents written
   * before cursors named their session (taken as the current session's).
   */
  since?: number
}

/**
 * A command whose reply has not begun after this long (ms) fails and its connection is closed
 * (connectMongo's socketTimeoutMS): every command here is a small keyed read or write.
 */
const SOCKET_TIMEOUT_MS = 5000
/**
 * A write about a device holds that device's queue at most this long (ms), then fails with a
 * DeadlineError and the next write about the device runs. After FerretDB was stopped, a write
 * waiting on a connection that never answered held a device's queue for good, and the device's
 * next CONNECT was never recorded, so its inbox never started (test/faults, mongo-stop-5s). A
 * write given up on may still land later; every one here is safe to land late (a disconnect
 * names its connection, cursors only rise, a session record is rewritten at the next CONNECT).
 */
const HOLD_MS = 8000
/** touch() writes this many sessions per command, so that each stays short. */
const TOUCH_BATCH = 500

const sessionKey = (d: DeviceRef) => JSON.stringify([d.userId, d.deviceId])
const cursorKey = (c: DeviceRef & { chatId: string }) => JSON.stringify([c.userId, c.deviceId, c.chatId])

function toSession(doc: SessionDoc): DeviceSession {
  return {
    userId: doc.userId,
    deviceId: doc.deviceId,
    since: doc.since,
    lastSeen: doc.lastSeen,
    connected: doc.connected,
    conn: doc.conn,
    clean: doc.clean,
    inboxQos: doc.inboxQos === 0 || doc.inboxQos === 1 ? doc.inboxQos : null,
  }
}

/** The write errors of a bulk write (the driver gives one error or a list). */
function writeErrors(err: unknown): { index: number; code?: number }[] {
  if (!(err instanceof MongoBulkWriteError)) return []
  const errors = err.writeErrors as unknown as
    | { index: number; code?: number }[]
    | { index: number; code?: number }
  return Array.isArray(errors) ? errors : [errors]
}

/**
 * Delivery state in MongoDB with single-document writes only (no transactions, as on every
 * MongoDB-wire server). Where several writes make one change, they are ordered so that a crash
 * between them leaves more to deliver, never less: a fresh session removes the old cursors
 * before it records itself, and an expired device loses its cursors before its session.
 *
 * Every write about a device runs after the previous ones about it in this process. FerretDB v1
 * applies an update by reading the document and writing it back whole, so two concurrent writes
 * of one document can undo each other (a touch could revive a disconnected session, a $max move
 * a cursor back); across nodes that remains possible on FerretDB, as docs/decisions.md says.
 */
export class MongoDeliveryStore implements DeliveryStore {
  readonly #client: MongoClient
  readonly #sessions: Collection<SessionDoc>
  readonly #cursors: Collection<CursorDoc>
  readonly #revocations: Collection<RevocationDoc>
  readonly #serial = new KeyedQueue()

  private constructor(client: MongoClient) {
    this.#client = client
    const db = client.db()
    this.#sessions = db.collection<SessionDoc>('device_sessions')
    this.#cursors = db.collection<CursorDoc>('device_cursors')
    this.#revocations = db.collection<RevocationDoc>('device_revocations')
  }

  static async open(uri: string): Promise<MongoDeliveryStore> {
    const store = new MongoDeliveryStore(await connectMongo(uri, { socketTimeoutMS: SOCKET_TIMEOUT_MS }))
    await ensureIndexes(store.#sessions, [
      { key: { lastSeen: 1 }, name: 'last_seen' },
      { key: { userId: 1, deviceId: 1 }, name: 'user' },
    ])
    await ensureIndexes(store.#cursors, [
      { key: { chatId: 1 }, name: 'chat' },
      { key: { userId: 1, deviceId: 1 }, name: 'device' },
    ])
    return store
  }

  /**
   * Runs work once the earlier work about each of these devices has finished, and holds them
   * until it has, or for HOLD_MS at most (then it fails with a DeadlineError). Each call queues
   * behind every key at once, in call order, so two calls that share devices never wait for
   * each other in a circle.
   */
  #holding<T>(devices: DeviceRef[], task: () => Promise<T>): Promise<T> {
    const work = () => withDeadline(task(), HOLD_MS, 'delivery store write')
    const keys = [...new Set(devices.map(sessionKey))]
    if (keys.length === 1) return this.#serial.run(keys[0] as string, work)
    let release = () => {}
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    const turns = keys.map(
      (key) =>
        new Promise<void>((ready) => {
          void this.#serial.run(key, () => {
            ready()
            return released
          })
        }),
    )
    return Promise.all(turns).then(work).finally(release)
  }

  connect(d: DeviceRef & { clean: boolean; conn: string; at: number }): Promise<ConnectResult> {
    return this.#holding([d], async () => {
      const _id = sessionKey(d)
      const doc = await this.#sessions.findOne({ _id })
      const previous = doc ? toSession(doc) : null
      const { session, fresh } = sessionAfterConnect(previous, d)
      if (fresh) await this.#cursors.deleteMany({ userId: d.userId, deviceId: d.deviceId })
      await this.#upsertSession(_id, { ...session, firstSeen: doc?.firstSeen ?? doc?.since ?? d.at })
      return { session, previous, fresh }
    })
  }

  async #upsertSession(_id: string, session: DeviceSession & { firstSeen: number }): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#sessions.replaceOne({ _id }, { ...session }, { upsert: true })
        return
      } catch (err) {
        // Another node's first connect of this device inserted it meanwhile: replace that one.
        if (!isDuplicateKey(err) || attempt >= 5) throw err
      }
    }
  }

  disconnect(d: DeviceRef & { conn: string; at: number }): Promise<void> {
    return this.#holding([d], async () => {
      await this.#sessions.updateOne(
        { _id: sessionKey(d), conn: d.conn },
        { $set: { connected: false, lastSeen: d.at } },
      )
    })
  }

  subscribe(d: DeviceRef & { qos: 0 | 1 | null }): Promise<void> {
    return this.#holding([d], async () => {
      await this.#sessions.updateOne({ _id: sessionKey(d) }, { $set: { inboxQos: d.qos } })
    })
  }

  async touch(devices: DeviceRef[], at: number): Promise<void> {
    for (let i = 0; i < devices.length; i += TOUCH_BATCH) {
      const batch = devices.slice(i, i + TOUCH_BATCH)
      await this.#holding(batch, async () => {
        await this.#sessions.updateMany({ _id: { $in: batch.map(sessionKey) } }, { $set: { lastSeen: at } })
      })
    }
  }

  async session(d: DeviceRef): Promise<DeviceSession | null> {
    const doc = await this.#sessions.findOne({ _id: sessionKey(d) })
    return doc ? toSession(doc) : null
  }

  async cursors(d: DeviceRef & { since?: number }): Promise<Map<string, number>> {
    const docs = await this.#cursors
      .find(
        { userId: d.userId, deviceId: d.deviceId },
        { projection: { _id: 0, chatId: 1, seq: 1, since: 1 } },
      )
      .toArray()
    const mine = docs.filter((c) => d.since === undefined || c.since === undefined || c.since === d.since)
    return new Map(mine.map((c) => [c.chatId, c.seq]))
  }

  /**
   * Two round trips whatever the number of moves: one query for the devices' sessions, one
   * unordered bulk write of upserts that only ever raise seq ($max). Each cursor names the
   * session it belongs to (`since`): a move checked against one session may land after another
   * node recorded a new one, and then its cursor is one cursors() of the new session skips.
   */
  advance(moves: CursorMove[]): Promise<void> {
    if (moves.length === 0) return Promise.resolve()
    return this.#holding(moves, async () => {
      const devices = [...new Set(moves.map(sessionKey))]
      const live = await this.#sessions
        .find({ _id: { $in: devices } }, { projection: { _id: 1, since: 1 } })
        .toArray()
      const current = new Map(live.map((s) => [s._id, s.since]))
      // One write per cursor: two updates of one document in a batch could race on FerretDB.
      const highest = new Map<string, Required<CursorMove>>()
      for (const m of moves) {
        const since = current.get(sessionKey(m))
        if (since === undefined || (m.since !== undefined && m.since !== since)) continue
        const key = cursorKey(m)
        if ((highest.get(key)?.seq ?? Number.NEGATIVE_INFINITY) < m.seq) highest.set(key, { ...m, since })
      }
      const entries = [...highest]
      const ops: AnyBulkWriteOperation<CursorDoc>[] = entries.map(([_id, m]) => ({
        updateOne: {
          filter: { _id, since: m.since },
          update: {
            $max: { seq: m.seq },
            $setOnInsert: { userId: m.userId, deviceId: m.deviceId, chatId: m.chatId },
          },
          upsert: true,
        },
      }))
      if (ops.length === 0) return
      try {
        await this.#cursors.bulkWrite(ops, { ordered: false })
      } catch (err) {
        // A cursor with this _id but another session (or created by another node meanwhile).
        const failed = writeErrors(err)
        if (failed.length === 0 || failed.some((e) => e.code !== 11000)) throw err
        for (const { index } of failed) {
          const [_id, m] = entries[index] as [string, Required<CursorMove>]
          await this.#settleCursor(_id, m)
        }
      }
    })
  }

  /**
   * Writes one move whose upsert found a cursor of the same _id: raised when it is this
   * session's, taken over when it is an older session's (written late) or one written before
   * cursors named their session, left alone (the move is stale) when it is a newer session's.
   */
  async #settleCursor(_id: string, m: Required<CursorMove>): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const doc = await this.#cursors.findOne({ _id }, { projection: { _id: 0, since: 1 } })
      if (doc?.since !== undefined && doc.since > m.since) return
      try {
        if (!doc || doc.since === m.since) {
          await this.#cursors.updateOne(
            { _id, since: m.since },
            {
              $max: { seq: m.seq },
              $setOnInsert: { userId: m.userId, deviceId: m.deviceId, chatId: m.chatId },
            },
            { upsert: true },
          )
          return
        }
        const taken =
          doc.since === undefined
            ? await this.#cursors.updateOne(
                { _id, since: { $exists: false } },
                { $max: { seq: m.seq }, $set: { since: m.since } },
              )
            : await this.#cursors.updateOne(
                { _id, since: doc.since },
                { $set: { seq: m.seq, since: m.since } },
              )
        if (taken.matchedCount === 1) return
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
    }
    throw new Error(`delivery cursor ${_id} kept changing while it was written`)
  }

  async chatCursors(chatId: string): Promise<DeviceCursor[]> {
    const docs = await this.#cursors
      .find({ chatId }, { projection: { _id: 0 } })
      .sort({ userId: 1, deviceId: 1 })
      .toArray()
    return docs.map((c) => ({ userId: c.userId, deviceId: c.deviceId, chatId: c.chatId, seq: c.seq }))
  }

  forgetCursor(d: DeviceRef & { chatId: string }): Promise<void> {
    return this.#holding([d], async () => {
      await this.#cursors.deleteOne({ _id: cursorKey(d) })
    })
  }

  async expire(cutoff: number): Promise<DeviceRef[]> {
    const stale = await this.#sessions
      .find({ lastSeen: { $lt: cutoff } }, { projection: { _id: 0, userId: 1, deviceId: 1 } })
      .sort({ userId: 1, deviceId: 1 })
      .toArray()
    const removed: DeviceRef[] = []
    for (const s of stale) {
      const d = { userId: s.userId, deviceId: s.deviceId }
      await this.#holding([d], async () => {
        await this.#cursors.deleteMany(d)
        // Only if it was not seen since it was read: a device that came back keeps its session
        // (and, having lost its cursors, is sent its messages again rather than none).
        const gone = await this.#sessions.deleteOne({ _id: sessionKey(d), lastSeen: { $lt: cutoff } })
        if (gone.deletedCount === 1) removed.push(d)
      })
    }
    return removed
  }

  async devices(userId: string): Promise<DeviceSummary[]> {
    const docs = await this.#sessions.find({ userId }).sort({ deviceId: 1 }).toArray()
    return docs.map((s) => ({
      deviceId: s.deviceId,
      firstSeen: s.firstSeen ?? s.since,
      lastSeen: s.lastSeen,
      connected: s.connected,
    }))
  }

  deviceCount(userId: string): Promise<number> {
    return this.#sessions.countDocuments({ userId })
  }

  remove(d: DeviceRef): Promise<boolean> {
    return this.#holding([d], async () => {
      // Cursors first: a crash between the two leaves a session that delivers again, never a
      // cursor without a session.
      await this.#cursors.deleteMany({ userId: d.userId, deviceId: d.deviceId })
      const gone = await this.#sessions.deleteOne({ _id: sessionKey(d) })
      return gone.deletedCount === 1
    })
  }

  async forgetUser(userId: string): Promise<DeviceRef[]> {
    const sessions = await this.#sessions
      .find({ userId }, { projection: { _id: 0, deviceId: 1 } })
      .sort({ deviceId: 1 })
      .toArray()
    const removed: DeviceRef[] = []
    // Device by device as remove does; then what no session covers (a crash's leftovers).
    for (const { deviceId } of sessions)
      if (await this.remove({ userId, deviceId })) removed.push({ userId, deviceId })
    await this.#cursors.deleteMany({ userId })
    await this.#revocations.deleteMany({ userId })
    return removed
  }

  async revoke(r: Revocation): Promise<void> {
    const _id = JSON.stringify([r.userId, r.deviceId])
    if (r.deviceId === null) {
      await this.#revocations.replaceOne(
        { _id },
        { userId: r.userId, deviceId: null, before: r.before, except: r.except },
        { upsert: true },
      )
      return
    }
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#revocations.updateOne(
          { _id },
          {
            $max: { before: r.before },
            $setOnInsert: { userId: r.userId, deviceId: r.deviceId, except: null },
          },
          { upsert: true },
        )
        return
      } catch (err) {
        // Two nodes revoking the same device at once: the second upsert goes again, as an update.
        if (!isDuplicateKey(err) || attempt >= 5) throw err
      }
    }
  }

  async revocations(): Promise<Revocation[]> {
    const docs = await this.#revocations.find({}).sort({ _id: 1 }).toArray()
    // FerretDB leaves a null of $setOnInsert out of the document.
    return docs.map((d) => ({
      userId: d.userId,
      deviceId: d.deviceId ?? null,
      before: d.before,
      except: d.deviceId == null ? (d.except ?? null) : null,
    }))
  }

  /** Deletes replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  async close(): Promise<void> {
    await this.#serial.settled()
    await this.#client.close()
  }
}
