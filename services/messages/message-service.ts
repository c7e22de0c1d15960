import type { Logger } from 'pino'
import type { DeviceIdentity } from '../auth/identity.ts'
import { hiddenFrom, visibleTo } from '../blocks/hidden.ts'
import { isDirectChat } from '../chats/chat-ids.ts'
import type { ChatStore } from '../chats/chat-store.ts'
import { isEncryptedChat } from '../chats/encrypted-chats.ts'
import type { MembershipIndex } from '../chats/membership-index.ts'
import type { DeviceCursor } from '../delivery/delivery-store.ts'
import type { Telemetry } from '../metrics/metrics.ts'
import { checkApplicationMessage, MlsProblem } from '../mls/mls-codec.ts'
import { type ErrorNotice, NatterError, type OperationErrorCode } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestRouter } from '../requests/router.ts'
import { checkCharacters, describeCharacterProblem } from '../text/graphemes.ts'
import { toEvent } from './events.ts'
import type { MessageStore, StoredMessage } from './message-store.ts'
import type { UndeliveredTracker } from './undelivered-tracker.ts'
import { type ReceiptEvent, type SendPayload, sendSchema } from './wire.ts'

const CURSOR_BATCH_MS = 50
/** Cursors remembered per chat and user (the least recently written go first). */
const KNOWN_CURSORS = 100_000

export interface MessageLimits {
  maxTextChars: number
}

/** Checks and records the media a message carries (services/media/media-service.ts). */
export interface MediaAttacher {
  /** The first media id the sender may not send in the chat, or null when all are recorded as sent there. */
  attach(userId: string, chatId: string, mediaIds: string[], at: number): Promise<string | null>
}

/**
 * Where inbox events go: to every member device, from the message store (the store is the
 * queue, services/delivery/inbox-delivery.ts), on this node and every other.
 */
export interface InboxSink {
  /** A stored message (or membership event) for every member, and for `alsoTo` who just left. */
  message(m: StoredMessage, alsoTo?: string[]): void
  /**
   * A send retried by device `clientId` that the store already had: fanned out again (its first
   * fan-out may not have happened), and the device that retried is answered with the stored
   * message, DUP=1, if its feed is past it.
   */
  retried(m: StoredMessage, clientId: string): void
  /** An edit or delete of a stored message, for the members' devices that have it. */
  update(m: StoredMessage, type: 'edit' | 'delete'): void
  /** A receipt for the senders it concerns. */
  receipt(e: ReceiptEvent, to: string[]): void
  /**
   * The distinct senders of a chat's messages after `fromSeq` up to `toSeq`, when the sink
   * holds them all (recent messages); null when the store must be asked.
   */
  recentSenders?(chatId: string, fromSeq: number, toSeq: number): string[] | null
}

/** Told of every new message once it is fanned out (push notifications). */
export interface MessageListener {
  onMessage(m: StoredMessage): unknown
}

export type SendOutcome =
  | { ok: true; message: StoredMessage; duplicate: boolean }
  | { ok: false; notice: ErrorNotice }

/** A send after parsing: stored (or found stored, `duplicate`), or refused with a code. */
type Accepted =
  | { ok: true; message: StoredMessage; duplicate: boolean }
  | { ok: false; code: OperationErrorCode; message: string }

/** The `type` of an event message (chat_created, members_added…), for error messages. */
const eventType = (m: StoredMessage) =>
  String((m.body as { event?: { type?: unknown } }).event?.type ?? 'event')

/**
 * The send path and everything about messages once sent: history, sync, read and delivered
 * receipts, edits, deletes and search.
 */
export class MessageService {
  readonly #chats: ChatStore
  readonly #messages: MessageStore
  readonly #index: MembershipIndex
  readonly #inbox: InboxSink
  readonly #deviceCursors: ((chatId: string) => Promise<DeviceCursor[]>) | undefined
  readonly #log: Logger
  readonly #telemetry: Telemetry
  readonly #undelivered: UndeliveredTracker
  readonly #isOnline: (userId: string) => boolean
  readonly #media: MediaAttacher | undefined
  readonly #push: MessageListener | undefined
  readonly #limits: MessageLimits
  readonly #ops: Operations
  readonly #track: <T>(work: Promise<T>) => Promise<T>
  readonly #blocks: { blocks(blockerId: string, blockedId: string): boolean } | undefined
  /** Cursor moves gathered for the next flush, by chat and user; 0 where a kind did not move. */
  readonly #pendingCursors = new Map<string, Map<string, { delivered: number; read: number }>>()
  #cursorTimer: NodeJS.Timeout | undefined
  #flushing: Promise<void> = Promise.resolve()
  #closed = false
  /** Highest delivered seq seen per chat and user, so most delivery acks cost no store write. */
  readonly #delivered = new Map<string, Map<string, number>>()
  /**
   * Cursors as this node last wrote or read them, per chat, user and membership. Only ever behind the
   * store (cursors move forward only, and other nodes may move them), so a receipt computed
   * from one may name a sender twice, never miss one.
   */
  readonly #knownCursors = new Map<string, { deliveredSeq: number; readSeq: number }>()

  constructor(d: {
    chats: ChatStore
    messages: MessageStore
    index: MembershipIndex
    inbox: InboxSink
    /** Every device's delivered cursor of a chat, for `receipts`. */
    deviceCursors?: (chatId: string) => Promise<DeviceCursor[]>
    limits: MessageLimits
    ops: Operations
    log: Logger
    telemetry: Telemetry
    undelivered: UndeliveredTracker
    isOnline: (userId: string) => boolean
    media?: MediaAttacher
    push?: MessageListener
    /** Sends of the `send` operation under way, so that a stopping node lets them finish. */
    track?: <T>(work: Promise<T>) => Promise<T>
    /** Who blocks whom (services/blocks/): hides a blocked user's direct messages from the blocker. */
    blocks?: { blocks(blockerId: string, blockedId: string): boolean }
  }) {
    this.#blocks = d.blocks
    this.#track = d.track ?? ((work) => work)
    this.#media = d.media
    this.#push = d.push
    this.#telemetry = d.telemetry
    this.#undelivered = d.undelivered
    this.#isOnline = d.isOnline
    this.#ops = d.ops
    this.#log = d.log
    this.#chats = d.chats
    this.#messages = d.messages
    this.#index = d.index
    this.#inbox = d.inbox
    this.#deviceCursors = d.deviceCursors
    this.#limits = d.limits
  }

  /**
   * Validates, stores (durably) and fans out one message published to c/<chatId>/send. Resolves
   * once the store has it; the caller acknowledges the PUBLISH only then. Refusals come back as a
   * notice for d/<clientId>/err naming the clientMsgId, never a throw.
   */
  async send(who: DeviceIdentity, chatId: string, payload: Buffer): Promise<SendOutcome> {
    const topic = `c/${chatId}/send`
    let json: unknown
    try {
      json = JSON.parse(payload.toString('utf8'))
    } catch {
      return { ok: false, notice: { topic, code: 'bad_request', message: 'payload is not JSON' } }
    }
    const ref =
      typeof (json as { clientMsgId?: unknown })?.clientMsgId === 'string'
        ? (json as { clientMsgId: string }).clientMsgId
        : undefined
    const parsed = sendSchema.safeParse(json)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      return {
        ok: false,
        notice: {
          topic,
          code: 'bad_request',
          message: `${issue?.path.join('.') || 'payload'}: ${issue?.message ?? 'invalid'}`,
          ...(ref ? { ref } : {}),
        },
      }
    }
    const outcome = await this.#accept(who, chatId, parsed.data)
    if (outcome.ok) return outcome
    return {
      ok: false,
      notice: { topic, code: outcome.code, message: outcome.message, ...(ref ? { ref } : {}) },
    }
  }

  /**
   * The send path once the payload is parsed, the one for c/<chatId>/send and the `send`
   * operation (MQTT req/send, HTTP POST /v1/send): membership, text, reply and media checks, the
   * durable append (de-duplicated by the sender's clientMsgId in the chat), fan-out, push, and
   * the sender's own read cursor. Refusals come back as a code and a message.
   */
  async #accept(who: DeviceIdentity, chatId: string, p: SendPayload): Promise<Accepted> {
    const refusal = (code: OperationErrorCode, message: string): Accepted => ({ ok: false, code, message })
    if (!this.#index.isMember(chatId, who.userId)) {
      return refusal('chat_not_found', `no chat ${chatId}, or you are not a member`)
    }
    // The server never holds an encrypted chat's text: its messages are MLS ciphertext (docs/e2ee.md).
    const encrypted = isEncryptedChat(chatId)
    if (encrypted && (p.text !== undefined || p.replyTo !== undefined))
      return refusal(
        'not_allowed',
        `chat ${chatId} is end-to-end encrypted: it takes MLS ciphertext, not text (a reply goes inside it)`,
      )
    if (encrypted && p.ciphertext === undefined)
      return refusal('bad_request', `chat ${chatId} is end-to-end encrypted: a message needs its ciphertext`)
    if (!encrypted && p.ciphertext !== undefined)
      return refusal(
        'not_allowed',
        `chat ${chatId} is not encrypted: ciphertext goes to encrypted chats only`,
      )
    if (p.ciphertext !== undefined) {
      try {
        checkApplicationMessage(new Uint8Array(Buffer.from(p.ciphertext, 'base64')), chatId)
      } catch (err) {
        if (err instanceof MlsProblem) return refusal('bad_request', `ciphertext: ${err.message}`)
        throw err
      }
    }
    // A direct chat with a block (docs/protocol.md#blocking): the blocker is told to unblock
    // first; the blocked user's message is stored as usual, hidden from the blocker, and they
    // are told nothing.
    let hideFrom: string | undefined
    if (this.#blocks && isDirectChat(chatId)) {
      const other = this.#index.members(chatId).find((u) => u !== who.userId)
      if (other !== undefined && this.#blocks.blocks(who.userId, other))
        return refusal('not_allowed', `you block ${other}: unblock them to send in this chat`)
      if (other !== undefined && this.#blocks.blocks(other, who.userId)) hideFrom = other
    }
    const textProblem =
      p.text === undefined ? undefined : checkCharacters(p.text, { max: this.#limits.maxTextChars })
    if (textProblem) return refusal('too_large', `text ${describeCharacterProblem(textProblem)}`)
    if (p.replyTo !== undefined) {
      const wrong = await this.#replyProblem(chatId, p.replyTo)
      if (wrong) return refusal(wrong.code, wrong.message)
    }
    if (p.media?.length) {
      // Recorded before the message is stored, so that no stored message points at media its
      // chat's members may not download; a message that then fails to store leaves a harmless grant.
      const refused = this.#media
        ? await this.#media.attach(who.userId, chatId, p.media, Date.now())
        : p.media[0]
      if (refused) {
        return refusal('media_not_found', `media ${refused} is not uploaded, or you may not send it`)
      }
    }
    const started = performance.now()
    const { message, duplicate } = await this.#messages.append({
      chatId,
      senderId: who.userId,
      deviceId: who.deviceId,
      clientMsgId: p.clientMsgId,
      kind: 'text',
      text: p.text ?? null,
      body: {
        ...(p.media ? { media: p.media } : {}),
        ...(p.replyTo !== undefined ? { replyTo: p.replyTo } : {}),
        ...(hideFrom !== undefined ? { hiddenFrom: hideFrom } : {}),
        ...(p.ciphertext !== undefined ? { ciphertext: p.ciphertext } : {}),
      },
    })
    this.#telemetry.storeWrite((performance.now() - started) / 1000)
    // A retry whose first attempt was stored may not have been fanned out (its node died between
    // the store and the fan-out): it is fanned out again. Devices that have it skip it (their
    // feed is past its seq), push jobs collapse by seq, and cursors only move forward.
    if (duplicate) {
      this.#inbox.retried(message, who.clientId)
      this.#trackUndelivered(message)
    } else this.#fanOut(message)
    this.#push?.onMessage(message)
    // One's own message is read.
    this.#later(chatId, who.userId, 'read', message.seq)
    return { ok: true, message, duplicate }
  }

  /**
   * Why `replyTo` cannot be replied to in the chat, or null when it can. A reply names a seq the
   * chat has had that is not a chat event: a text message, a tombstone (deleting races with
   * replying, and the tombstone keeps its place in history) or a message already removed by
   * retention (below the last seq but gone: seqs are never reused). A seq past the chat's last,
   * or a membership event, is refused (docs/protocol.md#sending-a-message).
   */
  async #replyProblem(
    chatId: string,
    replyTo: number,
  ): Promise<{ code: OperationErrorCode; message: string } | null> {
    const m = await this.#messages.get(chatId, replyTo)
    if (m) {
      if (m.kind === 'text') return null
      return {
        code: 'bad_request',
        message: `replyTo: seq ${replyTo} is a chat event (${eventType(m)}); only messages can be replied to`,
      }
    }
    const last = await this.#messages.lastSeq(chatId)
    if (replyTo <= last) return null
    return {
      code: 'not_found',
      message: `replyTo: chat ${chatId} has no message ${replyTo}; its last seq is ${last}`,
    }
  }

  #fanOut(message: StoredMessage, type: 'message' | 'edit' | 'delete' = 'message'): void {
    if (type !== 'message') {
      this.#inbox.update(message, type)
      return
    }
    this.#trackUndelivered(message)
    this.#inbox.message(message)
  }

  #trackUndelivered(message: StoredMessage): void {
    const hidden = hiddenFrom(message)
    for (const userId of this.#index.members(message.chatId)) {
      if (userId !== message.senderId && userId !== hidden && this.#isOnline(userId)) {
        this.#undelivered.sent(userId, message.chatId, message.seq, message.at)
      }
    }
  }

  /**
   * A device of userId acknowledged (PUBACK) message seq of a chat, sent by someone else and
   * stored at `at` (ms): the user's delivered receipt, when it is the user's first device to.
   */
  delivered(userId: string, chatId: string, seq: number, at: number): void {
    // Called for every acknowledged delivery: nested maps, no key string per call.
    let users = this.#delivered.get(chatId)
    if (!users) {
      users = new Map()
      this.#delivered.set(chatId, users)
    }
    if ((users.get(userId) ?? 0) >= seq) return
    users.set(userId, seq)
    this.#undelivered.acked(userId, chatId, seq)
    this.#telemetry.delivered(Math.max(0, Date.now() - at) / 1000)
    this.#later(chatId, userId, 'delivered', seq)
  }

  /**
   * Cursor moves from deliveries and sends are gathered for a short while and written once per
   * chat and user: at chat rates a store write per acknowledged packet was the send path's
   * largest cost (bench/). Delivered and own-read receipts are at most this much later.
   */
  #later(chatId: string, userId: string, kind: 'delivered' | 'read', seq: number): void {
    if (this.#closed) return
    let users = this.#pendingCursors.get(chatId)
    if (!users) {
      users = new Map()
      this.#pendingCursors.set(chatId, users)
    }
    const pending = users.get(userId)
    if (!pending)
      users.set(userId, kind === 'read' ? { delivered: 0, read: seq } : { delivered: seq, read: 0 })
    else if (pending[kind] < seq) pending[kind] = seq
    this.#cursorTimer ??= setTimeout(() => {
      this.flushCursors().catch((err: unknown) => this.#flushFailed(err))
    }, CURSOR_BATCH_MS)
  }

  /** Writes the gathered cursor moves (and sends their receipts) now. */
  async flushCursors(): Promise<void> {
    clearTimeout(this.#cursorTimer)
    this.#cursorTimer = undefined
    const batch: Array<{ chatId: string; userId: string; kind: 'delivered' | 'read'; seq: number }> = []
    for (const [chatId, users] of this.#pendingCursors) {
      for (const [userId, p] of users) {
        if (p.delivered) batch.push({ chatId, userId, kind: 'delivered', seq: p.delivered })
        if (p.read) batch.push({ chatId, userId, kind: 'read', seq: p.read })
      }
    }
    this.#pendingCursors.clear()
    // One flush at a time, so that the last one to start is the last to write.
    const previous = this.#flushing
    const mine = previous.then(async () => {
      for (const c of batch) await this.#advance(c.chatId, c.userId, c.kind, c.seq)
    })
    this.#flushing = mine.catch(() => {})
    await mine
  }

  #flushFailed(err: unknown): void {
    // A node stopping past its grace period closes its stores under a running flush: expected,
    // and the cursors move on with the next delivery or read.
    if (this.#closed) this.#log.info({ event: 'cursor_updates_left', err: (err as Error).message })
    else this.#log.error({ err }, 'cursor update failed')
  }

  /**
   * Writes the gathered cursor moves and takes no more: for a node that stops, before its broker
   * and stores close. Deliveries acknowledged after this leave the delivered cursor where it
   * was; the next delivery or read moves it on.
   */
  async close(): Promise<void> {
    this.#closed = true
    await this.flushCursors().catch((err: unknown) => this.#flushFailed(err))
  }

  /**
   * Moves a cursor and tells the senders it passed. `toSelf`: an explicit `read`, which the
   * reader's other devices hear of too (a read implied by sending needs no word: those devices
   * get the message itself).
   */
  async #advance(chatId: string, userId: string, kind: 'delivered' | 'read', seq: number, toSelf = false) {
    // A member removed and added again starts with fresh cursors: the key names the membership.
    const key = `${chatId}\u0000${userId}\u0000${this.#index.joinedAt(chatId, userId) ?? 0}`
    const before = this.#knownCursors.get(key) ?? (await this.#chats.cursor(chatId, userId))
    const from = kind === 'read' ? before.readSeq : before.deliveredSeq
    const { cursor, moved } = await this.#chats.advanceCursor({ chatId, userId, kind, seq })
    this.#knownCursors.delete(key)
    this.#knownCursors.set(key, { deliveredSeq: cursor.deliveredSeq, readSeq: cursor.readSeq })
    if (this.#knownCursors.size > KNOWN_CURSORS) {
      this.#knownCursors.delete(this.#knownCursors.keys().next().value as string)
    }
    if (!moved) return cursor
    const receipt: ReceiptEvent = { type: 'receipt', chatId, userId, kind, seq }
    const senders = (
      this.#inbox.recentSenders?.(chatId, from, seq) ??
      (await this.#messages.sendersBetween(chatId, from, seq))
    ).filter(
      (u) => u !== userId && this.#index.isMember(chatId, u) && !this.#blockedDirect(chatId, userId, u),
    )
    if (senders.length) this.#inbox.receipt(receipt, senders)
    // The reader's other devices show the chat read too (their unread counts follow).
    if (toSelf) this.#inbox.receipt(receipt, [userId])
    return cursor
  }

  /**
   * Whether a receipt between the two users of a direct chat is withheld for a block either
   * way: the blocked user's messages stay "sent" (WhatsApp's way), and the blocker is not shown
   * a cursor past messages hidden from them. Groups keep their receipts.
   */
  #blockedDirect(chatId: string, a: string, b: string): boolean {
    return (
      isDirectChat(chatId) &&
      this.#blocks !== undefined &&
      (this.#blocks.blocks(a, b) || this.#blocks.blocks(b, a))
    )
  }

  #member(userId: string, chatId: string): void {
    if (!this.#index.isMember(chatId, userId)) {
      throw new NatterError('chat_not_found', `no chat ${chatId}, or you are not a member`)
    }
  }

  register(router: RequestRouter): void {
    const ops = this.#ops

    // The send path as an operation, for HTTP (backends, scripts) and req/send: the same checks,
    // store write, de-duplication and fan-out as c/<chatId>/send, answered once the store has it.
    router.register('send', {
      params: ops.send.params,
      handle: async (ctx, { chatId, ...payload }) => {
        const outcome = await this.#track(this.#accept(ctx.who, chatId, payload))
        if (!outcome.ok) throw new NatterError(outcome.code, outcome.message)
        return { message: toEvent(outcome.message), duplicate: outcome.duplicate }
      },
    })

    router.register('history', {
      params: ops.history.params,
      handle: async (ctx, p) => {
        this.#member(ctx.who.userId, p.chatId)
        const page = await this.#messages.before(p.chatId, p.before ?? null, p.limit)
        // A page may come back shorter than the limit for a blocker; `more` still says whether
        // the store had more.
        return {
          messages: page.filter((m) => visibleTo(m, ctx.who.userId)).map((m) => toEvent(m)),
          more: page.length === p.limit,
        }
      },
    })

    router.register('sync', {
      params: ops.sync.params,
      handle: async (ctx, p) => {
        this.#member(ctx.who.userId, p.chatId)
        const page = await this.#messages.after(p.chatId, p.after, p.limit)
        return {
          messages: page.filter((m) => visibleTo(m, ctx.who.userId)).map((m) => toEvent(m)),
          lastSeq: await this.#messages.lastSeq(p.chatId),
          more: page.length === p.limit,
        }
      },
    })

    router.register('read', {
      params: ops.read.params,
      handle: async (ctx, p) => {
        this.#member(ctx.who.userId, p.chatId)
        // Moves gathered before this one are written first, so cursors never go out of order.
        await this.flushCursors()
        const last = await this.#messages.lastSeq(p.chatId)
        const cursor = await this.#advance(p.chatId, ctx.who.userId, 'read', Math.min(p.seq, last), true)
        return {
          readSeq: cursor.readSeq,
          unread: await this.#messages.countUnread(p.chatId, cursor.readSeq, ctx.who.userId),
        }
      },
    })

    router.register('receipts', {
      params: ops.receipts.params,
      handle: async (ctx, p) => {
        this.#member(ctx.who.userId, p.chatId)
        await this.flushCursors()
        const [cursors, devices] = await Promise.all([
          this.#chats.cursors(p.chatId),
          this.#deviceCursors?.(p.chatId) ?? [],
        ])
        return {
          cursors: cursors.map((c) => ({
            userId: c.userId,
            deliveredSeq: c.deliveredSeq,
            readSeq: c.readSeq,
          })),
          devices: devices
            .filter((d) => this.#index.isMember(p.chatId, d.userId))
            .map((d) => ({ userId: d.userId, deviceId: d.deviceId, deliveredSeq: d.seq })),
        }
      },
    })

    router.register('edit', {
      params: ops.edit.params,
      handle: async (ctx, p) => {
        const m = await this.#own(ctx.who.userId, p.chatId, p.seq, 'edited')
        if (isEncryptedChat(p.chatId))
          throw new NatterError(
            'not_allowed',
            `chat ${p.chatId} is end-to-end encrypted: an edit is a new ciphertext message that names the one it replaces`,
          )
        const textProblem = checkCharacters(p.text, { max: this.#limits.maxTextChars })
        if (textProblem) throw new NatterError('too_large', `text ${describeCharacterProblem(textProblem)}`)
        // The text it has already (code unit for code unit) is no edit: the message comes back as
        // it is, with no new editedAt and no event (docs/protocol.md#operations).
        if (m.text === p.text) return { message: toEvent(m) }
        const edited = await this.#messages.edit(m.chatId, m.seq, p.text, Date.now())
        // Deleted between the check in #own and the edit.
        if (!edited)
          throw new NatterError(
            'not_found',
            `message ${p.seq} was deleted; a deleted message cannot be edited`,
          )
        this.#fanOut(edited, 'edit')
        return { message: toEvent(edited) }
      },
    })

    router.register('delete', {
      params: ops.delete.params,
      handle: async (ctx, p) => {
        const m = await this.#own(ctx.who.userId, p.chatId, p.seq, 'deleted')
        const at = Date.now()
        const gone = await this.#messages.tombstone(m.chatId, m.seq, at)
        if (!gone) throw new NatterError('not_found', `no message ${p.seq} in ${p.chatId}`)
        // The stores tombstone only a live message: another delete that got there first leaves its
        // own deletedAt, and this one fans out nothing (a second delete event would be a lie).
        if (gone.deletedAt !== at) throw alreadyDeleted(gone)
        this.#fanOut(gone, 'delete')
        return { message: toEvent(gone) }
      },
    })

    router.register('search', {
      params: ops.search.params,
      handle: async (ctx, p) => {
        this.#member(ctx.who.userId, p.chatId)
        if (isEncryptedChat(p.chatId))
          throw new NatterError(
            'not_allowed',
            `chat ${p.chatId} is end-to-end encrypted: the server cannot read it, search it on the device`,
          )
        const found = await this.#messages.search(p.chatId, p.query, p.limit)
        return { messages: found.filter((m) => visibleTo(m, ctx.who.userId)).map((m) => toEvent(m)) }
      },
    })
  }

  /**
   * Deletes any text message on the operator's behalf (moderation; docs/admin.md): a tombstone as
   * when its sender deletes it, with the same `delete` event to the chat's members.
   *
   * @throws NatterError not_found (no such message, past retention, or already deleted),
   *   not_allowed (a chat event)
   */
  async deleteByOperator(chatId: string, seq: number): Promise<StoredMessage> {
    const m = await this.#messages.get(chatId, seq)
    if (!m) throw new NatterError('not_found', `no message ${seq} in ${chatId}`)
    if (m.kind !== 'text') {
      throw new NatterError('not_allowed', `seq ${seq} is a chat event (${eventType(m)}), not a message`)
    }
    if (m.deletedAt !== null) throw alreadyDeleted(m)
    const at = Date.now()
    const gone = await this.#messages.tombstone(chatId, seq, at)
    if (!gone) throw new NatterError('not_found', `no message ${seq} in ${chatId}`)
    if (gone.deletedAt !== at) throw alreadyDeleted(gone)
    this.#fanOut(gone, 'delete')
    return gone
  }

  /**
   * The live text message `seq` that userId sent, for an edit or delete. Throws chat_not_found
   * (not a member), not_found (no such seq, or already deleted) or not_allowed (a chat event, or
   * someone else's message).
   */
  async #own(
    userId: string,
    chatId: string,
    seq: number,
    change: 'edited' | 'deleted',
  ): Promise<StoredMessage> {
    this.#member(userId, chatId)
    const m = await this.#messages.get(chatId, seq)
    if (!m) {
      const last = await this.#messages.lastSeq(chatId)
      throw new NatterError(
        'not_found',
        seq <= last
          ? `message ${seq} of ${chatId} is no longer stored (past retention)`
          : `no message ${seq} in ${chatId}; its last seq is ${last}`,
      )
    }
    if (m.kind !== 'text') {
      throw new NatterError(
        'not_allowed',
        `seq ${seq} is a chat event (${eventType(m)}), not a message: only text messages can be edited or deleted`,
      )
    }
    if (m.senderId !== userId) throw new NatterError('not_allowed', 'only the sender can change a message')
    if (m.deletedAt !== null) throw alreadyDeleted(m, change)
    return m
  }
}

/** A change asked of a message that is already a tombstone. */
function alreadyDeleted(m: StoredMessage, change: 'edited' | 'deleted' = 'deleted'): NatterError {
  return new NatterError('not_found', `message ${m.seq} was deleted; a deleted message cannot be ${change}`)
}
