import type { Collection, Db, MongoClient, UpdateFilter } from 'mongodb'
import { KeyedQueue } from '../storage/keyed-queue.ts'
import { connectMongo, ensureIndexes, isDuplicateKey } from '../storage/mongo.ts'
import type { Chat, ChatStore, Cursor, Member, Presence, Role } from './chat-store.ts'

/** The claim on a direct chat: whoever inserts it first creates the chat. */
interface PairDoc {
  /** The two user ids, sorted, NUL-separated (and a third part, `e2ee`, for the encrypted one). */
  _id: string
  chatId: string
  a: string
  b: string
  at: number
}

interface PresenceDoc {
  _id: string
  online: boolean
  lastSeen: number
}

/** Resolves true when the insert went in, false when a unique index already held its key. */
async function inserted(insert: Promise<unknown>): Promise<boolean> {
  try {
    await insert
    return true
  } catch (err) {
    if (isDuplicateKey(err)) return false
    throw err
  }
}

/** As the SQLite store's: the encrypted direct chat's key has a third part, `e2ee`. */
function pairKey(a: string, b: string, encrypted = false): string {
  // User ids travel in MQTT strings, which cannot hold NUL, so ("ab", "c") and ("a", "bc") stay apart.
  return [...[a, b].sort(), ...(encrypted ? ['e2ee'] : [])].join('\u0000')
}

/**
 * MongoDB with only what every MongoDB-wire server has (FerretDB, DocumentDB, Cosmos DB): no
 * multi-document transactions, so writes are ordered to leave a usable state at every step,
 * and unique indexes settle races. A unique index on a field only direct chats have would need
 * a partial or sparse index, which FerretDB v1 lacks, so direct pairs have their own collection.
 * Member order is (joinedAt, _id): the driver makes ObjectIds in insertion order.
 */
export class MongoChatStore implements ChatStore {
  readonly #client: MongoClient
  readonly #chats: Collection<Chat>
  readonly #pairs: Collection<PairDoc>
  readonly #members: Collection<Member>
  readonly #cursors: Collection<Cursor>
  readonly #presence: Collection<PresenceDoc>
  readonly #serial = new KeyedQueue()

  private constructor(client: MongoClient, db: Db) {
    this.#client = client
    this.#chats = db.collection<Chat>('chats')
    this.#pairs = db.collection<PairDoc>('direct_pairs')
    this.#members = db.collection<Member>('members')
    this.#cursors = db.collection<Cursor>('cursors')
    this.#presence = db.collection<PresenceDoc>('presence')
  }

  static async open(uri: string): Promise<MongoChatStore> {
    const client = await connectMongo(uri)
    const store = new MongoChatStore(client, client.db())
    await ensureIndexes(store.#chats, [{ key: { id: 1 }, name: 'id', unique: true }])
    await ensureIndexes(store.#members, [
      { key: { chatId: 1, userId: 1 }, name: 'chat_user', unique: true },
      { key: { userId: 1 }, name: 'user' },
    ])
    await ensureIndexes(store.#cursors, [{ key: { chatId: 1, userId: 1 }, name: 'chat_user', unique: true }])
    return store
  }

  /**
   * Runs the calls for one key one after another in this process. FerretDB v1 applies an update
   * by reading the document and writing it back whole, so two concurrent conditional updates
   * can both match and the later write undo the earlier; on MongoDB the filter alone suffices.
   */
  #serially<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.#serial.run(key, work)
  }

  async createGroup(g: {
    id: string
    name: string
    createdBy: string
    members: string[]
    at: number
  }): Promise<Chat> {
    const chat: Chat = { id: g.id, kind: 'group', name: g.name, createdBy: g.createdBy, createdAt: g.at }
    // The chat first: a taken id fails before any member is added to someone else's chat, and
    // a crash in between leaves a chat nobody is in rather than members of no chat.
    await this.#chats.insertOne({ ...chat })
    const userIds = [...new Set([g.createdBy, ...g.members])]
    await this.#members.insertMany(
      userIds.map((userId) => ({
        chatId: g.id,
        userId,
        role: userId === g.createdBy ? 'admin' : 'member',
        joinedAt: g.at,
      })),
      { ordered: true },
    )
    return chat
  }

  async findOrCreateDirect(d: {
    id: string
    a: string
    b: string
    at: number
    encrypted?: boolean
  }): Promise<{ chat: Chat; created: boolean }> {
    let pair: PairDoc = { _id: pairKey(d.a, d.b, d.encrypted), chatId: d.id, a: d.a, b: d.b, at: d.at }
    const created = await inserted(this.#pairs.insertOne({ ...pair }))
    if (!created) {
      const existing = await this.#pairs.findOne({ _id: pair._id })
      if (!existing) throw new Error(`direct pair ${JSON.stringify(pair._id)} vanished`)
      pair = existing
      const chat = await this.getChat(pair.chatId)
      if (chat) return { chat, created: false }
    }
    // Members before the chat, so a chat that exists is complete. When the chat is missing,
    // its creator is still at it or crashed; either way finishing from the claim is the same
    // work with the same values, and unique indexes drop whatever was already done.
    const chat: Chat = { id: pair.chatId, kind: 'direct', name: null, createdBy: pair.a, createdAt: pair.at }
    for (const userId of new Set([pair.a, pair.b])) {
      await inserted(this.#members.insertOne({ chatId: chat.id, userId, role: 'member', joinedAt: pair.at }))
    }
    await inserted(this.#chats.insertOne({ ...chat }))
    return { chat, created }
  }

  getChat(chatId: string): Promise<Chat | null> {
    return this.#chats.findOne({ id: chatId }, { projection: { _id: 0 } })
  }

  members(chatId: string): Promise<Member[]> {
    return this.#members
      .find({ chatId }, { projection: { _id: 0 } })
      .sort({ joinedAt: 1, _id: 1 })
      .toArray()
  }

  async addMembers(chatId: string, userIds: string[], at: number, startSeq = 0): Promise<string[]> {
    const added: string[] = []
    // One at a time, so join order is the order given and each duplicate is skipped alone.
    for (const userId of new Set(userIds)) {
      if (await inserted(this.#members.insertOne({ chatId, userId, role: 'member', joinedAt: at }))) {
        added.push(userId)
        // After the membership, so only someone actually added gets it; a returning member's
        // cursor already exists and the unique index keeps it as it was.
        if (startSeq > 0) await this.#startCursor(chatId, userId, startSeq)
      }
    }
    return added
  }

  #startCursor(chatId: string, userId: string, seq: number): Promise<boolean> {
    return this.#serially(cursorKey(chatId, userId), () =>
      inserted(this.#cursors.insertOne({ chatId, userId, deliveredSeq: seq, readSeq: seq })),
    )
  }

  async removeMember(chatId: string, userId: string): Promise<boolean> {
    const { deletedCount } = await this.#members.deleteOne({ chatId, userId })
    // The cursor stays for when they come back; one at 0 marks them as no newcomer then.
    if (deletedCount > 0) await this.#startCursor(chatId, userId, 0)
    return deletedCount > 0
  }

  async setRole(chatId: string, userId: string, role: Role): Promise<void> {
    await this.#members.updateOne({ chatId, userId }, { $set: { role } })
  }

  async renameChat(chatId: string, name: string): Promise<boolean> {
    const { matchedCount } = await this.#chats.updateOne({ id: chatId, kind: 'group' }, { $set: { name } })
    return matchedCount > 0
  }

  async chatsOf(userId: string): Promise<Chat[]> {
    const memberships = await this.#members.find({ userId }, { projection: { _id: 0, chatId: 1 } }).toArray()
    if (memberships.length === 0) return []
    return this.#chats
      .find({ id: { $in: memberships.map((m) => m.chatId) } }, { projection: { _id: 0 } })
      .sort({ createdAt: -1, _id: -1 })
      .toArray()
  }

  allMembers(): Promise<Member[]> {
    return this.#members
      .find({}, { projection: { _id: 0 } })
      .sort({ chatId: 1, joinedAt: 1, _id: 1 })
      .toArray()
  }

  advanceCursor(c: {
    chatId: string
    userId: string
    kind: 'delivered' | 'read'
    seq: number
  }): Promise<{ cursor: Cursor; moved: boolean }> {
    return this.#serially(cursorKey(c.chatId, c.userId), () => this.#advance(c))
  }

  async #advance({
    chatId,
    userId,
    kind,
    seq,
  }: {
    chatId: string
    userId: string
    kind: 'delivered' | 'read'
    seq: number
  }): Promise<{ cursor: Cursor; moved: boolean }> {
    const field = kind === 'read' ? 'readSeq' : 'deliveredSeq'
    const update: UpdateFilter<Cursor> =
      kind === 'read'
        ? { $set: { readSeq: seq }, $max: { deliveredSeq: seq } }
        : { $set: { deliveredSeq: seq } }
    // Another node can create the cursor between the update and the insert; then go round again.
    for (let attempt = 0; attempt < 10; attempt++) {
      if (seq > 0) {
        // No projection: FerretDB v1 does not implement findAndModify's "fields".
        const after = await this.#cursors.findOneAndUpdate(
          { chatId, userId, [field]: { $lt: seq } },
          update,
          { returnDocument: 'after' },
        )
        if (after) {
          const { _id, ...cursor } = after
          return { cursor, moved: true }
        }
      }
      const current = await this.#cursors.findOne({ chatId, userId }, { projection: { _id: 0 } })
      if (current && current[field] >= seq) return { cursor: current, moved: false }
      if (!current && seq <= 0)
        return { cursor: { chatId, userId, deliveredSeq: 0, readSeq: 0 }, moved: false }
      if (!current) {
        const cursor: Cursor = { chatId, userId, deliveredSeq: seq, readSeq: kind === 'read' ? seq : 0 }
        if (await inserted(this.#cursors.insertOne({ ...cursor }))) return { cursor, moved: true }
      }
    }
    throw new Error(`cursor of ${userId} in ${chatId} kept changing under advanceCursor`)
  }

  async cursor(chatId: string, userId: string): Promise<Cursor> {
    const c = await this.#cursors.findOne({ chatId, userId })
    return { chatId, userId, deliveredSeq: c?.deliveredSeq ?? 0, readSeq: c?.readSeq ?? 0 }
  }

  async cursors(chatId: string): Promise<Cursor[]> {
    const [members, stored] = await Promise.all([
      this.members(chatId),
      this.#cursors.find({ chatId }, { projection: { _id: 0 } }).toArray(),
    ])
    const byUser = new Map(stored.map((c) => [c.userId, c]))
    return members.map(({ userId }) => ({
      chatId,
      userId,
      deliveredSeq: byUser.get(userId)?.deliveredSeq ?? 0,
      readSeq: byUser.get(userId)?.readSeq ?? 0,
    }))
  }

  async chatsEver(userId: string): Promise<{ chat: Chat; member: Member | null; cursor: Cursor }[]> {
    // The cursors have no index by user: read whole (FerretDB v1 reads whole collections anyway).
    const [members, cursors] = await Promise.all([
      this.#members.find({ userId }, { projection: { _id: 0 } }).toArray(),
      this.#cursors.find({ userId }, { projection: { _id: 0 } }).toArray(),
    ])
    const memberOf = new Map(members.map((m) => [m.chatId, m]))
    const cursorOf = new Map(cursors.map((c) => [c.chatId, c]))
    const chatIds = [...new Set([...memberOf.keys(), ...cursorOf.keys()])]
    if (chatIds.length === 0) return []
    const chats = await this.#chats
      .find({ id: { $in: chatIds } }, { projection: { _id: 0 } })
      .sort({ id: 1 })
      .toArray()
    return chats.map((chat) => {
      const m = memberOf.get(chat.id)
      const c = cursorOf.get(chat.id)
      return {
        chat,
        member: m ? { chatId: m.chatId, userId: m.userId, role: m.role, joinedAt: m.joinedAt } : null,
        cursor: {
          chatId: chat.id,
          userId,
          deliveredSeq: c?.deliveredSeq ?? 0,
          readSeq: c?.readSeq ?? 0,
        },
      }
    })
  }

  async forgetUser(userId: string): Promise<void> {
    await this.#cursors.deleteMany({ userId })
    await this.#serially(`presence\u0000${userId}`, () => this.#presence.deleteOne({ _id: userId }))
  }

  setPresence(p: Presence): Promise<void> {
    // In call order per user, so the last call wins here even where upserts are not atomic.
    return this.#serially(`presence\u0000${p.userId}`, async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.#presence.updateOne(
            { _id: p.userId },
            { $set: { online: p.online, lastSeen: p.lastSeen } },
            { upsert: true },
          )
          return
        } catch (err) {
          // Two first upserts of a user raced; the loser updates the winner's document.
          if (!isDuplicateKey(err) || attempt >= 5) throw err
        }
      }
    })
  }

  async allPresence(): Promise<Presence[]> {
    const docs = await this.#presence.find({}).sort({ _id: 1 }).toArray()
    return docs.map((d) => ({ userId: d._id, online: d.online, lastSeen: d.lastSeen }))
  }

  /** Deletes replaced the documents: what the server's storage keeps is the operator's to compact. */
  async purgeErased(): Promise<void> {}

  close(): Promise<void> {
    return this.#client.close()
  }
}

function cursorKey(chatId: string, userId: string): string {
  return `cursor\u0000${chatId}\u0000${userId}`
}
