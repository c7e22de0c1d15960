import type { OutboxItem, OutboxStorage } from './outbox.ts'

// The `@natter/client-sdk/indexeddb` entry holds every IndexedDB storage of the SDK.
export { IndexedDbMlsStorage } from './mls/indexeddb-storage.ts'

const STORE = 'items'

/**
 * The outbox in a browser's IndexedDB: messages not yet stored by the server survive a reload
 * or a closed tab, and go out when the app connects again. One database per device. Items are
 * stored whole, in order: queued edits and deletes and failed sends carry `op`, `seq`, `target`
 * and `failed`; items written before those existed have none and load as sends, so the format
 * needs no migration.
 */
export class IndexedDbOutboxStorage implements OutboxStorage {
  readonly #name: string
  #db: Promise<IDBDatabase> | undefined

  /** name: one per user and device, e.g. `natter-outbox:${clientId}`. */
  constructor(name: string) {
    this.#name = name
  }

  #open(): Promise<IDBDatabase> {
    this.#db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(this.#name, 1)
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'position' })
      req.onsuccess = () => resolve(req.result)
      req.onerror = () => reject(req.error)
    })
    return this.#db
  }

  async load(): Promise<OutboxItem[]> {
    const db = await this.#open()
    return new Promise((resolve, reject) => {
      const req = db.transaction(STORE, 'readonly').objectStore(STORE).getAll()
      req.onsuccess = () =>
        resolve((req.result as (OutboxItem & { position: number })[]).map(({ position: _, ...item }) => item))
      req.onerror = () => reject(req.error)
    })
  }

  async save(items: OutboxItem[]): Promise<void> {
    const db = await this.#open()
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, 'readwrite')
      const store = tx.objectStore(STORE)
      store.clear()
      for (const [position, item] of items.entries()) store.put({ ...item, position })
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error)
      tx.onabort = () => reject(tx.error)
    })
  }
}
