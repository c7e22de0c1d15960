import type { Logger } from 'pino'
import { isDirectChat } from '../chats/chat-ids.ts'
import type { ChatStore } from '../chats/chat-store.ts'
import { isEncryptedChat } from '../chats/encrypted-chats.ts'
import type { MembershipIndex } from '../chats/membership-index.ts'
import type { InboxSink } from '../messages/message-service.ts'
import type { MessageStore, StoredMessage } from '../messages/message-store.ts'
import { NatterError } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestContext, RequestRouter } from '../requests/router.ts'
import type { AcceptedCommit, CommitStore } from './commit-store.ts'
import type { KeyPackageStore } from './key-package-store.ts'
import { applyCommit, type LeafMap } from './leaf-map.ts'
import {
  CIPHER_SUITE,
  checkWelcome,
  keyPackageRef,
  leafIdentity,
  MlsProblem,
  type ReadCommit,
  readCommit,
} from './mls-codec.ts'

/** The client message id of a chat's Commit of `epoch`: a second append of it (a repair) stores nothing new. */
const commitMessageId = (epoch: number) => `mls-commit:${epoch}`

const invalid = (message: string) => new NatterError('invalid_commit', message)

/**
 * Commit ordering for encrypted chats (docs/e2ee.md#3-commit-ordering-built): the first valid
 * Commit for a chat's current epoch is accepted, recorded for its epoch (services/mls/commit-store.ts,
 * whose unique key makes it the only one, on every node), stored in the chat with the next seq
 * as a `mls_commit` event and fanned out to every member device; any other is refused, a stale
 * one with the current epoch so the client rebases.
 */
export class CommitService {
  readonly #commits: CommitStore
  readonly #messages: MessageStore
  readonly #chats: Pick<ChatStore, 'getChat'>
  readonly #index: Pick<MembershipIndex, 'isMember' | 'role' | 'chatsOf'>
  readonly #revoked: (userId: string, deviceId: string, fromStore: boolean) => Promise<boolean>
  readonly #inbox: Pick<InboxSink, 'message'>
  readonly #keyPackages: Pick<KeyPackageStore, 'uploaded'>
  readonly #ops: Operations
  readonly #log: Logger

  constructor(d: {
    commits: CommitStore
    messages: MessageStore
    chats: Pick<ChatStore, 'getChat'>
    index: Pick<MembershipIndex, 'isMember' | 'role' | 'chatsOf'>
    /**
     * Whether a device is revoked for good (device.revoke, and not signed in again since): any
     * member's device may then remove its leaf. `fromStore`: when this node has not heard of a
     * revocation, the store is asked too (a Remove just after a revoke on another node). Absent: none is.
     */
    revoked?: (userId: string, deviceId: string, fromStore: boolean) => Promise<boolean>
    /** Where stored messages go to every member device, on every node. */
    inbox: Pick<InboxSink, 'message'>
    /** The KeyPackage directory: an Add carries a package its device uploaded. */
    keyPackages: Pick<KeyPackageStore, 'uploaded'>
    ops: Operations
    log: Logger
  }) {
    this.#keyPackages = d.keyPackages
    this.#commits = d.commits
    this.#messages = d.messages
    this.#chats = d.chats
    this.#index = d.index
    this.#revoked = d.revoked ?? (async () => false)
    this.#inbox = d.inbox
    this.#ops = d.ops
    this.#log = d.log
  }

  register(router: RequestRouter): void {
    router.register('mls.commit', {
      params: this.#ops['mls.commit'].params,
      handle: (ctx, p) =>
        this.commit(
          ctx,
          p.chatId,
          bytesOf(p.commit),
          p.welcome === undefined ? undefined : bytesOf(p.welcome),
        ),
    })
    router.register('mls.group', {
      params: this.#ops['mls.group'].params,
      handle: (ctx, p) => this.group(ctx, p.chatId),
    })
    router.register('mls.welcome', {
      params: this.#ops['mls.welcome'].params,
      handle: (ctx, p) => this.welcome(ctx, p.chatId, p.epoch),
    })
  }

  /**
   * Accepts or refuses one Commit (MLSMessage bytes) from the calling device, with the Welcome
   * (MLSMessage bytes) for the devices it adds, which those devices fetch with mls.welcome.
   *
   * @returns the Commit's seq in the chat and the epoch it starts
   * @throws NatterError not_allowed from a caller without an MQTT connection, for a first
   *   Commit (epoch 0) from someone other than the chat's creator (in a direct chat, either
   *   user opens it), in a chat that is not encrypted, or for a Remove of another member's device
   *   that is not revoked by one who is not an admin (in a direct chat: by the other user); chat_not_found when the caller
   *   is not a member; invalid_commit when the bytes are not a PublicMessage Commit of the chat's
   *   group from the caller's leaf with proposals the Delivery Service accepts, whose UpdatePath
   *   gives the caller's leaf another identity, that adds a KeyPackage its device did not upload
   *   (services/mls/key-package-store.ts uploaded), that leaves a
   *   device of a user who is no longer a member in the group, or when the Welcome
   *   is missing, extra or not for the KeyPackages added (the message says which); stale_epoch,
   *   with `epoch` the current one, for a Commit of any other epoch
   */
  async commit(
    ctx: RequestContext,
    chatId: string,
    bytes: Uint8Array,
    welcome?: Uint8Array,
  ): Promise<{ seq: number; epoch: number }> {
    const { userId, deviceId } = ctx.who
    if (!ctx.connected)
      throw new NatterError(
        'not_allowed',
        'a Commit comes from an MLS device: send it over its MQTT connection',
      )
    if (!this.#index.isMember(chatId, userId))
      throw new NatterError('chat_not_found', `no chat ${chatId}, or you are not a member`)
    if (!isEncryptedChat(chatId))
      throw new NatterError(
        'not_allowed',
        `chat ${chatId} is not encrypted: MLS Commits go to chats created with encrypted: true`,
      )
    let read: ReadCommit
    try {
      read = readCommit(bytes)
    } catch (err) {
      if (err instanceof MlsProblem) throw invalid(err.message)
      throw err
    }
    if (Buffer.compare(Buffer.from(read.groupId), Buffer.from(chatId, 'utf8')) !== 0)
      throw invalid(`its group is not this chat's (the group id of a chat's group is the chat id)`)
    const latest = await this.#settle(await this.#commits.latest(chatId))
    const current = latest ? latest.epoch + 1 : 0
    if (read.epoch !== current) throw stale(current, read.epoch)
    const identity = leafIdentity(userId, deviceId)
    let leaves: LeafMap
    if (latest) leaves = latest.leaves
    else {
      // Epoch 0: the group of one its creator made (RFC 9420 §11), at leaf 0. A direct chat
      // has no creator in charge: either user's device opens it, and when both try at once the
      // one epoch-0 record settles it like any race (the loser gets stale_epoch).
      const chat = await this.#chats.getChat(chatId)
      if (chat?.createdBy !== userId && chat?.kind !== 'direct')
        throw new NatterError('not_allowed', `the group of chat ${chatId} is opened by its creator`)
      leaves = [identity]
    }
    const change = await this.#change(chatId, read, leaves, identity)
    let next: ReturnType<typeof applyCommit>
    try {
      next = applyCommit(leaves, change)
    } catch (err) {
      if (err instanceof RangeError) throw invalid(`a Remove of ${err.message}`)
      throw err
    }
    // Every Add's KeyPackageRef (RFC 9420 §5.2), once: the Welcome names them, the directory knows them.
    const adds = await Promise.all(
      read.proposals.flatMap((p) =>
        p.type === 'add' ? [keyPackageRef(p.keyPackage).then((ref) => ({ identity: p.identity, ref }))] : [],
      ),
    )
    this.#checkWelcome(adds, welcome)
    await this.#checkUploaded(adds)
    const departed = this.#departed(chatId, next.leaves)
    if (departed.length)
      throw invalid(
        `it leaves devices of users who are no longer members in the group: remove ${departed
          .map((d) => `${d.identity} (leaf ${d.leaf})`)
          .join(', ')}`,
      )
    const record: AcceptedCommit = {
      chatId,
      epoch: current,
      senderId: userId,
      deviceId,
      leaves: next.leaves,
      bytes,
      added: next.added.map((a) => a.identity),
      welcome: welcome ?? null,
      at: Date.now(),
      seq: null,
    }
    if (!(await this.#commits.insert(record))) {
      // Another Commit of this epoch got in first (on this node or another).
      const now = await this.#commits.latest(chatId)
      throw stale(now ? now.epoch + 1 : 0, read.epoch)
    }
    const message = await this.#append(record)
    this.#log.info({
      event: 'mls_commit_accepted',
      chatId,
      userId,
      deviceId,
      epoch: current,
      seq: message.seq,
      added: next.added.length,
      removed: next.removed.length,
      bytes: bytes.length,
    })
    return { seq: message.seq, epoch: current + 1 }
  }

  /** The leaves whose user is no longer a member of the chat (left or removed): for the next Commit to remove. */
  #departed(chatId: string, leaves: LeafMap): { leaf: number; identity: string }[] {
    return leaves.flatMap((identity, leaf) =>
      identity && !this.#index.isMember(chatId, identity.slice(0, identity.indexOf('/')))
        ? [{ leaf, identity }]
        : [],
    )
  }

  /**
   * The chat's group as the Delivery Service keeps it: the epoch the next Commit is for, every
   * device's leaf, the leaves of users no longer members, which that Commit must remove, and the
   * leaves of revoked devices (`revoked`), which any member's device may remove.
   *
   * @throws NatterError chat_not_found when the caller is not a member
   */
  async group(
    ctx: RequestContext,
    chatId: string,
  ): Promise<{
    epoch: number
    leaves: { leaf: number; userId: string; deviceId: string }[]
    departed: number[]
    revoked: number[]
  }> {
    if (!this.#index.isMember(chatId, ctx.who.userId))
      throw new NatterError('chat_not_found', `no chat ${chatId}, or you are not a member`)
    const latest = await this.#settle(await this.#commits.latest(chatId))
    const leaves = latest?.leaves ?? []
    return {
      epoch: latest ? latest.epoch + 1 : 0,
      leaves: leaves.flatMap((identity, leaf) => {
        if (!identity) return []
        const slash = identity.indexOf('/')
        return [{ leaf, userId: identity.slice(0, slash), deviceId: identity.slice(slash + 1) }]
      }),
      departed: this.#departed(chatId, leaves).map((d) => d.leaf),
      revoked: (await this.#revokedLeaves(chatId, leaves)).map((d) => d.leaf),
    }
  }

  /** The leaves of devices revoked for good (their user still a member): any member's device may remove them. */
  async #revokedLeaves(chatId: string, leaves: LeafMap): Promise<{ leaf: number; identity: string }[]> {
    const out: { leaf: number; identity: string }[] = []
    for (const [leaf, identity] of leaves.entries()) {
      if (!identity) continue
      const slash = identity.indexOf('/')
      const user = identity.slice(0, slash)
      if (this.#index.isMember(chatId, user) && (await this.#revoked(user, identity.slice(slash + 1), false)))
        out.push({ leaf, identity })
    }
    return out
  }

  /**
   * A user's devices were revoked (device.revoke: one device, or every one but `except`): in each
   * of the user's encrypted chats whose group holds one of them, an `mls_device_revoked` event
   * `{userId, deviceId}` is appended and fanned out, so that one member's device commits its
   * Remove at once and devices offline catch up on it (docs/e2ee.md §5). `by` is the revoking
   * device. Resolves with how many events were appended.
   */
  async devicesRevoked(
    userId: string,
    which: { deviceId: string } | { except: string },
    by: string,
    revokedAt: number,
  ): Promise<number> {
    let appended = 0
    for (const chatId of this.#index.chatsOf(userId)) {
      if (!isEncryptedChat(chatId)) continue
      const latest = await this.#settle(await this.#commits.latest(chatId))
      for (const identity of latest?.leaves ?? []) {
        if (!identity || identity.slice(0, identity.indexOf('/')) !== userId) continue
        const deviceId = identity.slice(identity.indexOf('/') + 1)
        if ('deviceId' in which ? deviceId !== which.deviceId : deviceId === which.except) continue
        const { message, duplicate } = await this.#messages.append({
          chatId,
          senderId: userId,
          deviceId: by,
          // One event per revoke of a device in a chat, also when the call is repeated.
          clientMsgId: `mls-revoked:${deviceId}:${revokedAt}`,
          kind: 'event',
          text: null,
          body: { event: { type: 'mls_device_revoked', userId, deviceId } },
        })
        if (duplicate) continue
        this.#inbox.message(message)
        appended++
        this.#log.info({ event: 'mls_device_revoked', chatId, userId, deviceId, seq: message.seq })
      }
    }
    return appended
  }

  /**
   * Every Add carries a KeyPackage its device uploaded (docs/e2ee.md §1): the directory checked
   * then that its credential is that device, so no member can add a device it made up for
   * another user, or for its own, holding that leaf's keys itself.
   */
  async #checkUploaded(adds: { identity: string | null; ref: string }[]): Promise<void> {
    for (const { identity, ref } of adds) {
      // #change refused an Add whose credential is no device.
      if (!identity) continue
      const slash = identity.indexOf('/')
      if (!(await this.#keyPackages.uploaded(identity.slice(0, slash), identity.slice(slash + 1), ref)))
        throw invalid(
          `an Add of ${identity} with a KeyPackage that device did not upload: claim its packages with mls.keypackages.claim`,
        )
    }
  }

  /** A Commit that adds devices comes with their Welcome, and only such a Commit. */
  #checkWelcome(adds: { ref: string }[], welcome: Uint8Array | undefined): void {
    if (adds.length === 0) {
      if (welcome) throw invalid('a Welcome with a Commit that adds no one')
      return
    }
    if (!welcome) throw invalid('a Commit that adds devices comes with their Welcome')
    try {
      checkWelcome(
        welcome,
        adds.map((a) => a.ref),
      )
    } catch (err) {
      if (err instanceof MlsProblem) throw invalid(err.message)
      throw err
    }
  }

  /**
   * The Welcome of the Commit made in `epoch`, for a device it added, and the seq of that Commit:
   * the device reads the chat's messages after it.
   *
   * @throws NatterError chat_not_found when the caller is not a member; not_found when that
   *   Commit added no device of the caller's identity
   */
  async welcome(
    ctx: RequestContext,
    chatId: string,
    epoch: number,
  ): Promise<{ welcome: string; epoch: number; seq: number }> {
    const { userId, deviceId } = ctx.who
    if (!this.#index.isMember(chatId, userId))
      throw new NatterError('chat_not_found', `no chat ${chatId}, or you are not a member`)
    const c = await this.#settle(await this.#commits.get(chatId, epoch))
    if (!c?.welcome || c.seq === null || !c.added.includes(leafIdentity(userId, deviceId)))
      throw new NatterError('not_found', `no Welcome for this device in epoch ${epoch} of chat ${chatId}`)
    return { welcome: Buffer.from(c.welcome).toString('base64'), epoch: epoch + 1, seq: c.seq }
  }

  /** The Removes and Adds of the Commit, after the checks on its sender and proposals. */
  async #change(chatId: string, read: ReadCommit, leaves: LeafMap, identity: string) {
    if (read.senderLeaf === null)
      throw invalid(
        'not from a member: a new device is added by a member’s device, not by an external commit',
      )
    if (leaves[read.senderLeaf] !== identity)
      throw invalid(`its sender is leaf ${read.senderLeaf}, which is not this device (${identity})`)
    // The UpdatePath's leaf node replaces the sender's, credential and all (RFC 9420 §12.4.1;
    // §5.3.1 leaves what a credential may become to the application): here it stays the device.
    if (read.pathIdentity !== undefined && read.pathIdentity !== identity)
      throw invalid(
        `its UpdatePath's leaf is ${JSON.stringify(read.pathIdentity)}, not its sender (${identity})`,
      )
    const removes: number[] = []
    const adds: string[] = []
    for (const p of read.proposals) {
      if (p.type === 'other') throw invalid(`a ${p.proposalType} proposal: only add and remove are accepted`)
      if (p.type === 'remove') {
        if (p.leaf === read.senderLeaf) throw invalid('it removes its own sender (RFC 9420 §12.2)')
        await this.#mayRemove(chatId, leaves[p.leaf], identity)
        removes.push(p.leaf)
        continue
      }
      if (p.cipherSuite !== CIPHER_SUITE) throw invalid(`an Add of cipher suite ${p.cipherSuite}`)
      const slash = p.identity?.indexOf('/') ?? -1
      const user = p.identity?.slice(0, slash)
      if (!p.identity || slash < 0 || !user)
        throw invalid('an Add whose credential is not a device (userId/deviceId)')
      if (!this.#index.isMember(chatId, user))
        throw invalid(`an Add of ${p.identity}, whose user is not a member`)
      if (leaves.includes(p.identity) || adds.includes(p.identity))
        throw invalid(`an Add of ${p.identity}, which is in the group already`)
      adds.push(p.identity)
    }
    return { removes, adds }
  }

  /**
   * Who may remove a leaf (docs/e2ee.md): a device of its own user, anyone once its user left the
   * chat (the group catches up with the membership) or once that device was revoked for good
   * (its user signed it out), and the chat's admins. A blank or missing leaf is left to applyCommit.
   */
  async #mayRemove(chatId: string, target: string | null | undefined, committer: string): Promise<void> {
    if (!target) return
    const user = target.slice(0, target.indexOf('/'))
    const me = committer.slice(0, committer.indexOf('/'))
    if (user === me || !this.#index.isMember(chatId, user) || this.#index.role(chatId, me) === 'admin') return
    if (await this.#revoked(user, target.slice(target.indexOf('/') + 1), true)) return
    // A direct chat has no admins (both are members): each user removes only their own devices.
    throw new NatterError(
      'not_allowed',
      isDirectChat(chatId)
        ? `a Remove of ${target}: in a direct chat each user removes only their own devices, and the other's revoked ones`
        : `a Remove of ${target}: only admins remove another member's devices while they are in the chat and not revoked`,
    )
  }

  /**
   * The chat's latest Commit, appended to the chat first if it is not yet: its node stopped
   * between recording and appending it, or is doing it now (the append is idempotent).
   */
  async #settle(latest: AcceptedCommit | null): Promise<AcceptedCommit | null> {
    if (!latest || latest.seq !== null) return latest
    const m = await this.#append(latest)
    return { ...latest, seq: m.seq }
  }

  async #append(c: AcceptedCommit): Promise<StoredMessage> {
    const { message } = await this.#messages.append({
      chatId: c.chatId,
      senderId: c.senderId,
      deviceId: c.deviceId,
      clientMsgId: commitMessageId(c.epoch),
      kind: 'event',
      text: null,
      body: {
        event: {
          type: 'mls_commit',
          epoch: c.epoch,
          commit: Buffer.from(c.bytes).toString('base64'),
          // The devices added fetch their Welcome with mls.welcome.
          ...(c.added.length ? { added: c.added } : {}),
        },
      },
    })
    await this.#commits.setSeq(c.chatId, c.epoch, message.seq)
    // Again on a repair too: devices that have it skip it (their feed is past its seq).
    this.#inbox.message(message)
    return message
  }
}

const bytesOf = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'))

function stale(current: number, theirs: number): NatterError {
  return new NatterError(
    'stale_epoch',
    `the Commit is for epoch ${theirs}; the chat is at epoch ${current}: process the Commits you have not seen, then commit again`,
    undefined,
    { epoch: current },
  )
}
