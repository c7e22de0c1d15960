import type { EncryptedMedia } from './mls/encrypted-media.ts'

/** A chat message as the server sends it on the inbox (docs/protocol.md). */
export interface ChatMessage {
  type: 'message' | 'edit' | 'delete'
  chatId: string
  seq: number
  clientMsgId: string
  senderId: string
  deviceId: string
  at: number
  kind: 'text' | 'event'
  text: string | null
  media?: string[]
  replyTo?: number
  event?: Record<string, unknown>
  /** An encrypted chat's message as the server holds it: base64 MLS PrivateMessage (docs/e2ee.md §4). */
  ciphertext?: string
  /**
   * An encrypted chat's media, as the message carried them (decrypted on this device): one per id
   * of `media`, in its order, with the key to read it (NatterClient.downloadMedia; docs/e2ee.md).
   */
  encryptedMedia?: EncryptedMedia[]
  /** Set on an encrypted chat's messages the SDK decrypted (their text, media, replyTo came from inside). */
  encrypted?: true
  /** Why an encrypted message could not be read on this device (text stays null). */
  undecryptable?: string
  editedAt: number | null
  deletedAt: number | null
}

/**
 * One chat's messages by seq, each once. `from`..`upTo` is the range held without a gap; a
 * message beyond upTo + 1 means something is missing, to be fetched with sync.
 */
export class Timeline {
  readonly #bySeq = new Map<number, ChatMessage>()
  from = 0
  upTo = 0

  /** Adds or replaces a message (an edit or a tombstone replaces it); false when nothing changed. */
  add(m: ChatMessage): boolean {
    const known = this.#bySeq.get(m.seq)
    if (known && known.editedAt === m.editedAt && known.deletedAt === m.deletedAt) return false
    this.#bySeq.set(m.seq, { ...m, type: 'message' })
    if (this.from === 0 || m.seq < this.from) {
      if (this.from === 0) this.upTo = m.seq
      this.from = m.seq
    }
    while (this.#bySeq.has(this.upTo + 1)) this.upTo++
    return true
  }

  /**
   * The server answered a sync with every message after upTo up to `seq`: seqs between that are
   * not held do not exist for this user (messages hidden from them, docs/protocol.md#blocking),
   * so they are no gap.
   */
  syncedTo(seq: number): void {
    if (this.from === 0 || seq <= this.upTo) return
    this.upTo = seq
    while (this.#bySeq.has(this.upTo + 1)) this.upTo++
  }

  /** Whether messages after upTo are held: some between are missing. */
  get hasGap(): boolean {
    for (const seq of this.#bySeq.keys()) if (seq > this.upTo) return true
    return false
  }

  get(seq: number): ChatMessage | undefined {
    return this.#bySeq.get(seq)
  }

  /** The messages in seq order. */
  messages(): ChatMessage[] {
    return [...this.#bySeq.values()].sort((a, b) => a.seq - b.seq)
  }
}
