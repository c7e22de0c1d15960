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

  async registrations(userId: string): Promise<Registration[]> {
    const docs = await this.#devices.find({ userId }).sort({ deviceId: 1 }).toArray()
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

  async mutedChats(userId: string): Promise<string[]> {
    return (await this.#mutes.find({ userId }).toArray()).map((m) => m.chatId)
  }

  async enqueue(jobs: NewJob[]): Promise<void> {
    for (const j of jobs) await this.#enqueueOne(j)
  }

  async #enqueueOne(j: NewJob): Promise<void> {
    const _id = jobKey(j)
    for (let attempt = 0; attempt < 3; attempt++) {
      // An idle job wakes up, due at dueAt.
      const woke = await this.#jobs.updateOne(
        { _id, state: 'idle', coveredSeq: { $lt: j.seq } },
        { $set: { state: 'pending', dueAt: j.dueAt }, $max: { lastSeq: j.seq } },
      )
      if (woke.matchedCount === 1) return
      // A job under way takes the newer message into its burst.
      const joined = await this.#jobs.updateOne(
        { _id, state: { $in: ['pending', 'claimed', 'sending'] } },
        { $max: { lastSeq: j.seq } },
      )
      if (joined.matchedCount === 1) return
      if (await this.#jobs.countDocuments({ _id }, { limit: 1 })) return // idle, seq already covered
      try {
        await this.#jobs.insertOne({
          _id,
          userId: j.userId,
          deviceId: j.deviceId,
          chatId: j.chatId,
          state: 'pending',
          lastSeq: j.seq,
          coveredSeq: 0,
          claimedSeq: 0,
          dueAt: j.dueAt,
          attempts: 0,
          owner: null,
          leaseUntil: 0,
        })
        return
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
      }
    }
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

  async close(): Promise<void> {
    await this.#client.close()
  }
}
