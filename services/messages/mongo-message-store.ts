import type { Collection, Db, MongoClient } from 'mongodb'
import { KeyedQueue } from '../storage/keyed-queue.ts'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import type { AppendResult, MessageStore, NewMessage, StoredMessage } from './message-store.ts'
import { parseSearchQuery, SEARCH_TERMS_VERSION, searchTerms } from './search-terms.ts'

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

/** search_meta's one document: the SEARCH_TERMS_VERSION every message's terms were computed with. */
interface SearchMetaDoc {
  _id: 'terms'
  version: number
}

/** A message whose terms the re-index rewrites, with the text they are of. */
interface ReindexedDoc {
  _id: string
  text: string | null
  terms: string[]
}

/** Messages read per round trip by the re-index at open. */
const REINDEX_READ_BATCH = 1000
/**
 * Updates per bulk write of the re-index: FerretDB v1.24 never answers an update command of 100
 * statements or more (99 took 0.8 s, 100 hung).
 */
const REINDEX_WRITE_BATCH = 50

/** A regex source matching the string itself, every character that means something escaped. */
const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

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
    await store.#reindex(client.db().collection<SearchMetaDoc>('search_meta'))
    return store
  }

  /**
   * Brings every message's terms to SEARCH_TERMS_VERSION when search_meta names another (or
   * none: the mark came with word segmentation), before open resolves: one pass over the
   * collection in natural order, rewriting the terms that differ (never those of ASCII text:
   * versions 1 and 2 agree on it), REINDEX_WRITE_BATCH at a time (see #rewriteTerms). Two nodes
   * starting at once both run it and write the same terms. The mark moves ($max) only after the
   * whole pass: a node that dies midway does it again at its next start, skipping what is done.
   * A mark of a newer version is left alone (this older code's terms would undo the newer's).
   * Cost: on FerretDB v1 an update by _id reads the whole collection (~3 µs per message held),
   * so each rewritten message costs as much as an edit there; MongoDB updates by _id by index.
   */
  async #reindex(meta: Collection<SearchMetaDoc>): Promise<void> {
    const mark = await meta.findOne({ _id: 'terms' })
    if ((mark?.version ?? 0) >= SEARCH_TERMS_VERSION) return
    const cursor = this.#messages
      .find({}, { projection: { _id: 1, text: 1, terms: 1 } })
      .batchSize(REINDEX_READ_BATCH)
    let batch: ReindexedDoc[] = []
    for await (const doc of cursor) {
      const terms = searchTerms(doc.text)
      const old = doc.terms ?? []
      if (terms.length === old.length && terms.every((t, i) => t === old[i])) continue
      batch.push({ _id: doc._id, text: doc.text, terms })
      if (batch.length >= REINDEX_WRITE_BATCH) {
        await this.#rewriteTerms(batch)
        batch = []
      }
    }
    await this.#rewriteTerms(batch)
    const done = { $max: { version: SEARCH_TERMS_VERSION } }
    await meta
      .updateOne({ _id: 'terms' }, done, { upsert: true })
      // Another node's first upsert won the race: the document exists now.
      .catch((err: unknown) =>
        isDuplicateKey(err) ? meta.updateOne({ _id: 'terms' }, done) : Promise.reject(err),
      )
  }

  /**
   * Sets the terms of the messages, then reads each message's text again: an edit or delete
   * (on any node) between the read the terms came from and this write was overwritten with the
   * old text's terms, and gets its own text's terms in another round. The update's filter names
   * the _id only: with the text in it as well, FerretDB v1 took 4 times as long.
   */
  async #rewriteTerms(batch: ReindexedDoc[]): Promise<void> {
    while (batch.length) {
      await this.#messages.bulkWrite(
        batch.map(({ _id, terms }) => ({ updateOne: { filter: { _id }, update: { $set: { terms } } } })),
        { ordered: false },
      )
      const now = await Promise.all(
        batch.map(({ _id }) => this.#messages.findOne({ _id }, { projection: { _id: 1, text: 1 } })),
      )
      const changed: ReindexedDoc[] = []
      for (const [i, doc] of now.entries()) {
        // Gone (retention) or unchanged: done.
        if (doc && doc.text !== batch[i]?.text)
          changed.push({ _id: doc._id, text: doc.text, terms: searchTerms(doc.text) })
      }
      batch = changed
    }
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
      // body.hiddenFrom stays: a blocker must not see the tombstone of a message hidden from
      // them. The other fields a text message's body has (sendSchema) are cleared.
      { $set: { text: null, deletedAt: at, terms: [] }, $unset: { 'body.media': '', 'body.replyTo': '' } },
    )
    return this.get(chatId, seq)
  }

  /**
   * Whole terms by $all on the multikey index, the prefix as an anchored regex on the same array
   * (one element must start with it; MongoDB turns an anchored regex into an index range). The
   * two are separate conditions of an $and: on an array each may be met by another element.
   */
  search(chatId: string, query: string, limit: number): Promise<StoredMessage[]> {
    const { whole, prefix } = parseSearchQuery(query)
    if (whole.length === 0 && prefix === null) return Promise.resolve([])
    const conditions: Array<Record<string, unknown>> = []
    if (whole.length) conditions.push({ terms: { $all: whole } })
    if (prefix !== null) conditions.push({ terms: { $regex: `^${escapeRegex(prefix)}` } })
    return this.#find({ chatId, deletedAt: null, $and: conditions }, -1, limit)
  }

  countUnread(chatId: string, afterSeq: number, userId: string): Promise<number> {
    return this.#messages.countDocuments({
      chatId,
      seq: { $gt: afterSeq },
      senderId: { $ne: userId },
      kind: 'text',
      deletedAt: null,
      'body.hiddenFrom': { $ne: userId },
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

  sentBy(chatId: string, senderId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    return this.#find({ chatId, senderId, kind: 'text', seq: { $gt: afterSeq } }, 1, limit)
  }

  /**
   * A message's _id holds its clientMsgId (clientKey), and an _id cannot change: each message is
   * deleted and inserted again, erased, under the _id of `erased:<seq>`. A message with a device
   * id is not erased yet (erased ones have ''). A crash between the delete and the insert leaves
   * that seq without its tombstone: nothing of the user remains, and the rest is erased when
   * the call is repeated. Without transactions this is the one order that never leaves the
   * user's content behind.
   */
  async eraseSender(chatId: string, senderId: string, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const docs = await this.#messages
      .find({ chatId, senderId, deviceId: { $ne: '' } })
      .sort({ seq: 1 })
      .limit(limit)
      .toArray()
    const at = Date.now()
    let erased = 0
    for (const doc of docs) erased += await this.#erase(doc, at)
    return erased
  }

  /** Deletes the message and inserts it erased; returns how many messages it erased (see eraseSender). */
  async #erase(doc: MessageDoc, at: number): Promise<number> {
    const { deletedCount } = await this.#messages.deleteOne({ _id: doc._id, deviceId: { $ne: '' } })
    // Erased meanwhile (another node's erase of the same user).
    if (deletedCount === 0) return 0
    const hiddenFrom = doc.body.hiddenFrom
    const erased: MessageDoc = {
      ...doc,
      _id: clientKey({ chatId: doc.chatId, senderId: doc.senderId, clientMsgId: `erased:${doc.seq}` }),
      deviceId: '',
      clientMsgId: `erased:${doc.seq}`,
      text: null,
      body: hiddenFrom === undefined ? {} : { hiddenFrom },
      deletedAt: doc.deletedAt ?? at,
      terms: [],
    }
    let count = 1
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#messages.insertOne(erased)
        return count
      } catch (err) {
        if (!isDuplicateKey(err) || attempt >= 10) throw err
        // The sender sent another message with clientMsgId "erased:<this seq>": it is erased
        // first (its delete frees the _id; this one, deleted already, cannot come round again).
        const other = await this.#messages.findOne({ _id: erased._id })
        if (other && other.deviceId !== '') count += await this.#erase(other, at)
        else if (other) throw err
      }
    }
  }

  /**
   * Nothing to do: the erase replaced the documents. Old versions the server's storage keeps
   * (WiredTiger's free pages, FerretDB's backend files) are the operator's to compact.
   */
  async purgeErased(): Promise<void> {}

  close(): Promise<void> {
    return this.#client.close()
  }
}
