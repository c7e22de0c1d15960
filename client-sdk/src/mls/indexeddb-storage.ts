import type { ChatMessage } from '../timeline.ts'
import type { MlsDeviceRecord, MlsStorage } from './storage.ts'

const STORE = 'mls'
const KEY = 'device'
/** Messages read in encrypted chats, keyed [chatId, seq]. */
const MESSAGES = 'messages'

/**
 * A device's MLS record in a browser's IndexedDB: one database per device, the record under one
 * key, written in one readwrite transaction (IndexedDB commits it whole or not at all), and the
 * messages read in encrypted chats in a second store. Private keys and read text never leave the
 * browser profile; protecting the profile is the platform's part.
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
      // Version 2 added the messages; a database of version 1 gets that store on upgrade.
      const req = indexedDB.open(this.#name, 2)
      req.onupgradeneeded = () => {
        const names = req.result.objectStoreNames
        if (!names.contains(STORE)) req.result.createObjectStore(STORE)
        if (!names.contains(MESSAGES)) req.result.createObjectStore(MESSAGES, { keyPath: ['chatId', 'seq'] })
      }
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

  #write(work: (store: IDBObjectStore) => void): Promise<void> {
    return this.#open().then(
      (db) =>
        new Promise((resolve, reject) => {
          const tx = db.transaction(MESSAGES, 'readwrite')
          work(tx.objectStore(MESSAGES))
          tx.oncomplete = () => resolve()
          tx.onerror = () => reject(tx.error)
          tx.onabort = () => reject(tx.error)
        }),
    )
  }

  saveMessage(m: ChatMessage): Promise<void> {
    return this.#write((store) => store.put(m))
  }

  async loadMessages(chatId: string): Promise<ChatMessage[]> {
    const db = await this.#open()
    return new Promise((resolve, reject) => {
      const range = IDBKeyRange.bound([chatId, 0], [chatId, Number.MAX_SAFE_INTEGER])
      const req = db.transaction(MESSAGES, 'readonly').objectStore(MESSAGES).getAll(range)
      req.onsuccess = () => resolve(req.result as ChatMessage[])
      req.onerror = () => reject(req.error)
    })
  }

  dropMessages(chatId: string): Promise<void> {
    return this.#write((store) =>
      store.delete(IDBKeyRange.bound([chatId, 0], [chatId, Number.MAX_SAFE_INTEGER])),
    )
  }
}
