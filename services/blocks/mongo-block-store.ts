import type { Collection, MongoClient } from 'mongodb'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import type { Block, BlockStore } from './block-store.ts'

interface BlockDoc {
  /** blockerId and blockedId, NUL-separated: the unique _id settles concurrent blocks. */
  _id: string
  blockerId: string
  blockedId: string
  at: number
}

// User ids travel in MQTT strings, which cannot hold NUL, so ("ab", "c") and ("a", "bc") stay apart.
const keyOf = (blockerId: string, blockedId: string) => `${blockerId}\u0000${blockedId}`

const toBlock = (d: BlockDoc): Block => ({ blockerId: d.blockerId, blockedId: d.blockedId, at: d.at })

/**
 * Blocks in MongoDB (or a MongoDB-wire server such as FerretDB): one document per block, keyed
 * by the pair, so no transaction is needed.
 */
export class MongoBlockStore implements BlockStore {
  readonly #client: MongoClient
  readonly #blocks: Collection<BlockDoc>

  private constructor(client: MongoClient) {
    this.#client = client
    this.#blocks = client.db().collection<BlockDoc>('blocks')
  }

  static async open(uri: string): Promise<MongoBlockStore> {
    const store = new MongoBlockStore(await connectMongo(uri))
    await ensureIndexes(store.#blocks, [{ key: { blockerId: 1 }, name: 'blocker' }])
    return store
  }

  async block(b: Block): Promise<boolean> {
    try {
      await this.#blocks.insertOne({ _id: keyOf(b.blockerId, b.blockedId), ...b })
      return true
    } catch (err) {
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  async unblock(blockerId: string, blockedId: string): Promise<boolean> {
    const r = await this.#blocks.deleteOne({ _id: keyOf(blockerId, blockedId) })
    return r.deletedCount > 0
  }

  async get(blockerId: string, blockedId: string): Promise<Block | null> {
    const d = await this.#blocks.findOne({ _id: keyOf(blockerId, blockedId) })
    return d ? toBlock(d) : null
  }

  async blockedBy(blockerId: string): Promise<Block[]> {
    const docs = await this.#blocks.find({ blockerId }).toArray()
    return docs
      .map(toBlock)
      .sort((x, y) => x.at - y.at || (x.blockedId < y.blockedId ? -1 : x.blockedId > y.blockedId ? 1 : 0))
  }

  async all(): Promise<Block[]> {
    return (await this.#blocks.find({}).toArray()).map(toBlock)
  }

  async removeUser(userId: string): Promise<number> {
    const r = await this.#blocks.deleteMany({ $or: [{ blockerId: userId }, { blockedId: userId }] })
    return r.deletedCount
  }

  /** Deletes replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  close(): Promise<void> {
    return this.#client.close()
  }
}
