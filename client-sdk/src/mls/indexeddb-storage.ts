import type { MlsDeviceRecord, MlsStorage } from './storage.ts'

const STORE = 'mls'
const KEY = 'device'

/**
 * A device's MLS record in a browser's IndexedDB: one database per device, the record under one
 * key, written in one readwrite transaction (IndexedDB commits it whole or not at all). Private
 * keys never leave the browser profile; protecting the profile is the platform's part.
 */
export class IndexedDbMlsStorage implements MlsStorage {
  readonly #name: string
  #db: Promise<IDBDatabase> | undefined

  /** name: one per user and device, e.g. `natter-mls:${clientId}`. */
  constructor(name: string) {
    this.#name = name
  }

  #open(): Promise<IDBDatabase> {
    this.#db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(this.#name, 1)
      req.onupgradeneeded = () => req.result.createObjectStore(STORE)
      req.onsuccess = () => resolve(req.result)
      req.onerror = () => reject(req.error)
    })
    return this.#db
  }

  async load(): Promise<MlsDeviceRecord | null> {
    const db = await this.#open()
    return new Promise((resolve, reject) => {
      const req = db.transaction(STORE, 'readonly').objectStore(STORE).get(KEY)
      req.onsuccess = () => resolve((req.result as MlsDeviceRecord | undefined) ?? null)
      req.onerror = () => reject(req.error)
    })
  }

  async save(record: MlsDeviceRecord): Promise<void> {
    const db = await this.#open()
    return new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, 'readwrite')
      tx.objectStore(STORE).put(record, KEY)
      tx.oncomplete = () => resolve()
      tx.onerror = () => reject(tx.error)
      tx.onabort = () => reject(tx.error)
    })
  }
}
