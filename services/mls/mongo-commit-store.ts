import { Binary, type Collection, type MongoClient } from 'mongodb'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import type { AcceptedCommit, CommitStore } from './commit-store.ts'

interface CommitDoc {
  /** `<chatId>#<epoch>`: the unique key that lets one Commit per epoch in, on every node. */
  _id: string
  chatId: string
  epoch: number
  senderId: string
  deviceId: string
  leaves: (string | null)[]
  bytes: Binary
  added: string[]
  welcome: Binary | null
  at: number
  seq: number | null
}

const toCommit = ({ _id, bytes, welcome, ...rest }: CommitDoc): AcceptedCommit => ({
  ...rest,
  bytes: new Uint8Array(bytes.buffer),
  welcome: welcome ? new Uint8Array(welcome.buffer) : null,
})

/**
 * Accepted Commits in MongoDB (or FerretDB), one document per chat and epoch. The insert of the
 * `_id` is the lock: a conditional update is none on FerretDB (services/accounts/mongo-account-store.ts).
 */
export class MongoCommitStore implements CommitStore {
  readonly #client: MongoClient
  readonly #commits: Collection<CommitDoc>

  private constructor(client: MongoClient) {
    this.#client = client
    this.#commits = client.db().collection<CommitDoc>('mls_commits')
  }

  static async open(uri: string): Promise<MongoCommitStore> {
    const store = new MongoCommitStore(await connectMongo(uri))
    await ensureIndexes(store.#commits, [{ key: { chatId: 1, epoch: 1 }, name: 'chat_epoch', unique: true }])
    return store
  }

  async get(chatId: string, epoch: number): Promise<AcceptedCommit | null> {
    const doc = await this.#commits.findOne({ _id: `${chatId}#${epoch}` })
    return doc ? toCommit(doc) : null
  }

  async latest(chatId: string): Promise<AcceptedCommit | null> {
    const doc = await this.#commits.findOne({ chatId }, { sort: { epoch: -1 } })
    return doc ? toCommit(doc) : null
  }

  async insert(c: AcceptedCommit): Promise<boolean> {
    try {
      await this.#commits.insertOne({
        _id: `${c.chatId}#${c.epoch}`,
        ...c,
        bytes: new Binary(c.bytes),
        welcome: c.welcome ? new Binary(c.welcome) : null,
      })
      return true
    } catch (err) {
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  async setSeq(chatId: string, epoch: number, seq: number): Promise<void> {
    await this.#commits.updateOne({ _id: `${chatId}#${epoch}` }, { $set: { seq } })
  }

  async close(): Promise<void> {
    await this.#client.close()
  }
}
