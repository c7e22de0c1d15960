import type { Collection, MongoClient } from 'mongodb'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import type { Profile, ProfileChange, ProfileStore } from './profile-store.ts'

interface ProfileDoc {
  _id: string
  displayName: string | null
  avatar: string | null
  updatedAt: number
}

const toProfile = (d: ProfileDoc): Profile => ({
  userId: d._id,
  displayName: d.displayName ?? null,
  avatar: d.avatar ?? null,
  updatedAt: d.updatedAt,
})

/**
 * Profiles in MongoDB: one document per user, changed with one upsert (a partial update sets
 * only the fields it names, so two devices changing different fields both win).
 */
export class MongoProfileStore implements ProfileStore {
  readonly #client: MongoClient
  readonly #profiles: Collection<ProfileDoc>

  private constructor(client: MongoClient) {
    this.#client = client
    this.#profiles = client.db().collection<ProfileDoc>('profiles')
  }

  static async open(uri: string): Promise<MongoProfileStore> {
    const store = new MongoProfileStore(await connectMongo(uri))
    await ensureIndexes(store.#profiles, [{ key: { avatar: 1 }, name: 'avatar' }])
    return store
  }

  async set(c: ProfileChange): Promise<Profile> {
    const $set: Partial<ProfileDoc> = { updatedAt: c.at }
    const $setOnInsert: Partial<ProfileDoc> = {}
    for (const field of ['displayName', 'avatar'] as const) {
      if (c[field] !== undefined) $set[field] = c[field]
      else $setOnInsert[field] = null
    }
    const update = () =>
      this.#profiles.findOneAndUpdate(
        { _id: c.userId },
        { $set, ...(Object.keys($setOnInsert).length ? { $setOnInsert } : {}) },
        { upsert: true, returnDocument: 'after' },
      )
    // Two first changes at once: one upsert inserts, the other fails on the key and updates.
    const doc = await update().catch((err: unknown) => {
      if (isDuplicateKey(err)) return update()
      throw err
    })
    if (!doc) throw new Error(`profile of ${c.userId} not written`)
    return toProfile(doc)
  }

  async get(userIds: string[]): Promise<Profile[]> {
    if (userIds.length === 0) return []
    const docs = await this.#profiles.find({ _id: { $in: [...new Set(userIds)] } }).toArray()
    return docs.map(toProfile)
  }

  async isAvatar(mediaId: string): Promise<boolean> {
    return (await this.#profiles.findOne({ avatar: mediaId }, { projection: { _id: 1 } })) !== null
  }

  async avatarOwners(mediaId: string): Promise<string[]> {
    const docs = await this.#profiles.find({ avatar: mediaId }, { projection: { _id: 1 } }).toArray()
    return docs.map((d) => d._id)
  }

  async remove(userId: string): Promise<boolean> {
    return (await this.#profiles.deleteOne({ _id: userId })).deletedCount > 0
  }

  /** Deletes replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  async close(): Promise<void> {
    await this.#client.close()
  }
}
