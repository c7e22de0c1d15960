import type { Collection, Db, MongoClient } from 'mongodb'
import { KeyedQueue } from '../storage/keyed-queue.ts'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import {
  type AppendResult,
  type MessageStore,
  type NewMessage,
  type StoredMessage,
  searchTerms,
} from './message-store.ts'

interface MessageDoc extends StoredMessage {
  /** chatId, senderId and clientMsgId: see clientKey. */
  _id: string
  terms: string[]
}

/**
 * A message's _id is its de-duplication key. The send path then looks a message up by _id
 * only, the one filter that FerretDB v1's SQLite backend answers from an index; any other
 * filter there reads the whole collection, and appends slowed down with every stored message.
 */
const clientKey = (m: Pick<NewMessage, 'chatId' | 'senderId' | 'clientMsgId'>) =>
  JSON.stringify([m.chatId, m.senderId, m.clientMsgId])

interface SeqDoc {
  _id: string
  last: number
}

/**
 * MongoDB with only what every MongoDB-wire server has (FerretDB, DocumentDB, Cosmos DB):
 * no multi-document transactions, change streams, $text or TTL indexes. Sequence numbers come
 * from an atomic $inc on a per-chat counter; words are a normalized array with a multikey index.
 */
export class MongoMessageStore implements MessageStore {
  readonly #client: MongoClient
  readonly #messages: Collection<MessageDoc>
  readonly #seqs: Collection<SeqDoc>
  readonly #perChat = new KeyedQueue()
  /** The last seq this process stored per chat: the next append tries the one after. */
  readonly #last = new Map<string, number>()

  private constructor(client: MongoClient, db: Db) {
    this.#client = client
    this.#messages = db.collection<MessageDoc>('messages')
    this.#seqs = db.collection<SeqDoc>('chat_seq')
  }

  static async open(uri: string): Promise<MongoMessageStore> {
    const client = await connectMongo(uri)
    const store = new MongoMessageStore(client, client.db())
    await ensureIndexes(store.#messages, [
      { key: { chatId: 1, seq: 1 }, name: 'chat_seq', unique: true },
      { key: { chatId: 1, terms: 1 }, name: 'terms' },
      { key: { at: 1 }, name: 'at' },
      { key: { chatId: 1, at: 1 }, name: 'chat_at' },
      { key: { chatId: 1, editedAt: 1 }, name: 'chat_edited' },
      { key: { chatId: 1, deletedAt: 1 }, name: 'chat_deleted' },
    ])
    return store
  }

  async #byClientId(m: NewMessage): Promise<StoredMessage | null> {
    return this.#messages.findOne({ _id: clientKey(m) }, { projection: { _id: 0, terms: 0 } })
  }

  /**
   * Appends to one chat run one after another in this process, so this node never races
   * itself for a sequence number; other nodes' races end at the unique index (see #insert).
   */
  append(m: NewMessage, at = Date.now()): Promise<AppendResult> {
    return this.#perChat.run(m.chatId, () => this.#insert(m, at))
  }

  async #insert(m: NewMessage, at: number): Promise<AppendResult> {
    const existing = await this.#byClientId(m)
    if (existing) return { message: existing, duplicate: true }
    // The next seq is taken by inserting the message with it: the unique (chatId, seq) index
    // makes one writer win, across processes too, and a process that dies before its insert
    // has taken nothing, so a chat's sequence never has a gap. (A counter bumped before the
    // insert left one whenever a node died in between.)
    let last = this.#last.get(m.chatId) ?? (await this.lastSeq(m.chatId))
    for (let attempt = 0; ; attempt++) {
      const seq = last + 1
      const message: StoredMessage = { ...m, seq, at, editedAt: null, deletedAt: null }
      try {
        await this.#messages.insertOne({ _id: clientKey(m), ...message, terms: searchTerms(m.text) })
        this.#last.set(m.chatId, seq)
        // The counter only keeps seqs from being reused once retention has deleted messages.
        await this.#seqs
          .updateOne({ _id: m.chatId }, { $max: { last: seq } }, { upsert: true })
          // Two first upserts raced: the document exists now.
          .catch((err: unknown) =>
            isDuplicateKey(err)
              ? this.#seqs.updateOne({ _id: m.chatId }, { $max: { last: seq } })
              : Promise.reject(err),
          )
        return { message, duplicate: false }
      } catch (err) {
        if (!isDuplicateKey(err)) throw err
        // The same clientMsgId raced in from elsewhere and won: this is a retry.
        const winner = await this.#byClientId(m)
        if (winner) return { message: winner, duplicate: true }
        // Another process took this seq. Its counter write follows its insert, so the counter
        // (an _id lookup) is close; lastSeq would read the chat's newest message, which FerretDB
        // finds by reading the whole collection.
        if (attempt >= 50) throw err
        last = Math.max(seq, (await this.#seqs.findOne({ _id: m.chatId }))?.last ?? 0)
      }
    }
  }

  #find(filter: Record<string, unknown>, sort: 1 | -1, limit: number): Promise<StoredMessage[]> {
    return this.#messages
      .find(filter, { projection: { _id: 0, terms: 0 } })
      .sort({ seq: sort })
      .limit(limit)
      .toArray()
  }

  after(chatId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#find({ chatId, seq: { $gt: afterSeq } }, 1, limit)
  }

  before(chatId: string, beforeSeq: number | null, limit: number): Promise<StoredMessage[]> {
    return this.#find(beforeSeq === null ? { chatId } : { chatId, seq: { $lt: beforeSeq } }, -1, limit)
  }

  get(chatId: string, seq: number): Promise<StoredMessage | null> {
    return this.#messages.findOne({ chatId, seq }, { projection: { _id: 0, terms: 0 } })
  }

  async edit(chatId: string, seq: number, text: string, at: number): Promise<StoredMessage | null> {
    // No projection: FerretDB v1 does not implement findAndModify's "fields".
    const doc = await this.#messages.findOneAndUpdate(
      { chatId, seq, deletedAt: null },
      { $set: { text, editedAt: at, terms: searchTerms(text) } },
      { returnDocument: 'after' },
    )
    if (!doc) return null
    const { _id, terms, ...message } = doc as MessageDoc & { _id: unknown }
    return message
  }

  async tombstone(chatId: string, seq: number, at: number): Promise<StoredMessage | null> {
    await this.#messages.updateOne(
      { chatId, seq, deletedAt: null },
      { $set: { text: null, body: {}, deletedAt: at, terms: [] } },
    )
    return this.get(chatId, seq)
  }

  search(chatId: string, query: string, limit: number): Promise<StoredMessage[]> {
    const terms = searchTerms(query)
    if (terms.length === 0) return Promise.resolve([])
    return this.#find({ chatId, deletedAt: null, terms: { $all: terms } }, -1, limit)
  }

  countUnread(chatId: string, afterSeq: number, userId: string): Promise<number> {
    return this.#messages.countDocuments({
      chatId,
      seq: { $gt: afterSeq },
      senderId: { $ne: userId },
      kind: 'text',
      deletedAt: null,
    })
  }

  async sendersBetween(chatId: string, fromSeq: number, toSeq: number): Promise<string[]> {
    const senders = await this.#messages.distinct('senderId', { chatId, seq: { $gt: fromSeq, $lte: toSeq } })
    return (senders as string[]).sort()
  }

  async lastSeq(chatId: string): Promise<number> {
    const [counter, newest] = await Promise.all([
      this.#seqs.findOne({ _id: chatId }),
      this.#messages.findOne({ chatId }, { sort: { seq: -1 }, projection: { seq: 1 } }),
    ])
    return Math.max(counter?.last ?? 0, newest?.seq ?? 0)
  }

  async seqBefore(chatId: string, at: number): Promise<number> {
    const newest = await this.#messages.findOne(
      { chatId, at: { $lt: at } },
      { sort: { seq: -1 }, projection: { _id: 0, seq: 1 } },
    )
    return newest?.seq ?? 0
  }

  changedSince(chatId: string, uptoSeq: number, since: number, limit: number): Promise<StoredMessage[]> {
    return this.#find(
      {
        chatId,
        seq: { $lte: uptoSeq },
        $or: [{ editedAt: { $gte: since } }, { deletedAt: { $gte: since } }],
      },
      1,
      limit,
    )
  }

  async deleteOlderThan(cutoff: number): Promise<number> {
    return (await this.#messages.deleteMany({ at: { $lt: cutoff } })).deletedCount
  }

  close(): Promise<void> {
    return this.#client.close()
  }
}
