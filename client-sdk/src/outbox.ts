import type { EncryptedMedia } from './mls/encrypted-media.ts'

/**
 * A message the app sent, or an edit or delete it made, that the server has not confirmed yet.
 * Items stored before edits and deletes were queued have no `op`: they are sends.
 */
export interface OutboxItem {
  /** A send's clientMsgId (the server stores it once, however often it is sent); an edit's or delete's own id. */
  localId: string
  chatId: string
  /** What the item does: send a message (the default), edit or delete one of the user's messages. */
  op?: 'send' | 'edit' | 'delete'
  /** edit, delete: the seq of the message changed, once known. */
  seq?: number
  /**
   * edit, delete of a message that was still in the outbox when asked: that send's localId,
   * until it is stored (then `seq` is set).
   */
  target?: string
  /** A send's text, or an edit's new text. */
  text?: string
  media?: string[]
  /** An encrypted chat's media: the descriptors (keys included) that go inside the message, one per id of `media`. */
  encryptedMedia?: EncryptedMedia[]
  replyTo?: number
  /** When the app asked, ms since the epoch. */
  createdAt: number
  /**
   * A send the server refused for good (not rate_limited): kept with its text, not sent again
   * until retried (NatterClient.retry) or removed (NatterClient.cancel).
   */
  failed?: { code: string; message: string }
}

/**
 * Where the outbox lives between app starts: memory by default; IndexedDB in a browser or a file
 * on disk in an app, behind these two calls.
 */
export interface OutboxStorage {
  load(): Promise<OutboxItem[]>
  save(items: OutboxItem[]): Promise<void>
}

export class MemoryOutboxStorage implements OutboxStorage {
  #items: OutboxItem[] = []
  async load(): Promise<OutboxItem[]> {
    return [...this.#items]
  }
  async save(items: OutboxItem[]): Promise<void> {
    this.#items = [...items]
  }
}

/**
 * Items in the order they were sent; every change is written through to the storage, and told
 * to `onChange` (with the chat it concerns) as soon as it is made in memory.
 */
export class Outbox {
  readonly #storage: OutboxStorage
  readonly #onChange: (chatId: string) => void
  #items: OutboxItem[] = []
  #writing: Promise<void> = Promise.resolve()

  constructor(storage: OutboxStorage, onChange: (chatId: string) => void = () => {}) {
    this.#storage = storage
    this.#onChange = onChange
  }

  async load(): Promise<OutboxItem[]> {
    this.#items = await this.#storage.load()
    for (const chatId of new Set(this.#items.map((i) => i.chatId))) this.#onChange(chatId)
    return [...this.#items]
  }

  add(item: OutboxItem): Promise<void> {
    this.#items.push(item)
    this.#onChange(item.chatId)
    return this.#persist()
  }

  has(localId: string): boolean {
    return this.#items.some((i) => i.localId === localId)
  }

  remove(localId: string): Promise<void> {
    const item = this.get(localId)
    if (!item) return this.#writing
    this.#items = this.#items.filter((i) => i !== item)
    this.#onChange(item.chatId)
    return this.#persist()
  }

  get(localId: string): OutboxItem | undefined {
    return this.#items.find((i) => i.localId === localId)
  }

  /** Changes an item in place (its position kept); `toEnd` moves it after every other item. */
  update(localId: string, change: Partial<OutboxItem>, toEnd = false): Promise<void> {
    const item = this.get(localId)
    if (!item) return this.#writing
    const next: OutboxItem = { ...item, ...change }
    for (const key of Object.keys(change) as (keyof OutboxItem)[]) {
      if (change[key] === undefined) delete next[key]
    }
    this.#items = toEnd
      ? [...this.#items.filter((i) => i !== item), next]
      : this.#items.map((i) => (i === item ? next : i))
    this.#onChange(item.chatId)
    return this.#persist()
  }

  get items(): readonly OutboxItem[] {
    return this.#items
  }

  #persist(): Promise<void> {
    const snapshot = [...this.#items]
    this.#writing = this.#writing.then(() => this.#storage.save(snapshot))
    return this.#writing
  }
}
