import type { ChatMessage } from '../timeline.ts'

/**
 * Where a device keeps its MLS secrets (docs/e2ee.md, "How keys are stored"): its signature key
 * pair, the private parts of the KeyPackages it uploaded and not yet used, and its state of each
 * encrypted chat's group. All of it stays on the device: the server never gets any of it.
 */

/** A KeyPackage this device generated: what it uploaded and the private keys a Welcome needs. */
export interface StoredKeyPackage {
  /** KeyPackageRef (RFC 9420 §5.2), hex: the name a Welcome's EncryptedGroupSecrets gives it. */
  ref: string
  /** The MLSMessage (`mls_key_package`) uploaded, base64. */
  message: string
  /** Private keys, base64: init key, leaf HPKE key (the signature key is the device's). */
  initPrivateKey: string
  hpkePrivateKey: string
  lastResort: boolean
}

/** This device's state of one encrypted chat's group. */
export interface StoredGroup {
  /** ts-mls `encodeGroupState`, base64 (holds the epoch's secrets and this leaf's private keys). */
  state: string
  /** The chat seq up to which messages were processed with this state (in seq order). */
  seq: number
  /**
   * The seq at which this device came into the group (the Commit whose Welcome it joined from, or
   * where it made the group): messages before it were never readable here. Absent in records
   * saved by SDKs before it was kept.
   */
  joined?: number
}

/** Everything one device keeps for MLS: one record, written whole. */
export interface MlsDeviceRecord {
  version: 1
  /** The device's credential identity, `userId/deviceId` (its MQTT client id). */
  identity: string
  /** Ed25519 key pair (cipher suite 1) every KeyPackage and leaf of this device signs with, base64. */
  signature: { publicKey: string; signKey: string }
  /** KeyPackages uploaded and not yet used to join a group, by ref. */
  keyPackages: Record<string, StoredKeyPackage>
  /** Group states by chat id. */
  groups: Record<string, StoredGroup>
}

/**
 * Storage for one device's MLS record. `save` must be atomic (the old record or the new one is
 * read back, never a mix): a record half written loses the device's groups. Implementations:
 * MemoryMlsStorage (tests), FileMlsStorage (Node, `@natter/client-sdk/mls-file`),
 * IndexedDbMlsStorage (browsers, `@natter/client-sdk/indexeddb`).
 */
export interface MlsStorage {
  /** The record saved last, or null before the first save. */
  load(): Promise<MlsDeviceRecord | null>
  save(record: MlsDeviceRecord): Promise<void>
  /**
   * Optional: keeps a message of an encrypted chat as this device read it (decrypted text, or a
   * tombstone), so that it is readable again after a restart: MLS keys are used once, and the
   * ciphertext the server still holds can no longer be decrypted. The same chat and seq saved
   * again replaces it. Without these three methods, what was read is readable until the app stops.
   */
  saveMessage?(m: ChatMessage): Promise<void>
  /** Optional: the messages of a chat saved with saveMessage, each seq once (the latest saved). */
  loadMessages?(chatId: string): Promise<ChatMessage[]>
  /** Optional: forgets a chat's saved messages (the user left it or was removed). */
  dropMessages?(chatId: string): Promise<void>
}

/** An MlsStorage in memory: gone with the process (tests, or a device that keeps nothing). */
export class MemoryMlsStorage implements MlsStorage {
  #record: string | null = null
  readonly #messages = new Map<string, Map<number, string>>()

  async saveMessage(m: ChatMessage): Promise<void> {
    let chat = this.#messages.get(m.chatId)
    if (!chat) {
      chat = new Map()
      this.#messages.set(m.chatId, chat)
    }
    chat.set(m.seq, JSON.stringify(m))
  }

  async loadMessages(chatId: string): Promise<ChatMessage[]> {
    return [...(this.#messages.get(chatId)?.values() ?? [])].map((m) => JSON.parse(m) as ChatMessage)
  }

  async dropMessages(chatId: string): Promise<void> {
    this.#messages.delete(chatId)
  }

  async load(): Promise<MlsDeviceRecord | null> {
    return this.#record === null ? null : (JSON.parse(this.#record) as MlsDeviceRecord)
  }

  async save(record: MlsDeviceRecord): Promise<void> {
    // A copy: later changes of the caller's object are not saved by accident.
    this.#record = JSON.stringify(record)
  }
}
