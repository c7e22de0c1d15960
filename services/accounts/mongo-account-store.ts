import type { Collection, MongoClient } from 'mongodb'
import { connectMongo, isDuplicateKey } from '../storage/mongo.ts'
import type { AccountChange, AccountRecord, AccountStatus, AccountStore } from './account-store.ts'

interface AccountDoc {
  /** The user id: one record per user, so no transaction is needed. */
  _id: string
  status: AccountStatus
  since: number
  reason: string | null
  by: string
  step: string | null
  done: number
  owner: string | null
  leaseUntil: number
  /** How many times the erase was claimed: the generation of the next claim's key. */
  claims?: number
}

/** One per claim of an erase, keyed by user and generation: its unique _id settles concurrent claims. */
interface ClaimDoc {
  _id: string
  owner: string
  at: number
}

const toRecord = (d: AccountDoc): AccountRecord => ({
  userId: d._id,
  status: d.status,
  since: d.since,
  reason: d.reason,
  by: d.by,
  ...(d.step !== null
    ? { erase: { step: d.step, done: d.done, owner: d.owner, leaseUntil: d.leaseUntil } }
    : {}),
})

/**
 * Account states in MongoDB (or a MongoDB-wire server such as FerretDB): one document per user,
 * keyed by the user id; each change is one conditional single-document write, which is atomic.
 */
export class MongoAccountStore implements AccountStore {
  readonly #client: MongoClient
  readonly #accounts: Collection<AccountDoc>
  readonly #claims: Collection<ClaimDoc>

  private constructor(client: MongoClient) {
    this.#client = client
    this.#accounts = client.db().collection<AccountDoc>('accounts')
    this.#claims = client.db().collection<ClaimDoc>('account_claims')
  }

  static async open(uri: string): Promise<MongoAccountStore> {
    return new MongoAccountStore(await connectMongo(uri))
  }

  async get(userId: string): Promise<AccountRecord | null> {
    const d = await this.#accounts.findOne({ _id: userId })
    return d ? toRecord(d) : null
  }

  async all(): Promise<AccountRecord[]> {
    return (await this.#accounts.find({}).toArray()).map(toRecord)
  }

  async ban(userId: string, b: { reason: string | null; by: string; at: number }): Promise<AccountChange> {
    const doc: AccountDoc = {
      _id: userId,
      status: 'banned',
      since: b.at,
      reason: b.reason,
      by: b.by,
      step: null,
      done: 0,
      owner: null,
      leaseUntil: 0,
    }
    try {
      await this.#accounts.insertOne(doc)
      return { record: toRecord(doc), changed: true }
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      return { record: (await this.get(userId)) as AccountRecord, changed: false }
    }
  }

  async unban(userId: string): Promise<boolean> {
    const r = await this.#accounts.deleteOne({ _id: userId, status: 'banned' })
    return r.deletedCount > 0
  }

  async beginErase(userId: string, b: { by: string; at: number; step: string }): Promise<AccountChange> {
    const fields = {
      status: 'erasing' as const,
      since: b.at,
      reason: null,
      by: b.by,
      step: b.step,
      done: 0,
      owner: null,
      leaseUntil: 0,
    }
    try {
      await this.#accounts.insertOne({ _id: userId, ...fields })
      return { record: toRecord({ _id: userId, ...fields }), changed: true }
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
    }
    // A record exists: only a ban turns into an erase; an erase under way or done stays.
    const r = await this.#accounts.updateOne({ _id: userId, status: 'banned' }, { $set: fields })
    return { record: (await this.get(userId)) as AccountRecord, changed: r.modifiedCount > 0 }
  }

  async claimErase(
    userId: string,
    owner: string,
    now: number,
    leaseMs: number,
  ): Promise<AccountRecord | null> {
    const d = await this.#accounts.findOne({ _id: userId, status: 'erasing' })
    if (!d || (d.owner !== null && d.owner !== owner && d.leaseUntil > now)) return null
    if (d.owner === owner) {
      await this.#accounts.updateOne({ _id: userId, owner }, { $set: { leaseUntil: now + leaseMs } })
      return toRecord({ ...d, leaseUntil: now + leaseMs })
    }
    // A conditional update is no lock on FerretDB: two of five concurrent claimers got through
    // with findOneAndUpdate, and with a compare-and-set updateOne, in the contract test. A unique
    // _id is: the claim that inserts the next generation's key takes the erase.
    const generation = (d.claims ?? 0) + 1
    try {
      await this.#claims.insertOne({ _id: `${userId}\u0000${generation}`, owner, at: now })
    } catch (err) {
      if (isDuplicateKey(err)) return null
      throw err
    }
    await this.#accounts.updateOne(
      { _id: userId, status: 'erasing' },
      { $set: { owner, leaseUntil: now + leaseMs, claims: generation } },
    )
    await this.#claims.deleteOne({ _id: `${userId}\u0000${generation - 1}` })
    return toRecord({ ...d, owner, leaseUntil: now + leaseMs })
  }

  async progress(
    userId: string,
    owner: string,
    p: { step: string; done: number; leaseUntil: number },
  ): Promise<boolean> {
    const r = await this.#accounts.updateOne(
      { _id: userId, status: 'erasing', owner },
      { $set: { step: p.step, done: p.done, leaseUntil: p.leaseUntil } },
    )
    return r.matchedCount > 0
  }

  async finishErase(userId: string, owner: string, at: number): Promise<boolean> {
    const r = await this.#accounts.updateOne(
      { _id: userId, status: 'erasing', owner },
      { $set: { status: 'erased', since: at, step: 'done', owner: null, leaseUntil: 0 } },
    )
    if (r.matchedCount === 0) return false
    // Nothing is claimed any more: the claim keys go.
    const prefix = userId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    await this.#claims.deleteMany({ _id: { $regex: `^${prefix}\u0000` } })
    return true
  }

  /** Updates replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  close(): Promise<void> {
    return this.#client.close()
  }
}
