import type { Collection, Filter, MongoClient } from 'mongodb'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import type { MediaCatalog, MediaFacts, MediaRecord, NewMedia, SweepCutoffs } from './media-catalog.ts'

interface MediaDoc extends Omit<MediaRecord, 'id'> {
  _id: string
  /** The chats it was sent in, kept in the record so one update both checks and references. */
  chats: string[]
}

function toRecord(d: MediaDoc): MediaRecord {
  const { _id, chats: _chats, ...rest } = d
  return { id: _id, ...rest }
}

// The same condition in due() and markDeleting(), so a record is marked only while it is due.
function due(c: SweepCutoffs): Filter<MediaDoc> {
  return {
    $or: [
      { status: 'pending', expiresAt: { $lt: c.now } },
      { status: 'ready', lastSentAt: null, readyAt: { $lt: c.unsentBefore } },
      { status: 'ready', lastSentAt: { $lt: c.sentBefore } },
      { status: 'deleting' },
    ],
  }
}

/** The media catalog in MongoDB: one document per media, with the chats it was sent in. */
export class MongoMediaCatalog implements MediaCatalog {
  readonly #client: MongoClient
  readonly #media: Collection<MediaDoc>

  private constructor(client: MongoClient) {
    this.#client = client
    this.#media = client.db().collection<MediaDoc>('media')
  }

  static async open(uri: string): Promise<MongoMediaCatalog> {
    const catalog = new MongoMediaCatalog(await connectMongo(uri))
    await ensureIndexes(catalog.#media, [
      // One record per uploader and declared bytes: checksum, type and size.
      {
        key: { uploaderId: 1, sha256: 1, contentType: 1, size: 1 },
        name: 'uploader_bytes',
        unique: true,
      },
      { key: { status: 1 }, name: 'status' },
    ])
    // Catalogs made before the type and size were part of the key had uploader_sha (uploader,
    // checksum), which would refuse the same bytes under another type: dropped once the new one is in.
    const indexes = await catalog.#media.listIndexes().toArray()
    if (indexes.some((i) => i.name === 'uploader_sha')) await catalog.#media.dropIndex('uploader_sha')
    return catalog
  }

  async begin(m: NewMedia): Promise<{ record: MediaRecord; created: boolean }> {
    const { id, ...rest } = m
    const doc: MediaDoc = {
      _id: id,
      ...rest,
      status: 'pending',
      readyAt: null,
      lastSentAt: null,
      width: null,
      height: null,
      hasThumbnail: false,
      chats: [],
    }
    try {
      await this.#media.insertOne(doc)
      return { record: toRecord(doc), created: true }
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
    }
    // One update, so a sweep marking the record deleting comes wholly before or after it.
    const same = { uploaderId: m.uploaderId, sha256: m.sha256, contentType: m.contentType, size: m.size }
    await this.#media.updateOne(
      { ...same, status: 'ready', lastSentAt: null },
      { $max: { readyAt: m.createdAt } },
    )
    const existing = await this.#media.findOne(same)
    if (!existing) throw new Error(`media of ${m.uploaderId} with sha256 ${m.sha256} vanished during begin`)
    return { record: toRecord(existing), created: false }
  }

  async get(id: string): Promise<MediaRecord | null> {
    const doc = await this.#media.findOne({ _id: id })
    return doc ? toRecord(doc) : null
  }

  async extend(id: string, expiresAt: number): Promise<void> {
    await this.#media.updateOne({ _id: id, status: 'pending' }, { $max: { expiresAt } })
  }

  async complete(id: string, f: MediaFacts, at: number): Promise<MediaRecord | null> {
    const done = await this.#media.updateOne(
      { _id: id, status: 'pending' },
      {
        $set: {
          status: 'ready',
          readyAt: at,
          width: f.width,
          height: f.height,
          hasThumbnail: f.hasThumbnail,
        },
      },
    )
    return done.modifiedCount === 1 ? this.get(id) : null
  }

  async reference(id: string, chatId: string, at: number): Promise<boolean> {
    const done = await this.#media.updateOne(
      { _id: id, status: 'ready' },
      { $max: { lastSentAt: at }, $addToSet: { chats: chatId } },
    )
    return done.matchedCount === 1
  }

  async chatsOf(id: string): Promise<string[]> {
    const doc = await this.#media.findOne({ _id: id }, { projection: { chats: 1 } })
    return doc?.chats ?? []
  }

  async due(c: SweepCutoffs, limit: number): Promise<MediaRecord[]> {
    const docs = await this.#media.find(due(c)).sort({ createdAt: 1 }).limit(limit).toArray()
    return docs.map(toRecord)
  }

  async markDeleting(id: string, c: SweepCutoffs): Promise<boolean> {
    const done = await this.#media.updateOne({ _id: id, ...due(c) }, { $set: { status: 'deleting' } })
    return done.matchedCount === 1
  }

  async uploadedBy(userId: string): Promise<MediaRecord[]> {
    // uploader_bytes leads with the uploader.
    const docs = await this.#media.find({ uploaderId: userId }).sort({ createdAt: 1, _id: 1 }).toArray()
    return docs.map(toRecord)
  }

  async markDeletingOf(userId: string, id: string): Promise<boolean> {
    const done = await this.#media.updateOne(
      { _id: id, uploaderId: userId },
      { $set: { status: 'deleting' } },
    )
    return done.matchedCount === 1
  }

  async remove(id: string): Promise<void> {
    await this.#media.deleteOne({ _id: id })
  }

  /** Deletes replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  async close(): Promise<void> {
    await this.#client.close()
  }
}
