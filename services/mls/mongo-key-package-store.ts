import { Binary, type Collection, type MongoClient } from 'mongodb'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import {
  type ClaimedKeyPackage,
  type KeyPackageCount,
  type KeyPackageStore,
  uniqueNew,
} from './key-package-store.ts'

interface KeyPackageDoc {
  /** `<userId>/<deviceId>/<ref>` for a one-time package, `<userId>/<deviceId>/last-resort` for the other. */
  _id: string
  userId: string
  deviceId: string
  ref: string
  lastResort: boolean
  bytes: Binary
  notAfter: number
  /** Orders claims oldest first: ms * 1000 + the place in its batch. */
  addedAt: number
}

const oneTimeId = (userId: string, deviceId: string, ref: string) => `${userId}/${deviceId}/${ref}`
const lastResortId = (userId: string, deviceId: string) => `${userId}/${deviceId}/last-resort`

/** A one-time package handed out: its `_id` is the package's, so only one claim can write it. */
interface ClaimDoc {
  _id: string
  userId: string
  deviceId: string
  at: number
}

/** Candidates a claim reads at once per device: more than the claims that usually race for one. */
const CANDIDATES = 8

/**
 * The KeyPackage directory in MongoDB (or FerretDB): one document per package. A claim takes
 * a one-time package by inserting a claim document with the package's `_id`: the unique `_id`
 * is the lock, on every node. (A findOneAndDelete is not: under 30 concurrent claims on FerretDB
 * it handed 20 packages out 30 times, in this store's contract test; conditional updates fail
 * the same way there, see services/accounts/mongo-account-store.ts.) The claim documents stay,
 * so a package handed out is never stored or handed out again.
 */
export class MongoKeyPackageStore implements KeyPackageStore {
  readonly #client: MongoClient
  readonly #packages: Collection<KeyPackageDoc>
  readonly #claims: Collection<ClaimDoc>

  private constructor(client: MongoClient) {
    this.#client = client
    this.#packages = client.db().collection<KeyPackageDoc>('mls_key_packages')
    this.#claims = client.db().collection<ClaimDoc>('mls_key_package_claims')
  }

  static async open(uri: string): Promise<MongoKeyPackageStore> {
    const store = new MongoKeyPackageStore(await connectMongo(uri))
    await ensureIndexes(store.#packages, [
      { key: { userId: 1, deviceId: 1, lastResort: 1, addedAt: 1 }, name: 'device_oldest' },
    ])
    await ensureIndexes(store.#claims, [{ key: { userId: 1, deviceId: 1 }, name: 'device' }])
    return store
  }

  async add(u: Parameters<KeyPackageStore['add']>[0]) {
    const device = { userId: u.userId, deviceId: u.deviceId }
    await this.#packages.deleteMany({ ...device, notAfter: { $lte: u.now } })
    const docs = await this.#packages.find(device, { projection: { ref: 1, lastResort: 1 } }).toArray()
    const oneTime = docs.filter((d) => !d.lastResort).length
    const have = new Set(docs.map((d) => d.ref))
    if (u.lastResort) have.add(u.lastResort.ref)
    const handedOut = await this.#claims
      .find(
        { _id: { $in: u.packages.map((p) => oneTimeId(u.userId, u.deviceId, p.ref)) } },
        { projection: { _id: 1 } },
      )
      .toArray()
    for (const c of handedOut) have.add(c._id.slice(`${u.userId}/${u.deviceId}/`.length))
    const fresh = uniqueNew(u.packages, have)
    if (oneTime + fresh.length > u.max) return { overCap: oneTime }
    if (fresh.length) {
      await this.#packages
        .insertMany(
          fresh.map((p, i) => ({
            _id: oneTimeId(u.userId, u.deviceId, p.ref),
            ...device,
            ref: p.ref,
            lastResort: false,
            bytes: new Binary(p.bytes),
            notAfter: p.notAfter,
            addedAt: u.now * 1000 + i,
          })),
          { ordered: false },
        )
        // The same package uploaded twice at once: the first insert stands.
        .catch((err: unknown) => {
          if (!isDuplicateKey(err)) throw err
        })
    }
    if (u.lastResort) {
      const lr = u.lastResort
      await this.#packages.replaceOne(
        { _id: lastResortId(u.userId, u.deviceId) },
        {
          ...device,
          ref: lr.ref,
          lastResort: true,
          bytes: new Binary(lr.bytes),
          notAfter: lr.notAfter,
          addedAt: u.now * 1000,
        },
        { upsert: true },
      )
      // Never also a one-time package: the last-resort role wins.
      await this.#packages.deleteOne({ _id: oneTimeId(u.userId, u.deviceId, lr.ref) })
    }
    return { stored: fresh.length, ...(await this.count(u.userId, u.deviceId, u.now)) }
  }

  async count(userId: string, deviceId: string, now: number): Promise<KeyPackageCount> {
    const live = { userId, deviceId, notAfter: { $gt: now } }
    const [count, lastResort] = await Promise.all([
      this.#packages.countDocuments({ ...live, lastResort: false }),
      this.#packages.countDocuments({ ...live, lastResort: true }),
    ])
    return { count, lastResort: lastResort > 0 }
  }

  async claim(userId: string, now: number): Promise<ClaimedKeyPackage[]> {
    const devices = (
      (await this.#packages.distinct('deviceId', { userId, notAfter: { $gt: now } })) as string[]
    ).sort()
    const claimed = await Promise.all(
      devices.map(async (deviceId) => {
        const live = { userId, deviceId, notAfter: { $gt: now } }
        const doc =
          (await this.#claimOneTime(userId, deviceId, now)) ??
          (await this.#packages.findOne({ ...live, lastResort: true }))
        return doc
          ? { deviceId, ref: doc.ref, bytes: new Uint8Array(doc.bytes.buffer), lastResort: doc.lastResort }
          : null
      }),
    )
    return claimed.filter((c) => c !== null)
  }

  async uploaded(userId: string, deviceId: string, ref: string): Promise<boolean> {
    const [held, handedOut] = await Promise.all([
      this.#packages.countDocuments({ userId, deviceId, ref }, { limit: 1 }),
      this.#claims.countDocuments({ _id: oneTimeId(userId, deviceId, ref) }, { limit: 1 }),
    ])
    return held + handedOut > 0
  }

  /** The device's oldest one-time package that this call managed to claim, or null when none is left. */
  async #claimOneTime(userId: string, deviceId: string, now: number): Promise<KeyPackageDoc | null> {
    for (;;) {
      const candidates = await this.#packages
        .find({ userId, deviceId, lastResort: false, notAfter: { $gt: now } })
        .sort({ addedAt: 1 })
        .limit(CANDIDATES)
        .toArray()
      if (candidates.length === 0) return null
      for (const doc of candidates) {
        try {
          await this.#claims.insertOne({ _id: doc._id, userId, deviceId, at: now })
        } catch (err) {
          if (!isDuplicateKey(err)) throw err
          // Another claim has it; its delete may not have happened yet (or its node died before).
          await this.#packages.deleteOne({ _id: doc._id })
          continue
        }
        await this.#packages.deleteOne({ _id: doc._id })
        return doc
      }
    }
  }

  async removeDevice(userId: string, deviceId: string): Promise<number> {
    await this.#claims.deleteMany({ userId, deviceId })
    return (await this.#packages.deleteMany({ userId, deviceId })).deletedCount
  }

  async removeOtherDevices(userId: string, keep: string): Promise<number> {
    await this.#claims.deleteMany({ userId, deviceId: { $ne: keep } })
    return (await this.#packages.deleteMany({ userId, deviceId: { $ne: keep } })).deletedCount
  }

  async removeUser(userId: string): Promise<void> {
    await this.#packages.deleteMany({ userId })
    await this.#claims.deleteMany({ userId })
  }

  /** Deletes replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  async close(): Promise<void> {
    await this.#client.close()
  }
}
