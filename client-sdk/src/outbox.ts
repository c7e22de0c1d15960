/** A message the app sent that the server has not confirmed yet. */
export interface OutboxItem {
  /** The message's clientMsgId: the server stores it once, however often it is sent. */
  localId: string
  chatId: string
  text?: string
  media?: string[]
  replyTo?: number
  createdAt: number
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

/** Items in the order they were sent; every change is written through to the storage. */
export class Outbox {
  readonly #storage: OutboxStorage
  #items: OutboxItem[] = []
  #writing: Promise<void> = Promise.resolve()

  constructor(storage: OutboxStorage) {
    this.#storage = storage
  }

  async load(): Promise<OutboxItem[]> {
    this.#items = await this.#storage.load()
    return [...this.#items]
  }

  add(item: OutboxItem): Promise<void> {
    this.#items.push(item)
    return this.#persist()
  }

  has(localId: string): boolean {
    return this.#items.some((i) => i.localId === localId)
  }

  remove(localId: string): Promise<void> {
    this.#items = this.#items.filter((i) => i.localId !== localId)
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
