import type { Collection, MongoClient } from 'mongodb'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import { jobKey, type NewJob, type PushJob, type PushStore, type Registration } from './push-store.ts'

interface DeviceDoc extends Registration {
  _id: string
}

interface MuteDoc {
  _id: string
  userId: string
  chatId: string
}

interface JobDoc extends PushJob {
  _id: string
}

const deviceKey = (userId: string, deviceId: string) => `${userId}/${deviceId}`

function fromDoc<T extends { _id: string }>(doc: T): Omit<T, '_id'> {
  const { _id, ...rest } = doc
  return rest
}

/**
 * Push state in MongoDB, with single-document updates only (no transactions, as on every
 * MongoDB-wire server): each job is one document keyed by device and chat, and every state
 * change is conditional on the state and owner it expects.
 */
export class MongoPushStore implements PushStore {
  readonly #client: MongoClient
  readonly #devices: Collection<DeviceDoc>
  readonly #mutes: Collection<MuteDoc>
  readonly #jobs: Collection<JobDoc>

  private constructor(client: MongoClient) {
    this.#client = client
    const db = client.db()
    this.#devices = db.collection<DeviceDoc>('push_devices')
    this.#mutes = db.collection<MuteDoc>('push_mutes')
    this.#jobs = db.collection<JobDoc>('push_jobs')
  }

  static async open(uri: string): Promise<MongoPushStore> {
    const store = new MongoPushStore(await connectMongo(uri))
    await ensureIndexes(store.#devices, [
      { key: { token: 1 }, name: 'token' },
      { key: { userId: 1 }, name: 'user' },
    ])
    await ensureIndexes(store.#mutes, [{ key: { userId: 1 }, name: 'user' }])
    await ensureIndexes(store.#jobs, [
      { key: { state: 1, dueAt: 1 }, name: 'due' },
      { key: { userId: 1, deviceId: 1 }, name: 'device' },
    ])
    return store
  }

  async register(r: Registration): Promise<void> {
    const _id = deviceKey(r.userId, r.deviceId)
    await this.#devices.replaceOne({ _id }, { ...r }, { upsert: true })
    // The token now belongs to this device only.
    const others = await this.#devices.find({ token: r.token, _id: { $ne: _id } }).toArray()
    for (const o of others) await this.unregisterToken(o.userId, o.deviceId, r.token)
  }

  async registration(userId: string, deviceId: string): Promise<Registration | null> {
    const doc = await this.#devices.findOne({ _id: deviceKey(userId, deviceId) })
    return doc ? fromDoc(doc) : null
  }

  async registrations(userIds: string[]): Promise<Registration[]> {
    if (userIds.length === 0) return []
    const docs = await this.#devices
      .find({ userId: { $in: userIds } })
      .sort({ userId: 1, deviceId: 1 })
      .toArray()
    return docs.map(fromDoc)
  }

  async unregister(userId: string, deviceId: string): Promise<boolean> {
    const gone = await this.#devices.deleteOne({ _id: deviceKey(userId, deviceId) })
    await this.#jobs.deleteMany({ userId, deviceId })
    return gone.deletedCount === 1
  }

  async unregisterToken(userId: string, deviceId: string, token: string): Promise<boolean> {
    const gone = await this.#devices.deleteOne({ _id: deviceKey(userId, deviceId), token })
    if (gone.deletedCount === 1) await this.#jobs.deleteMany({ userId, deviceId })
    return gone.deletedCount === 1
  }

  async setMuted(userId: string, chatId: string, muted: boolean): Promise<void> {
    const _id = `${userId}/${chatId}`
    if (muted) await this.#mutes.replaceOne({ _id }, { userId, chatId }, { upsert: true })
    else await this.#mutes.deleteOne({ _id })
  }

  async mutes(userIds: string[]): Promise<{ userId: string; chatId: string }[]> {
    if (userIds.length === 0) return []
    const docs = await this.#mutes.find({ userId: { $in: userIds } }).toArray()
    return docs.map((m) => ({ userId: m.userId, chatId: m.chatId }))
  }

  /**
   * Two round trips whatever the number of jobs (a message to a large group makes many): new
   * jobs are inserted, then every job, new or not, gets the same two conditional updates in
   * order. Inserting first means a job another node creates meanwhile still gets the updates.
   */
  async enqueue(jobs: NewJob[]): Promise<void> {
    if (jobs.length === 0) return
    try {
      await this.#jobs.insertMany(
        jobs.map((j) => ({
          _id: jobKey(j),
          userId: j.userId,
          deviceId: j.deviceId,
          chatId: j.chatId,
          state: 'pending' as const,
          lastSeq: j.seq,
          coveredSeq: 0,
          claimedSeq: 0,
          dueAt: j.dueAt,
          attempts: 0,
          owner: null,
          leaseUntil: 0,
        })),
        { ordered: false },
      )
    } catch (err) {
      // Jobs that existed already are updated below.
      const errors = (err as { writeErrors?: { code?: number }[] | { code?: number } }).writeErrors
      const list = Array.isArray(errors) ? errors : errors ? [errors] : []
      if (!isDuplicateKey(err) && (list.length === 0 || list.some((e) => e.code !== 11000))) throw err
    }
    await this.#jobs.bulkWrite(
      jobs.flatMap((j) => [
        // An idle job wakes up, due at dueAt…
        {
          updateOne: {
            filter: { _id: jobKey(j), state: 'idle' as const, coveredSeq: { $lt: j.seq } },
            update: { $set: { state: 'pending' as const, dueAt: j.dueAt }, $max: { lastSeq: j.seq } },
          },
        },
        // …and one under way takes the newer message into its burst.
        {
          updateOne: {
            filter: {
              _id: jobKey(j),
              state: { $in: ['pending', 'claimed', 'sending'] as PushJob['state'][] },
            },
            update: { $max: { lastSeq: j.seq } },
          },
        },
      ]),
      { ordered: true },
    )
  }

  async claim(now: number, owner: string, leaseMs: number, limit: number): Promise<PushJob[]> {
    const candidates = await this.#jobs
      .find({
        $or: [
          { state: 'pending', dueAt: { $lte: now } },
          { state: 'claimed', leaseUntil: { $lt: now } },
        ],
      })
      .sort({ dueAt: 1 })
      .limit(limit)
      .toArray()
    const taken: PushJob[] = []
    for (const c of candidates) {
      // Taken only if nobody changed it since it was read: the same state, lease and lastSeq.
      const got = await this.#jobs.updateOne(
        { _id: c._id, state: c.state, leaseUntil: c.leaseUntil, lastSeq: c.lastSeq },
        { $set: { state: 'claimed', owner, leaseUntil: now + leaseMs, claimedSeq: c.lastSeq } },
      )
      if (got.modifiedCount === 1) {
        taken.push({
          ...fromDoc(c),
          state: 'claimed',
          owner,
          leaseUntil: now + leaseMs,
          claimedSeq: c.lastSeq,
        })
      }
    }
    return taken
  }

  async markSending(job: PushJob, owner: string): Promise<boolean> {
    const done = await this.#jobs.updateOne(
      { _id: jobKey(job), state: 'claimed', owner },
      { $set: { state: 'sending' } },
    )
    return done.modifiedCount === 1
  }

  async finish(job: PushJob, owner: string, coveredSeq: number, nextDueAt: number): Promise<void> {
    const _id = jobKey(job)
    const filter = { _id, state: { $in: ['claimed', 'sending'] as PushJob['state'][] }, owner }
    const reset = { attempts: 0, owner: null, leaseUntil: 0, dueAt: nextDueAt }
    // Nothing newer arrived: idle. Otherwise pending again for the newer messages.
    const idle = await this.#jobs.updateOne(
      { ...filter, lastSeq: { $lte: Math.max(coveredSeq, job.coveredSeq) } },
      { $set: { ...reset, state: 'idle' }, $max: { coveredSeq } },
    )
    if (idle.matchedCount === 1) return
    await this.#jobs.updateOne(filter, { $set: { ...reset, state: 'pending' }, $max: { coveredSeq } })
  }

  async retryAt(job: PushJob, owner: string, dueAt: number, attempts: number): Promise<void> {
    await this.#jobs.updateOne(
      { _id: jobKey(job), state: { $in: ['claimed', 'sending'] }, owner },
      { $set: { state: 'pending', dueAt, attempts, owner: null, leaseUntil: 0 } },
    )
  }

  async recoverInDoubt(now: number, limit: number): Promise<PushJob[]> {
    const stuck = await this.#jobs
      .find({ state: 'sending', leaseUntil: { $lt: now } })
      .limit(limit)
      .toArray()
    const closed: PushJob[] = []
    for (const s of stuck) {
      const job = fromDoc(s)
      await this.finish(job, s.owner ?? '', s.claimedSeq, now)
      closed.push(job)
    }
    return closed
  }

  async job(userId: string, deviceId: string, chatId: string): Promise<PushJob | null> {
    const doc = await this.#jobs.findOne({ _id: jobKey({ userId, deviceId, chatId }) })
    return doc ? fromDoc(doc) : null
  }

  registrationsOf(userId: string): Promise<Registration[]> {
    return this.registrations([userId])
  }

  async forgetUser(userId: string): Promise<number> {
    // Jobs first: a crash after them leaves registrations that get new jobs, never a job whose
    // registration is gone.
    let n = (await this.#jobs.deleteMany({ userId })).deletedCount
    n += (await this.#devices.deleteMany({ userId })).deletedCount
    n += (await this.#mutes.deleteMany({ userId })).deletedCount
    return n
  }

  /** Deletes replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  async close(): Promise<void> {
    await this.#client.close()
  }
}
