import type { ClientState, KeyPackage } from 'ts-mls'
import type { ChatMessage } from '../timeline.ts'
import {
  applyCommit,
  decrypt,
  encrypt,
  epochOf,
  fromBase64,
  identityOfKeyPackage,
  keyPackageOf,
  type Leaf,
  leavesOf,
  makeCommit,
  ownLeafOf,
  safetyNumber,
  toBase64,
  utf8Decoder,
  utf8Encoder,
} from './codec.ts'
import { parseEncryptedBody } from './encrypted-body-schema.ts'
import type { EncryptedMedia } from './encrypted-media.ts'
import type { MlsDevice } from './mls-device.ts'

/** KeyPackages on the server below which the SDK uploads a batch (mls.keypackages.count). */
export const KEY_PACKAGES_LOW = 5
/** How many one-time KeyPackages one top-up uploads. */
export const KEY_PACKAGES_BATCH = 20
/** Tries of one Commit refused as stale_epoch (each after catching up) before giving up. */
const COMMIT_TRIES = 5
/** After a stale_epoch, how long a device waits for the winning Commit to arrive when sync has not brought it. */
const CATCH_UP_WAIT_MS = 5000

/**
 * What is inside an encrypted message's ciphertext: JSON, UTF-8 (the server never sees it).
 * `v: 1` (docs/e2ee.md, "Media"): `media` holds each file's descriptor with its key. Without `v`
 * (the first SDKs with MLS), `media` held bare media ids, which nobody can decrypt: they are
 * shown as ids without `encryptedMedia`.
 */
export interface EncryptedBody {
  v?: 1
  text?: string
  media?: EncryptedMedia[] | string[]
  replyTo?: number
}

/** The version of EncryptedBody this SDK writes. */
export const ENCRYPTED_BODY_VERSION = 1 as const

/** A member user's devices in an encrypted chat's group changed (a Commit added or removed leaves). */
export interface DevicesChangedEvent {
  chatId: string
  userId: string
  /** The user's device ids in the group after the Commit. */
  devices: string[]
  added: string[]
  removed: string[]
  /** The epoch the Commit started. */
  epoch: number
}

/** What EncryptedChats needs of its client. */
export interface EncryptedChatsHost {
  readonly userId: string
  readonly deviceId: string
  request<T>(op: string, params?: Record<string, unknown>): Promise<T>
  /** The chat's members as last known (undefined: not known yet). */
  members(chatId: string): string[] | undefined
  /** Fetches the chat's messages after the last one held (sync), feeding them here in order. */
  sync(chatId: string): Promise<void>
  /**
   * A message of an encrypted chat, decrypted (or marked undecryptable), in seq order; `live`
   * as it was fed (false: from a history page).
   */
  deliver(m: ChatMessage, live: boolean): void
  /** This device is in the chat's group now: it created it, or joined from a Welcome. */
  joined(chatId: string, epoch: number): void
  devicesChanged(e: DevicesChangedEvent): void
  /** Something went wrong that no call waits for (a Commit that does not apply, a failed Welcome). */
  failed(err: Error): void
}

interface ChatPipe {
  /** Seq up to which messages were processed. */
  done: number
  /** Messages after a gap, waiting for those before; `live` as fed. */
  waiting: Map<number, { m: ChatMessage; live: boolean }>
  /** Processed messages as delivered, for deliveries again (a sync overlapping live messages). */
  resolved: Map<number, ChatMessage>
  /** The chain every step on this chat's group waits on: one at a time, in order. */
  queue: Promise<unknown>
  /** A sync started for a gap is running: another gap waits for it rather than starting one more. */
  filling: boolean
  /** Whether the messages read before (MlsStorage.loadMessages) are in `resolved`. */
  loaded: boolean
}

const userOf = (identity: string) => identity.slice(0, identity.indexOf('/'))
const deviceOf = (identity: string) => identity.slice(identity.indexOf('/') + 1)

/**
 * The SDK's MLS client for encrypted chats (docs/e2ee.md, "The SDK"): processes each chat's
 * messages in seq order (Commits, Welcomes, decryption), encrypts what this device sends, and
 * makes Commits (create, add, remove, add own new devices), rebasing on stale_epoch.
 */
export class EncryptedChats {
  readonly #host: EncryptedChatsHost
  readonly device: MlsDevice
  readonly #pipes = new Map<string, ChatPipe>()
  /** What this device sent, by clientMsgId: its own PrivateMessages cannot be decrypted by itself. */
  readonly #sent = new Map<string, EncryptedBody>()
  /** Ciphertext made per clientMsgId: a resend carries the same bytes. */
  readonly #ciphertexts = new Map<string, string>()

  constructor(host: EncryptedChatsHost, device: MlsDevice) {
    this.#host = host
    this.device = device
  }

  get #identity(): string {
    return this.device.identity
  }

  #pipe(chatId: string): ChatPipe {
    let p = this.#pipes.get(chatId)
    if (!p) {
      p = {
        done: this.device.processedSeq(chatId),
        waiting: new Map(),
        resolved: new Map(),
        queue: Promise.resolve(),
        filling: false,
        loaded: false,
      }
      this.#pipes.set(chatId, p)
    }
    return p
  }

  /** Runs `work` after everything queued on the chat's group, alone. */
  #run<T>(chatId: string, work: () => Promise<T>): Promise<T> {
    const p = this.#pipe(chatId)
    const result = p.queue.then(work)
    p.queue = result.catch(() => {})
    return result
  }

  // --- KeyPackages ------------------------------------------------------------------------------

  /**
   * Uploads KeyPackages when the server holds fewer than KEY_PACKAGES_LOW of this device's (a
   * batch of KEY_PACKAGES_BATCH), and a last-resort one when it has none (docs/e2ee.md §2).
   * Resolves with how many were uploaded.
   */
  async topUp(): Promise<number> {
    const c = await this.#host.request<{ count: number; lastResort: boolean }>('mls.keypackages.count')
    if (c.count >= KEY_PACKAGES_LOW && c.lastResort) return 0
    const n = c.count >= KEY_PACKAGES_LOW ? 0 : KEY_PACKAGES_BATCH
    const made = await this.device.newKeyPackages(Math.max(n, 1), !c.lastResort)
    await this.#host.request('mls.keypackages.upload', made)
    return made.keyPackages.length + (made.lastResort ? 1 : 0)
  }

  /** One KeyPackage per device of each user (mls.keypackages.claim), as KeyPackages. */
  async #claim(userIds: string[], only?: (identity: string) => boolean): Promise<KeyPackage[]> {
    const out: KeyPackage[] = []
    for (const userId of userIds) {
      const r = await this.#host.request<{ keyPackages: { deviceId: string; keyPackage: string }[] }>(
        'mls.keypackages.claim',
        { userId },
      )
      for (const k of r.keyPackages) {
        const kp = keyPackageOf(fromBase64(k.keyPackage))
        const identity = identityOfKeyPackage(kp)
        // The server checked the credential on upload; a package naming another device is not added.
        if (identity !== `${userId}/${k.deviceId}` || identity === this.#identity) continue
        if (only && !only(identity)) continue
        out.push(kp)
      }
    }
    return out
  }

  // --- incoming, in seq order -------------------------------------------------------------------

  /**
   * A message of an encrypted chat from the inbox, a sync or a history page: processed once all
   * before it were (a gap starts a sync), then delivered. Resolves once delivered or waiting.
   */
  feed(m: ChatMessage, live = true): Promise<void> {
    return this.#run(m.chatId, async () => {
      const p = await this.#loadedPipe(m.chatId)
      if (m.seq <= p.done) {
        const known = p.resolved.get(m.seq)
        // Changed since (a delete): the tombstone replaces what was decrypted.
        if (known && m.deletedAt !== null && known.deletedAt === null) {
          const tomb = { ...known, text: null, deletedAt: m.deletedAt }
          p.resolved.set(m.seq, tomb)
          await this.device.saveMessage(tomb)
          this.#host.deliver(tomb, live)
        } else this.#host.deliver(known ?? opaque(m, this.#unreadReason(m)), live)
        return
      }
      p.waiting.set(m.seq, { m, live })
      await this.#drain(m.chatId, p, p.done)
      if (p.waiting.size > 0) this.#fill(m.chatId, p)
    })
  }

  /**
   * A message of an encrypted chat as this device read it (decrypted, or why not), for a copy
   * the server sent outside the timeline (a chat summary's last message).
   */
  /**
   * The messages of an encrypted chat this device read and still holds (kept by the storage
   * across restarts, decrypted this run), for a search on the device; none for a chat it left.
   */
  readMessages(chatId: string): Promise<ChatMessage[]> {
    return this.#run(chatId, async () => [...(await this.#loadedPipe(chatId)).resolved.values()])
  }

  readable(m: ChatMessage): ChatMessage {
    const known = this.#pipes.get(m.chatId)?.resolved.get(m.seq)
    if (known)
      return m.deletedAt !== null && known.deletedAt === null
        ? { ...known, text: null, deletedAt: m.deletedAt }
        : known
    return opaque(m, 'not read on this device yet')
  }

  /** Fetches a gap with sync, one at a time per chat; a gap left when it ends starts the next one. */
  #fill(chatId: string, p: ChatPipe): void {
    if (p.filling) return
    p.filling = true
    const fillFrom = p.done
    this.#host
      .sync(chatId)
      .catch(() => {})
      .finally(() => {
        p.filling = false
        // Progress made and still a gap (messages that came during the sync): once more. No
        // progress: the next message or reconnect tries again, not a loop.
        if (p.waiting.size > 0 && p.done > fillFrom) this.#fill(chatId, p)
      })
  }

  /**
   * A sync answered everything up to `seq`: seqs not received are hidden from this user (no gap),
   * so what waits up to there is processed now.
   */
  passedTo(chatId: string, seq: number): Promise<void> {
    return this.#run(chatId, async () => {
      const p = await this.#loadedPipe(chatId)
      await this.#drain(chatId, p, seq)
    })
  }

  /** The chat's pipe, with the messages read before a restart loaded (once, on the chat's queue). */
  async #loadedPipe(chatId: string): Promise<ChatPipe> {
    const p = this.#pipe(chatId)
    if (!p.loaded) {
      p.loaded = true
      for (const m of await this.device.loadMessages(chatId))
        if (!p.resolved.has(m.seq)) p.resolved.set(m.seq, m)
    }
    return p
  }

  /** Forgets a chat the user left or was removed from: its group's secrets and what was read in it. */
  async forget(chatId: string): Promise<void> {
    await this.#run(chatId, async () => {
      this.#pipes.delete(chatId)
      await this.device.forgetChat(chatId)
    })
  }

  /** Processes waiting messages in order: each next seq, and every one up to `through`. */
  async #drain(chatId: string, p: ChatPipe, through: number): Promise<void> {
    for (;;) {
      const next = [...p.waiting.keys()]
        .filter((s) => s === p.done + 1 || s <= through)
        .sort((a, b) => a - b)[0]
      if (next === undefined) break
      const { m, live } = p.waiting.get(next) as { m: ChatMessage; live: boolean }
      p.waiting.delete(next)
      // Read before a restart (kept by the storage) and not changed since: its keys are used up,
      // the copy kept is what it said.
      const kept = p.resolved.get(m.seq)
      const readBefore =
        kept?.encrypted &&
        kept.undecryptable === undefined &&
        m.ciphertext !== undefined &&
        m.deletedAt === null
      const out = readBefore ? kept : await this.#process(chatId, m)
      p.done = Math.max(p.done, m.seq)
      p.resolved.set(m.seq, out)
      // What was read is kept where the storage keeps messages: MLS keys are used once.
      if (!readBefore && out.encrypted && out.undecryptable === undefined) await this.device.saveMessage(out)
      this.#host.deliver(out, live)
    }
    if (through > p.done && [...p.waiting.keys()].every((s) => s > through)) p.done = through
  }

  async #process(chatId: string, m: ChatMessage): Promise<ChatMessage> {
    const event = m.event as { type?: string; epoch?: number; commit?: string; added?: string[] } | undefined
    if (m.kind === 'event' && event?.type === 'mls_commit') {
      await this.#onCommit(chatId, m, event as { epoch: number; commit: string; added?: string[] })
      return m
    }
    if (m.kind === 'event' && event?.type === 'mls_device_revoked') {
      const e = m.event as { userId?: unknown; deviceId?: unknown }
      if (typeof e.userId === 'string' && typeof e.deviceId === 'string')
        this.#onRevoked(chatId, `${e.userId}/${e.deviceId}`)
      return m
    }
    if (m.ciphertext === undefined) return m
    const { ciphertext: _, ...rest } = m
    if (m.deletedAt !== null) return { ...rest, encrypted: true }
    if (m.senderId === this.#host.userId && m.deviceId === this.#host.deviceId) {
      const mine = this.#sent.get(m.clientMsgId)
      // Kept from here on as this chat's resolved message.
      this.#sent.delete(m.clientMsgId)
      return mine ? withBody(rest, mine) : opaque(m, 'sent by this device before it restarted')
    }
    const state = this.device.group(chatId)
    if (!state || this.#beforeJoining(m)) return opaque(m, NOT_IN_GROUP)
    try {
      const r = await decrypt(state, fromBase64(m.ciphertext))
      await this.device.setGroup(chatId, r.newState, m.seq)
      const body = parseEncryptedBody(JSON.parse(utf8Decoder.decode(r.plaintext)))
      return typeof body === 'string' ? opaque(m, body) : withBody(rest, body)
    } catch (err) {
      return opaque(m, `cannot decrypt: ${(err as Error).message}`)
    }
  }

  /** Whether the message came before this device was in the chat's group (known for groups joined since StoredGroup.joined). */
  #beforeJoining(m: ChatMessage): boolean {
    const joined = this.device.joinedSeq(m.chatId)
    return joined !== undefined && m.seq < joined
  }

  /**
   * Why a message processed before (seq up to what was processed) is not held: sent before this
   * device joined (the same reason as when it came live), or not kept across a restart.
   */
  #unreadReason(m: ChatMessage): string {
    return this.#beforeJoining(m) || !this.device.group(m.chatId) ? NOT_IN_GROUP : 'before this device joined'
  }

  async #onCommit(chatId: string, m: ChatMessage, e: { epoch: number; commit: string; added?: string[] }) {
    const state = this.device.group(chatId)
    if (!state) {
      if (!e.added?.includes(this.#identity)) return
      try {
        const w = await this.#host.request<{ welcome: string; epoch: number }>('mls.welcome', {
          chatId,
          epoch: e.epoch,
        })
        const joined = await this.device.join(fromBase64(w.welcome))
        await this.device.setGroup(chatId, joined, m.seq, m.seq)
        this.#joinedNow(chatId, joined)
        // A package of this device was just used: the server's stock may be low.
        this.topUp().catch(() => {})
      } catch (err) {
        this.#host.failed(new Error(`joining ${chatId} at epoch ${e.epoch + 1}: ${(err as Error).message}`))
      }
      return
    }
    const epoch = epochOf(state)
    // This device's own Commit, applied when the server accepted it.
    if (e.epoch < epoch) return
    if (e.epoch > epoch) {
      this.#host.failed(
        new Error(`chat ${chatId}: a Commit of epoch ${e.epoch} while this device is at ${epoch}`),
      )
      return
    }
    let next: ClientState
    try {
      next = await applyCommit(state, fromBase64(e.commit))
    } catch (err) {
      this.#host.failed(
        new Error(`chat ${chatId}: the Commit of epoch ${e.epoch} does not apply: ${(err as Error).message}`),
      )
      return
    }
    const stillIn =
      next.groupActiveState.kind !== 'removedFromGroup' &&
      leavesOf(next).some((l) => l.identity === this.#identity && l.leaf === ownLeafOf(next))
    if (!stillIn) {
      // Removed from the group: its secrets go, nothing after this Commit can be read.
      await this.device.dropGroup(chatId)
      return
    }
    await this.device.setGroup(chatId, next, m.seq)
    this.#changes(chatId, leavesOf(state), leavesOf(next), epochOf(next))
    this.#epochReached(chatId, epochOf(next))
  }

  /**
   * Devices revoked (signed out) while in a chat's group, by chat, from `mls_device_revoked`
   * events processed this run: any Commit of this device removes those still in the group.
   */
  readonly #revoked = new Map<string, Set<string>>()

  /**
   * A member's device was revoked (docs/e2ee.md §5): one device commits its Remove at once, the
   * lowest leaf that is neither revoked nor of a user who left (each member's device finds the
   * same one; the DS lets any member remove a revoked device). Others keep it in mind for their
   * next Commit. Called on the chat's queue: the Commit is queued after it, not awaited.
   */
  #onRevoked(chatId: string, identity: string): void {
    const set = this.#revoked.get(chatId) ?? new Set()
    set.add(identity)
    this.#revoked.set(chatId, set)
    const state = this.device.group(chatId)
    if (!state || !leavesOf(state).some((l) => l.identity === identity)) return
    const departed = new Set(this.#departed(chatId, state))
    const first = leavesOf(state).find((l) => !set.has(l.identity) && !departed.has(l.leaf))
    if (first?.identity !== this.#identity) return
    this.#commit(chatId, () => null).catch((err: Error) =>
      this.#host.failed(new Error(`chat ${chatId}: removing revoked ${identity}: ${err.message}`)),
    )
  }

  /** Leaves of devices revoked (as this device heard) that are still in the group. */
  #revokedLeaves(chatId: string, state: ClientState): number[] {
    const set = this.#revoked.get(chatId)
    if (!set) return []
    return leavesOf(state)
      .filter((l) => set.has(l.identity) && l.identity !== this.#identity)
      .map((l) => l.leaf)
  }

  #changes(chatId: string, before: Leaf[], after: Leaf[], epoch: number): void {
    const users = new Set([...before, ...after].map((l) => userOf(l.identity)))
    for (const userId of users) {
      const was = before.filter((l) => userOf(l.identity) === userId).map((l) => deviceOf(l.identity))
      const now = after.filter((l) => userOf(l.identity) === userId).map((l) => deviceOf(l.identity))
      const added = now.filter((d) => !was.includes(d))
      const removed = was.filter((d) => !now.includes(d))
      if (added.length || removed.length)
        this.#host.devicesChanged({ chatId, userId, devices: now.sort(), added, removed, epoch })
    }
  }

  // --- outgoing -----------------------------------------------------------------------------------

  /**
   * The ciphertext (base64 PrivateMessage) of a message this device sends, made once per
   * clientMsgId after what the chat's group has queued. Rejects when the device is in no group.
   */
  async encryptFor(chatId: string, clientMsgId: string, body: EncryptedBody): Promise<string> {
    const made = this.#ciphertexts.get(clientMsgId)
    if (made) return made
    // A chat seen before its Welcome was processed: the message waits for the group.
    if (!this.device.group(chatId)) await this.inGroup(chatId)
    return this.#run(chatId, async () => {
      const again = this.#ciphertexts.get(clientMsgId)
      if (again) return again
      const state = this.device.group(chatId)
      if (!state) throw new Error(`this device is in no group of chat ${chatId} yet`)
      const r = await encrypt(state, utf8Encoder.encode(JSON.stringify(body)))
      await this.device.setGroup(chatId, r.newState, this.#pipe(chatId).done)
      const b64 = toBase64(r.bytes)
      this.#sent.set(clientMsgId, body)
      this.#ciphertexts.set(clientMsgId, b64)
      return b64
    })
  }

  /**
   * Forget what was kept for a message: once the server stored it (its echo was delivered), or
   * when it was refused and is retried (the retry encrypts its content again, in the epoch then).
   */
  forgetCiphertext(clientMsgId: string): void {
    this.#ciphertexts.delete(clientMsgId)
  }

  readonly #joinWaiters = new Map<string, (() => void)[]>()

  /** Resolves once this device is in the chat's group (at once when it is). */
  inGroup(chatId: string): Promise<void> {
    if (this.device.group(chatId)) return Promise.resolve()
    return new Promise((resolve) => {
      const list = this.#joinWaiters.get(chatId) ?? []
      list.push(resolve)
      this.#joinWaiters.set(chatId, list)
    })
  }

  #joinedNow(chatId: string, state: ClientState): void {
    this.#host.joined(chatId, epochOf(state))
    for (const resolve of this.#joinWaiters.get(chatId) ?? []) resolve()
    this.#joinWaiters.delete(chatId)
  }

  // --- Commits ---------------------------------------------------------------------------------

  /**
   * Makes the group of a new encrypted chat (this device is leaf 0) and commits the Adds of every
   * device of the members given (and of this user's other devices), with their Welcome.
   */
  async createGroup(chatId: string, members: string[]): Promise<void> {
    await this.#run(chatId, async () => {
      if (this.device.group(chatId)) return
      const state = await this.device.createGroup(chatId)
      const done = this.#pipe(chatId).done
      await this.device.setGroup(chatId, state, done, done)
      this.#joinedNow(chatId, state)
    })
    await this.add(chatId, [this.#host.userId, ...members.filter((u) => u !== this.#host.userId)])
  }

  /**
   * The MLS group of an encrypted direct chat (docs/e2ee.md §12), for `client.direct(…, {encrypted})`.
   * Either user's device may open it (the DS takes the first Commit of epoch 0): when the server
   * says none did yet, this device makes the group and commits the Adds of both users' devices in
   * one go, right away; losing that race to the other side (stale_epoch) drops the group made
   * here, and the device joins from the winner's Welcome instead. When this device is in the
   * group and the other user has no device in it yet (none had KeyPackages then), their devices
   * are added. Resolves with what happened.
   */
  async openDirect(chatId: string, other: string): Promise<'opened' | 'added' | 'joining' | 'in group'> {
    if (this.device.group(chatId)) {
      const theirs = leavesOf(this.#state(chatId)).some((l) => userOf(l.identity) === other)
      if (theirs) return 'in group'
      return (await this.add(chatId, [other])).length ? 'added' : 'in group'
    }
    const g = await this.#host.request<{ epoch: number }>('mls.group', { chatId })
    if (g.epoch > 0) return 'joining'
    const claimed = await this.#claim([this.#host.userId, other])
    return this.#run(chatId, async () => {
      // Joined from a Welcome while claiming.
      if (this.device.group(chatId)) return 'in group'
      const fresh = await this.device.createGroup(chatId)
      // An opening Commit even with no one to add (the other user has no KeyPackages yet): it
      // takes epoch 0 on the server, so the pair's two sides never both make a group.
      const made = await makeCommit(fresh, { add: claimed })
      try {
        await this.#host.request('mls.commit', {
          chatId,
          commit: toBase64(made.commit),
          ...(made.welcome ? { welcome: toBase64(made.welcome) } : {}),
        })
      } catch (err) {
        // The other side (or another device of this user) opened it first: its Welcome brings this device in.
        if ((err as { code?: string }).code === 'stale_epoch') return 'joining'
        throw err
      }
      const done = this.#pipe(chatId).done
      await this.device.setGroup(chatId, made.newState, done, done)
      this.#joinedNow(chatId, made.newState)
      this.#changes(chatId, leavesOf(fresh), leavesOf(made.newState), epochOf(made.newState))
      this.#epochReached(chatId, epochOf(made.newState))
      return 'opened'
    })
  }

  /**
   * Commits the Adds of every device of these users not in the group yet (claiming their
   * KeyPackages): the devices of new members, and those of members that had no KeyPackage when
   * their user was added (never signed in with MLS then, or a new device). The DS takes Adds from
   * any member's device, of devices of members only (services/mls/commit-service.ts). Each
   * claim takes one package of every device of the user, in the group or not. Resolves with the
   * devices added (`userId/deviceId`): none for a device with no KeyPackage on the server (one
   * without MLS, or that never connected with it; for a user sharing no chat with this one).
   * Rejects as mls.keypackages.claim and mls.commit do (invalid_commit for a user who is not a
   * member of this chat).
   */
  async add(chatId: string, userIds: string[]): Promise<string[]> {
    const inGroup = new Set(leavesOf(this.#state(chatId)).map((l) => l.identity))
    const claimed = await this.#claim(userIds, (id) => !inGroup.has(id))
    if (claimed.length === 0) return []
    let added: string[] = []
    await this.#commit(chatId, (state) => {
      const present = new Set(leavesOf(state).map((l) => l.identity))
      const add = claimed.filter((kp) => !present.has(identityOfKeyPackage(kp) ?? ''))
      added = add.map((kp) => identityOfKeyPackage(kp) ?? '')
      return add.length ? { add } : null
    })
    return added
  }

  /** Commits the Remove of every device of a user (after chat.remove, docs/e2ee.md §3). */
  async removeUser(chatId: string, userId: string): Promise<void> {
    await this.#commit(chatId, (state) => {
      const remove = leavesOf(state)
        .filter((l) => userOf(l.identity) === userId)
        .map((l) => l.leaf)
      return remove.length ? { remove } : null
    })
  }

  /** An empty Commit with an UpdatePath: fresh keys for this device's leaf (post-compromise security). */
  async updateKeys(chatId: string): Promise<void> {
    await this.#commit(chatId, () => ({}))
  }

  /**
   * Adds this user's devices that are not in the group yet (a new device, docs/e2ee.md §6), in
   * every encrypted chat where this device is in the group. Resolves with the chats changed.
   */
  async addOwnDevices(chatIds: string[]): Promise<string[]> {
    const list = await this.#host.request<{ devices: { deviceId: string }[] }>('devices.list')
    const mine = list.devices.map((d) => `${this.#host.userId}/${d.deviceId}`)
    const changed: string[] = []
    for (const chatId of chatIds) {
      const state = this.device.group(chatId)
      if (!state) continue
      const present = new Set(leavesOf(state).map((l) => l.identity))
      const missing = mine.filter((id) => !present.has(id) && !this.#withoutPackages.has(id))
      if (missing.length === 0) continue
      const added = await this.add(chatId, [this.#host.userId])
      // A device with no KeyPackage (no MLS there, or not yet): not claimed for again until the
      // next connect (connected()), since each claim takes a package from every other device of
      // the user.
      for (const id of missing) if (!added.includes(id)) this.#withoutPackages.add(id)
      if (added.length) changed.push(chatId)
    }
    return changed
  }

  /**
   * This user's devices a claim found without KeyPackages since the last connect (addOwnDevices
   * skips them): one claim per such device per connect at most.
   */
  readonly #withoutPackages = new Set<string>()

  /**
   * A connection was made: the devices found without KeyPackages are looked for again (one may
   * have signed in with MLS since, in another browser or app).
   */
  connected(): void {
    this.#withoutPackages.clear()
  }

  /** Leaves of users no longer in the chat's member list (none while it is not known). */
  #departed(chatId: string, state: ClientState): number[] {
    const members = this.#host.members(chatId)
    if (!members) return []
    return leavesOf(state)
      .filter((l) => !members.includes(userOf(l.identity)))
      .map((l) => l.leaf)
  }

  /**
   * After a member_left event: the Removes of the devices of users no longer in the chat, so they
   * stop holding the epoch's keys (docs/e2ee.md §3), committed by one device only: the admins'
   * device with the lowest leaf index (each member's device finds the same one). When it is
   * offline, the next Commit by anyone takes them along.
   */
  async removeDeparted(chatId: string, admins: string[]): Promise<void> {
    const state = this.device.group(chatId)
    if (!state) return
    const first = leavesOf(state).find((l) => admins.includes(userOf(l.identity)))
    if (first?.identity !== this.#identity) return
    await this.#commit(chatId, () => null)
  }

  #state(chatId: string): ClientState {
    const state = this.device.group(chatId)
    if (!state) throw new Error(`this device is in no group of chat ${chatId}`)
    return state
  }

  /**
   * One Commit: built on the group's current state, sent (mls.commit), applied once accepted. A
   * stale_epoch refusal (another Commit won the epoch) catches up with sync and builds it again
   * on top, up to COMMIT_TRIES times; `build` answering null means nothing is left to commit.
   */
  async #commit(
    chatId: string,
    build: (state: ClientState) => { add?: KeyPackage[]; remove?: number[] } | null,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.#run(chatId, async () => {
        const state = this.#state(chatId)
        const built = build(state)
        // Devices of users who left or were removed go with any Commit (the server requires it),
        // and revoked devices (the server allows it).
        const departed = this.#departed(chatId, state).filter((l) => !built?.remove?.includes(l))
        const revoked = this.#revokedLeaves(chatId, state).filter(
          (l) => !built?.remove?.includes(l) && !departed.includes(l),
        )
        if (!built && departed.length === 0 && revoked.length === 0) return { kind: 'nothing' as const }
        const change = { ...built, remove: [...(built?.remove ?? []), ...departed, ...revoked] }
        const made = await makeCommit(state, change)
        try {
          await this.#host.request('mls.commit', {
            chatId,
            commit: toBase64(made.commit),
            ...(made.welcome ? { welcome: toBase64(made.welcome) } : {}),
          })
        } catch (err) {
          const e = err as { code?: string; epoch?: number }
          if (e.code === 'stale_epoch') return { kind: 'stale' as const, epoch: e.epoch }
          // A device revoked then signed in again under its id is no longer removable by others:
          // forget what was heard and commit without it.
          if (e.code === 'not_allowed' && revoked.length) {
            this.#revoked.delete(chatId)
            return { kind: 'again' as const }
          }
          throw err
        }
        await this.device.setGroup(chatId, made.newState, this.#pipe(chatId).done)
        this.#changes(chatId, leavesOf(state), leavesOf(made.newState), epochOf(made.newState))
        this.#epochReached(chatId, epochOf(made.newState))
        return { kind: 'done' as const }
      })
      if (outcome.kind !== 'stale' && outcome.kind !== 'again') return
      if (attempt >= COMMIT_TRIES)
        throw new Error(`chat ${chatId}: the Commit was refused as stale ${attempt} times`)
      if (outcome.kind === 'stale') await this.#catchUp(chatId, outcome.epoch)
    }
  }

  /**
   * After a stale_epoch: the Commits missed, by sync, until the group is at the chat's `epoch`. The
   * winning Commit may be recorded and not yet in the chat (the DS appends it right after: §3), so
   * when sync brings nothing the device waits for it to arrive live (at most CATCH_UP_WAIT_MS,
   * then the next try finds out again).
   */
  async #catchUp(chatId: string, epoch: number | undefined): Promise<void> {
    await this.#host.sync(chatId)
    if (epoch === undefined || epochOf(this.#state(chatId)) >= epoch) return
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      this.#untilEpoch(chatId, epoch),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CATCH_UP_WAIT_MS)
      }),
    ])
    clearTimeout(timer)
  }

  readonly #epochWaiters = new Map<string, { epoch: number; resolve: () => void }[]>()

  /** Resolves once this device's group of the chat is at `epoch` or later. */
  #untilEpoch(chatId: string, epoch: number): Promise<void> {
    const state = this.device.group(chatId)
    if (state && epochOf(state) >= epoch) return Promise.resolve()
    return new Promise((resolve) => {
      const list = this.#epochWaiters.get(chatId) ?? []
      list.push({ epoch, resolve })
      this.#epochWaiters.set(chatId, list)
    })
  }

  /** The group moved to `epoch`: those waiting for it go on. */
  #epochReached(chatId: string, epoch: number): void {
    const list = this.#epochWaiters.get(chatId)
    if (!list) return
    const still = list.filter((w) => {
      if (w.epoch > epoch) return true
      w.resolve()
      return false
    })
    if (still.length) this.#epochWaiters.set(chatId, still)
    else this.#epochWaiters.delete(chatId)
  }

  // --- safety numbers ------------------------------------------------------------------------------

  /** A member user's devices in the group: device id and credential signature key. */
  devicesOf(chatId: string, userId: string): { deviceId: string; signaturePublicKey: Uint8Array }[] {
    const state = this.device.group(chatId)
    if (!state) return []
    return leavesOf(state)
      .filter((l) => userOf(l.identity) === userId)
      .map((l) => ({ deviceId: deviceOf(l.identity), signaturePublicKey: l.signaturePublicKey }))
  }

  /**
   * The safety number of this user and `userId` in a chat (docs/e2ee.md §9): from both users'
   * devices in the group, so both see the same one. `deviceId` narrows it to one device of theirs.
   */
  async safetyNumber(chatId: string, userId: string, deviceId?: string): Promise<string> {
    const state = this.#state(chatId)
    const devices = leavesOf(state).filter(
      (l) =>
        userOf(l.identity) === this.#host.userId ||
        (userOf(l.identity) === userId && (deviceId === undefined || deviceOf(l.identity) === deviceId)),
    )
    if (!devices.some((l) => userOf(l.identity) === userId))
      throw new Error(`${userId}${deviceId ? `/${deviceId}` : ''} has no device in chat ${chatId}'s group`)
    return safetyNumber(devices)
  }
}

/**
 * The `undecryptable` of a message sent before this device was in the chat's group, live or read
 * again after a restart (apps tell it apart from other reasons: the web chat folds such messages).
 */
export const NOT_IN_GROUP = 'this device is not in the group'

/** An encrypted chat's message as delivered when it cannot be read on this device. */
function opaque(m: ChatMessage, why: string): ChatMessage {
  const { ciphertext: _, ...rest } = m
  return m.ciphertext === undefined ? m : { ...rest, text: null, encrypted: true, undecryptable: why }
}

function withBody(m: ChatMessage, body: EncryptedBody): ChatMessage {
  return {
    ...m,
    text: typeof body.text === 'string' ? body.text : null,
    ...mediaOf(body),
    ...(typeof body.replyTo === 'number' ? { replyTo: body.replyTo } : {}),
    encrypted: true,
  }
}

/**
 * The media of a checked body (parseEncryptedBody): `media` the ids (as in a plaintext chat's
 * message) and `encryptedMedia` their descriptors (v1 bodies). A body without `v` named bare ids.
 */
function mediaOf(body: EncryptedBody): Pick<ChatMessage, 'media' | 'encryptedMedia'> {
  if (body.media === undefined) return {}
  if (body.v === undefined) return { media: body.media as string[] }
  const encryptedMedia = body.media as EncryptedMedia[]
  return { media: encryptedMedia.map((d) => d.id), encryptedMedia }
}
