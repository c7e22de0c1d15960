import type { ClientState } from 'ts-mls'
import { createGroup, emptyPskIndex, joinGroup } from 'ts-mls'
import type { ChatMessage } from '../timeline.ts'
import {
  cipherSuite,
  decodeMessage,
  fromBase64,
  keyPackageOf,
  newKeyPackage,
  newSignatureKeyPair,
  stateBytes,
  stateFrom,
  toBase64,
  utf8Encoder,
  welcomeRefs,
} from './codec.ts'
import type { MlsDeviceRecord, MlsStorage } from './storage.ts'

/**
 * One device's MLS keys and group states, read from and written to its MlsStorage: every change
 * is saved before it is used (a KeyPackage before it is uploaded, a group state before what it
 * decrypted is shown), one save at a time.
 */
export class MlsDevice {
  readonly #storage: MlsStorage
  readonly #record: MlsDeviceRecord
  readonly #groups = new Map<string, ClientState>()
  #saving: Promise<void> = Promise.resolve()

  private constructor(storage: MlsStorage, record: MlsDeviceRecord) {
    this.#storage = storage
    this.#record = record
  }

  /**
   * The device's record from storage, or a new one (a fresh signature key pair) saved first.
   * Rejects when the storage holds another device's record.
   */
  static async open(storage: MlsStorage, identity: string): Promise<MlsDevice> {
    let record = await storage.load()
    if (record && record.identity !== identity)
      throw new Error(`the MLS storage holds device ${record.identity}'s keys, not ${identity}'s`)
    if (!record) {
      const pair = await newSignatureKeyPair()
      record = {
        version: 1,
        identity,
        signature: { publicKey: toBase64(pair.publicKey), signKey: toBase64(pair.signKey) },
        keyPackages: {},
        groups: {},
      }
      await storage.save(record)
    }
    return new MlsDevice(storage, record)
  }

  get identity(): string {
    return this.#record.identity
  }

  get signaturePublicKey(): Uint8Array {
    return fromBase64(this.#record.signature.publicKey)
  }

  #pair() {
    return {
      publicKey: fromBase64(this.#record.signature.publicKey),
      signKey: fromBase64(this.#record.signature.signKey),
    }
  }

  /** Saves the record as it is now, after the saves before. */
  #save(): Promise<void> {
    const snapshot = structuredClone(this.#record)
    const save = this.#saving.then(() => this.#storage.save(snapshot))
    this.#saving = save.catch(() => {})
    return save
  }

  /**
   * `n` new one-time KeyPackages (and a last-resort one when asked, replacing the previous), their
   * private parts saved: the base64 MLSMessages for mls.keypackages.upload.
   */
  async newKeyPackages(
    n: number,
    withLastResort: boolean,
  ): Promise<{ keyPackages: string[]; lastResort?: string }> {
    const make = async (lastResort: boolean) => {
      const kp = await newKeyPackage(this.identity, this.#pair())
      this.#record.keyPackages[kp.ref] = {
        ref: kp.ref,
        message: toBase64(kp.message),
        initPrivateKey: toBase64(kp.privatePackage.initPrivateKey),
        hpkePrivateKey: toBase64(kp.privatePackage.hpkePrivateKey),
        lastResort,
      }
      return toBase64(kp.message)
    }
    const keyPackages: string[] = []
    for (let i = 0; i < n; i++) keyPackages.push(await make(false))
    let lastResort: string | undefined
    if (withLastResort) {
      // The server keeps one last-resort package: the one it replaces is of no use any more.
      for (const [ref, kp] of Object.entries(this.#record.keyPackages))
        if (kp.lastResort) delete this.#record.keyPackages[ref]
      lastResort = await make(true)
    }
    await this.#save()
    return lastResort === undefined ? { keyPackages } : { keyPackages, lastResort }
  }

  /** This device's group state of a chat, or undefined when it is in no group of it. */
  group(chatId: string): ClientState | undefined {
    let state = this.#groups.get(chatId)
    const stored = this.#record.groups[chatId]
    if (!state && stored) {
      state = stateFrom(fromBase64(stored.state))
      this.#groups.set(chatId, state)
    }
    return state
  }

  /** The seq up to which a chat's messages were processed (0: none). */
  processedSeq(chatId: string): number {
    return this.#record.groups[chatId]?.seq ?? 0
  }

  /** The seq at which this device came into the chat's group (StoredGroup.joined), when known. */
  joinedSeq(chatId: string): number | undefined {
    return this.#record.groups[chatId]?.joined
  }

  /**
   * Keeps a chat's new group state and the seq processed with it; resolves once saved. `joined`:
   * the seq at which this device came into the group (given when it does; kept after).
   */
  setGroup(chatId: string, state: ClientState, seq: number, joined?: number): Promise<void> {
    this.#groups.set(chatId, state)
    const at = joined ?? this.#record.groups[chatId]?.joined
    this.#record.groups[chatId] = {
      state: toBase64(stateBytes(state)),
      seq,
      ...(at === undefined ? {} : { joined: at }),
    }
    return this.#save()
  }

  /** Forgets a chat's group (removed from it, or left): its secrets are deleted from the device. */
  dropGroup(chatId: string): Promise<void> {
    this.#groups.delete(chatId)
    delete this.#record.groups[chatId]
    return this.#save()
  }

  /** Keeps a message as read here, when the storage keeps messages (MlsStorage.saveMessage). */
  async saveMessage(m: ChatMessage): Promise<void> {
    await this.#storage.saveMessage?.(m)
  }

  /** The messages of a chat kept by saveMessage (none when the storage keeps none). */
  async loadMessages(chatId: string): Promise<ChatMessage[]> {
    return (await this.#storage.loadMessages?.(chatId)) ?? []
  }

  /** Forgets a chat: its group's secrets and the messages read in it. */
  async forgetChat(chatId: string): Promise<void> {
    await this.dropGroup(chatId)
    await this.#storage.dropMessages?.(chatId)
  }

  /** A new group of one (epoch 0) for chat `chatId` (its group id is the chat id, docs/e2ee.md §1). */
  async createGroup(chatId: string): Promise<ClientState> {
    const { publicPackage, privatePackage } = await this.#freshLeaf()
    return createGroup(utf8Encoder.encode(chatId), publicPackage, privatePackage, [], await cipherSuite())
  }

  /** A leaf's keys for a group this device creates (no KeyPackage is uploaded for it). */
  #freshLeaf() {
    return newKeyPackage(this.identity, this.#pair())
  }

  /** The chats whose group this device is in. */
  chatIds(): string[] {
    return Object.keys(this.#record.groups)
  }

  /**
   * Joins a group from its Welcome (MLSMessage bytes) with the KeyPackage it was made for; a
   * one-time KeyPackage's private keys are deleted once used. Rejects when no KeyPackage of this
   * device is named.
   */
  async join(welcome: Uint8Array): Promise<ClientState> {
    const refs = welcomeRefs(welcome)
    const stored = refs.map((r) => this.#record.keyPackages[r]).find((k) => k !== undefined)
    if (!stored) throw new Error('the Welcome is for none of this device’s KeyPackages')
    const m = decodeMessage(welcome)
    if (m.wireformat !== 'mls_welcome') throw new Error('not a Welcome')
    const state = await joinGroup(
      m.welcome,
      keyPackageOf(fromBase64(stored.message)),
      {
        initPrivateKey: fromBase64(stored.initPrivateKey),
        hpkePrivateKey: fromBase64(stored.hpkePrivateKey),
        signaturePrivateKey: fromBase64(this.#record.signature.signKey),
      },
      emptyPskIndex,
      await cipherSuite(),
    )
    if (!stored.lastResort) delete this.#record.keyPackages[stored.ref]
    return state
  }
}
