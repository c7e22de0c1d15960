import type { Collection, Filter, MongoClient } from 'mongodb'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import type { AuditEntry, AuditQuery, AuditStore, NewAuditEntry } from './audit-store.ts'

interface AuditDoc extends Omit<AuditEntry, 'id'> {
  /** The entry's id: numbered from one counter, so ids are dense and ordered across nodes. */
  _id: number
}

/** Collisions with other writers an append outlasts before it fails. */
const MAX_ATTEMPTS = 100

/**
 * The audit log in MongoDB (or FerretDB): ids are dense and ordered across the nodes of a
 * cluster (the unique _id settles two nodes taking the same one). The store offers no update or delete;
 * MongoDB itself cannot refuse them to someone with write access to the database (use a role
 * limited to insert and find on `audit_log` for that: docs/admin.md#audit-log).
 */
export class MongoAuditStore implements AuditStore {
  readonly #client: MongoClient
  readonly #log: Collection<AuditDoc>
  /** The id this node tries next; unknown after a collision. */
  #next: number | undefined

  private constructor(client: MongoClient) {
    this.#client = client
    this.#log = client.db().collection<AuditDoc>('audit_log')
  }

  static async open(uri: string): Promise<MongoAuditStore> {
    const store = new MongoAuditStore(await connectMongo(uri))
    await ensureIndexes(store.#log, [{ key: { target: 1, _id: 1 }, name: 'target' }])
    return store
  }

  async append(e: NewAuditEntry): Promise<AuditEntry> {
    // The next id is one past the highest; two writers that pick the same one collide on the
    // unique _id and the loser takes the next. (A counter document with $inc handed out one value
    // twice under concurrent calls on FerretDB.)
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const id = this.#next ?? (await this.#highest()) + 1
      try {
        await this.#log.insertOne({ _id: id, ...e })
        this.#next = id + 1
        return { id, ...e }
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
        this.#next = undefined
      }
    }
    throw new Error(`could not number an audit entry in ${MAX_ATTEMPTS} attempts`)
  }

  async #highest(): Promise<number> {
    const [last] = await this.#log
      .find({}, { projection: { _id: 1 } })
      .sort({ _id: -1 })
      .limit(1)
      .toArray()
    return last?._id ?? 0
  }

  async list(q: AuditQuery): Promise<AuditEntry[]> {
    const filter: Filter<AuditDoc> = { _id: { $gt: q.afterId } }
    if (q.actor !== undefined) filter.actor = q.actor
    if (q.action !== undefined) filter.action = q.action
    if (q.target !== undefined) filter.target = q.target
    const docs = await this.#log.find(filter).sort({ _id: 1 }).limit(q.limit).toArray()
    return docs.map(({ _id, ...rest }) => ({ id: _id, ...rest }))
  }

  async close(): Promise<void> {
    await this.#client.close()
  }
}
