import type { Chat, MessageStatus, Sending, StatusEvent } from './client.ts'
import { Emitter } from './emitter.ts'
import { type MembershipEvent, membershipEvent } from './membership-events.ts'
import { isDirectChat } from './mls/chat-kind.ts'
import type { OutboxItem } from './outbox.ts'
import { NatterRequestError } from './request.ts'
import type { ChatMessage } from './timeline.ts'

/** A chat member and their role (docs/protocol.md#chats). */
export interface Member {
  userId: string
  role: 'admin' | 'member'
}

/** What a ChatState emits; the client emits the same events for every chat (chatId in each). */
export interface ChatStateEvents {
  /**
   * A message (or membership event, kind `event`) new to this device, seen live or caught up by
   * sync after a reconnect. Messages of a history page (open, loadOlder) fire none: they are old.
   */
  'message.new': ChatMessage
  /** A message's text was edited (`editedAt` set): the timeline holds the new version. */
  'message.updated': ChatMessage
  /** A message was deleted for everyone: the timeline holds its tombstone (`text: null`, `deletedAt` set). */
  'message.deleted': ChatMessage
  /** Who is in the chat changed (a membership event, or the server's answer to chat.get or chat.list). */
  'members.updated': { chatId: string; members: Member[] }
  /** The group was renamed (a chat_renamed event, or the server's answer to chat.get or chat.list). */
  'name.updated': { chatId: string; name: string | null }
  /**
   * A membership event new to this device, live or caught up by sync (as message.new), typed:
   * created, members added, removed, left (with `promoted`, the member made admin when the last
   * admin left), a role change, a rename. Fired after `members` and `name` took it in.
   */
  membership: MembershipEvent
  /** The unread count or the read cursor changed. */
  'unread.updated': { chatId: string; unread: number; readSeq: number }
  /** This user muted or unmuted the chat's push notifications (mute, unmute). */
  'muted.updated': { chatId: string; muted: boolean }
  /** Where one of this user's messages to this chat stands (as the client's `status`). */
  status: StatusEvent
  /** Something shown in a chat list changed: name, members, last message, unread count or mute. */
  updated: ChatState
}

/**
 * What a ChatState shows at one moment (`getSnapshot`): the same object until something in the
 * chat changes, then a new one. Its arrays are copies: they do not change under a render.
 */
export interface ChatSnapshot {
  /** Goes up by at least one at every change of the chat's state (see ChatState.version). */
  readonly version: number
  readonly name: string | null
  readonly members: readonly Member[]
  /** The timeline held, in seq order (ChatState.messages). */
  readonly messages: readonly ChatMessage[]
  /** This user's messages waiting in the outbox, failed ones included (ChatState.pending). */
  readonly pending: readonly OutboxItem[]
  /** This user's edits and deletes waiting in the outbox, failed ones included. */
  readonly pendingChanges: readonly OutboxItem[]
  readonly unread: number
  readonly readSeq: number
  readonly lastSeq: number
  readonly lastMessage: ChatMessage | null
  readonly muted: boolean | null
  readonly loaded: boolean
  readonly removed: boolean
}

/** What a ChatState asks of its client: the calls of NatterClient it is a shortcut for. */
export interface ChatHost {
  readonly userId: string
  messages(chatId: string): ChatMessage[]
  pending(chatId: string): OutboxItem[]
  pendingChanges(chatId: string): OutboxItem[]
  heldUpTo(chatId: string): number
  open(chatId: string, pageSize?: number): Promise<ChatMessage[]>
  loadOlder(chatId: string, limit?: number): Promise<number>
  getChat(chatId: string): Promise<Chat>
  send(chatId: string, message: { text?: string; media?: string[]; replyTo?: number }): Sending
  edit(chatId: string, target: number | string, text: string): Promise<ChatMessage | null>
  deleteMessage(chatId: string, target: number | string): Promise<ChatMessage | null>
  markRead(chatId: string, seq?: number): Promise<{ readSeq: number; unread: number }>
  setMuted(chatId: string, muted: boolean): Promise<{ chatId: string; muted: boolean }>
  addMembers(chatId: string, userIds: string[]): Promise<{ added: string[] }>
  addDevices(chatId: string, userIds: string[]): Promise<string[]>
  removeMember(chatId: string, userId: string): Promise<{ removed: string }>
  safetyNumber(chatId: string, userId: string, deviceId?: string): Promise<string>
  devicesOf(chatId: string, userId: string): string[]
  setRole(
    chatId: string,
    userId: string,
    role: 'admin' | 'member',
  ): Promise<{ userId: string; role: 'admin' | 'member'; changed: boolean }>
  rename(chatId: string, name: string): Promise<Chat>
  leave(chatId: string): Promise<unknown>
  retry(localId: string, change?: { text?: string; media?: string[] }): Sending
  cancel(localId: string): Promise<void>
  statusOf(localId: string): MessageStatus | undefined
}

/** A change a message brought to a timeline. */
export type MessageChange = 'new' | 'updated' | 'deleted'

/**
 * One chat as this device knows it, kept up to date by the client (like Stream's
 * `channel.state`): its summary (name, members, unread count, last message, mute), its timeline
 * and this user's pending messages, with events for each change and methods for what a user does
 * in a chat. Get it with `client.chat(chatId)`: one object per chat, the same every time, until
 * the user leaves or is removed (then `removed` is true and the client forgets it).
 *
 * The summary comes from the server's chat.get / chat.list (`refresh`, `open`,
 * `client.loadChats`) and is then kept locally from what arrives: before either, `name` is null
 * and `members` empty. `unread` counts text messages from others after `readSeq` that are not
 * deleted, as the server does (docs/protocol.md#receipts-and-unread-counts).
 */
export class ChatState extends Emitter<ChatStateEvents> {
  readonly id: string
  /** From the chat id: direct chats' ids start with `d_`, groups' with `g_`. */
  readonly kind: 'direct' | 'group'
  /** End-to-end encrypted (MLS, docs/e2ee.md): from the chat id, which starts with `e_`. */
  readonly encrypted: boolean
  #name: string | null = null
  #members: Member[] = []
  #lastSeq = 0
  #readSeq = 0
  #unread = 0
  #lastMessage: ChatMessage | null = null
  #createdAt = 0
  #muted: boolean | null = null
  /** performance.now() when this device's last mute or unmute was answered. */
  #mutedAt = Number.NEGATIVE_INFINITY
  #loaded = false
  #removed = false
  /** The timeline when the user left or was removed (the client drops its own then). */
  #frozen: ChatMessage[] | undefined
  readonly #host: ChatHost
  /** Bumped at every change; the snapshot of the current version, made when first asked. */
  #version = 0
  #shot: ChatSnapshot | undefined
  readonly #listeners = new Set<() => void>()
  /** Messages up to this seq are in the server's counts already: only later ones change them. */
  #countedTo = 0
  /** The members list reflects every membership event up to this seq. */
  #membersAt = 0

  /** Made by the client (`client.chat(chatId)`); not to be constructed by apps. */
  constructor(host: ChatHost, chatId: string) {
    super()
    this.#host = host
    this.id = chatId
    this.kind = isDirectChat(chatId) ? 'direct' : 'group'
    this.encrypted = chatId.startsWith('e_')
  }

  /**
   * A number that goes up at every change of what this object shows: summary, timeline (new,
   * edited, deleted and history messages), pending messages and changes, statuses of this user's
   * messages, removal. A UI that read the state before it subscribed compares it to know whether
   * it missed something.
   */
  get version(): number {
    return this.#version
  }

  /**
   * Calls `listener` (no argument) after every change of this chat's state, synchronously, until
   * the returned function is called. With `getSnapshot` it is the store React's
   * `useSyncExternalStore` and Preact's equivalent take: a change between a render and the
   * subscription shows as a new snapshot, so none is missed. Bound: pass it as it is.
   *
   * ```ts
   * const snap = useSyncExternalStore(chat.subscribe, chat.getSnapshot)
   * return snap.messages.map((m) => <Message key={m.seq} m={m} />)
   * ```
   */
  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /**
   * The chat's state now, as one immutable object: the same object (`===`) on every call until
   * something changes (`version` goes up), then a new one. Bound: pass it as it is.
   */
  readonly getSnapshot = (): ChatSnapshot => {
    if (this.#shot?.version !== this.#version) {
      this.#shot = Object.freeze({
        version: this.#version,
        name: this.#name,
        members: this.#members,
        messages: Object.freeze(this.messages),
        pending: Object.freeze(this.pending.map((i) => Object.freeze({ ...i }))),
        pendingChanges: Object.freeze(this.pendingChanges.map((i) => Object.freeze({ ...i }))),
        unread: this.#unread,
        readSeq: this.#readSeq,
        lastSeq: this.#lastSeq,
        lastMessage: this.#lastMessage,
        muted: this.#muted,
        loaded: this.#loaded,
        removed: this.#removed,
      })
    }
    return this.#shot
  }

  /** A group's name; null for a direct chat, and until the summary is loaded. */
  get name(): string | null {
    return this.#name
  }

  /** Who is in the chat, with their roles (empty until the summary is loaded). */
  get members(): readonly Member[] {
    return this.#members
  }

  /** The highest seq this device knows the chat to have (0: none known). */
  get lastSeq(): number {
    return this.#lastSeq
  }

  /** This user's read cursor: every message up to it is read. */
  get readSeq(): number {
    return this.#readSeq
  }

  /**
   * Text messages from others after readSeq that are not deleted (the server's rule). Before the
   * summary is loaded it counts only what arrived on this device.
   */
  get unread(): number {
    return this.#unread
  }

  /** The newest message or membership event this user may see, or null. */
  get lastMessage(): ChatMessage | null {
    return this.#lastMessage
  }

  /** When the chat was created, ms since the epoch (0 until the summary is loaded). */
  get createdAt(): number {
    return this.#createdAt
  }

  /**
   * Whether push notifications are muted for this chat, as chat.get and chat.list say it (and
   * mute/unmute here); null until the chat is loaded. A mute made on another device shows at the
   * next loadChats, refresh or reconnect.
   */
  get muted(): boolean | null {
    return this.#muted
  }

  /** Whether the summary (name, members, counts) came from the server yet. */
  get loaded(): boolean {
    return this.#loaded
  }

  /** True once the user left or was removed: the client no longer updates this object. */
  get removed(): boolean {
    return this.#removed
  }

  /**
   * The timeline held so far: messages and membership events in seq order, each seq once. Once
   * removed, the timeline as it was then (the client no longer holds one for the chat).
   */
  get messages(): ChatMessage[] {
    return this.#frozen ? [...this.#frozen] : this.#host.messages(this.id)
  }

  /**
   * This user's messages to this chat that the server has not stored yet, in the order sent:
   * on their way, or refused for good (`failed` set, with the server's code: retry or cancel).
   */
  get pending(): OutboxItem[] {
    return this.#host.pending(this.id)
  }

  /**
   * This user's edits and deletes in this chat that wait in the outbox, in order: on their way,
   * or refused (`failed` set, with the server's code, the text kept: retry or cancel).
   */
  get pendingChanges(): OutboxItem[] {
    return this.#host.pendingChanges(this.id)
  }

  /** When the chat last had activity (its last message's time, else its creation), ms since the epoch. */
  get lastActivityAt(): number {
    return this.#lastMessage?.at ?? this.#createdAt
  }

  /**
   * Follows the chat: loads its summary, its newest page (pageSize messages), everything after,
   * receipts and typing (NatterClient.open). Resolves with the timeline. Rejects with
   * chat_not_found when the user is not a member.
   */
  open(pageSize = 50): Promise<ChatMessage[]> {
    return this.#host.open(this.id, pageSize)
  }

  /** Reads the summary again from the server (chat.get). Rejects with chat_not_found when not a member. */
  async refresh(): Promise<this> {
    await this.#host.getChat(this.id)
    return this
  }

  /** Older messages before the oldest held (up to limit, default 50); resolves with how many came. */
  loadOlder(limit = 50): Promise<number> {
    return this.#host.loadOlder(this.id, limit)
  }

  /**
   * Sends a message through the outbox (NatterClient.send): kept until the server stores it,
   * sent after a reconnect, stored once. A refusal leaves it in `pending` as failed (retry, cancel).
   * Throws not_found on a chat the user left or was removed from (`removed`).
   */
  send(message: string | { text?: string; media?: string[]; replyTo?: number }): Sending {
    this.#member()
    return this.#host.send(this.id, typeof message === 'string' ? { text: message } : message)
  }

  /** Sends text as a reply to the message with this seq (`replyTo`). */
  reply(seq: number, text: string): Sending {
    this.#member()
    return this.#host.send(this.id, { text, replyTo: seq })
  }

  /**
   * Edits one of this user's messages: a seq (a stored message) or a pending message's localId.
   * Queued in the outbox like a send (works offline, survives a restart, runs after the message's
   * send and earlier changes of it); a pending message not yet sent is changed in place instead.
   * Resolves with the edited message, or null when a pending message was changed in place.
   * Rejects with the server's refusal (not_found: no such message or deleted; not_allowed: not
   * the sender, or a chat event; too_large), and the edit then stays in pendingChanges as
   * failed, with its text, until retry or cancel.
   */
  edit(target: number | string, text: string): Promise<ChatMessage | null> {
    if (this.#removed) return Promise.reject(this.#gone())
    return this.#host.edit(this.id, target, text)
  }

  /**
   * Deletes one of this user's messages for everyone: a seq or a pending message's localId,
   * queued like edit; a pending message not yet sent is cancelled instead. Resolves with the
   * tombstone, or null when a pending message was cancelled; a message deleted already (on
   * another device) resolves with its tombstone too. Rejects as edit does.
   */
  delete(target: number | string): Promise<ChatMessage | null> {
    if (this.#removed) return Promise.reject(this.#gone())
    return this.#host.deleteMessage(this.id, target)
  }

  /**
   * Marks the chat read up to seq (default: the newest message held, else lastSeq) with one
   * `read` request; unread and readSeq take the server's answer. The caller debounces (or uses
   * markReadSoon).
   */
  async markRead(seq?: number): Promise<{ readSeq: number; unread: number }> {
    const upTo = seq ?? Math.max(this.#host.heldUpTo(this.id), this.#lastSeq)
    return this.#host.markRead(this.id, upTo)
  }

  #readTimer: ReturnType<typeof setTimeout> | undefined
  #readUpTo = 0

  /**
   * markRead for a chat on screen: calls within waitMs (ms, default 500) of the first make one
   * `read` request, up to the highest seq asked (or the newest held). Errors go nowhere: the next
   * call tries again.
   */
  markReadSoon(seq?: number, waitMs = 500): void {
    this.#readUpTo = Math.max(this.#readUpTo, seq ?? Math.max(this.#host.heldUpTo(this.id), this.#lastSeq))
    if (this.#readTimer) return
    this.#readTimer = setTimeout(() => {
      this.#readTimer = undefined
      const upTo = this.#readUpTo
      this.#readUpTo = 0
      if (upTo > this.#readSeq && !this.#removed) this.markRead(upTo).catch(() => {})
    }, waitMs)
  }

  /** Mutes the chat's push notifications on all of the user's devices (push.mute). */
  async mute(): Promise<void> {
    await this.#host.setMuted(this.id, true)
  }

  /** Unmutes the chat's push notifications (push.mute with muted: false). */
  async unmute(): Promise<void> {
    await this.#host.setMuted(this.id, false)
  }

  /**
   * Adds members to a group (chat.add; admins only). Resolves with those who were not members;
   * `members` changes when the chat's members_added event arrives (members.updated). Rejects with
   * not_allowed (not an admin, a direct chat) or too_many_members.
   */
  addMembers(userIds: string[]): Promise<{ added: string[] }> {
    return this.#host.addMembers(this.id, userIds)
  }

  /**
   * In an encrypted chat, adds the devices of members that are not in its MLS group yet
   * (NatterClient.addDevices; any member may). Resolves with the devices added (`userId/deviceId`).
   */
  addDevices(userIds: string[]): Promise<string[]> {
    return this.#host.addDevices(this.id, userIds)
  }

  /** Removes a member from a group (chat.remove; admins only). Rejects with not_allowed or not_found. */
  removeMember(userId: string): Promise<{ removed: string }> {
    return this.#host.removeMember(this.id, userId)
  }

  /**
   * In an encrypted chat, the safety number of this user and `userId` (NatterClient.safetyNumber):
   * 12 groups of 5 digits, the same on both sides, from both users' devices in the group.
   */
  safetyNumber(userId: string, deviceId?: string): Promise<string> {
    return this.#host.safetyNumber(this.id, userId, deviceId)
  }

  /** In an encrypted chat, a member's device ids in the MLS group, sorted. */
  devicesOf(userId: string): string[] {
    return this.#host.devicesOf(this.id, userId)
  }

  /**
   * Makes a member an admin, or an admin a member again (chat.role; admins only). Resolves
   * with `changed: false` when they had that role already; `members` changes when the chat's
   * member_role event arrives (members.updated, membership). Rejects with last_admin (the only
   * admin made a member), not_allowed (not an admin, a direct chat) or not_found (not a member).
   */
  setRole(
    userId: string,
    role: 'admin' | 'member',
  ): Promise<{ userId: string; role: 'admin' | 'member'; changed: boolean }> {
    return this.#host.setRole(this.id, userId, role)
  }

  /**
   * Renames the group (chat.rename; admins only; 1–100 characters, as chat.create). Resolves with
   * the chat as the server now describes it; `name` changes at once (name.updated), and every
   * member gets a chat_renamed event. The same name again changes nothing. Rejects with
   * not_allowed (not an admin, a direct chat) or bad_request (an empty or too long name).
   */
  rename(name: string): Promise<Chat> {
    return this.#host.rename(this.id, name)
  }

  /** Leaves the group (chat.leave): the client forgets the chat (chat.removed). Rejects with not_allowed for a direct chat. */
  async leave(): Promise<void> {
    await this.#host.leave(this.id)
  }

  /** Sends a failed message, or makes a failed edit or delete, of this chat again (NatterClient.retry). */
  retry(localId: string, change?: { text?: string; media?: string[] }): Sending {
    return this.#host.retry(localId, change)
  }

  /** Removes a failed or not yet sent message, edit or delete from the outbox (NatterClient.cancel). */
  cancel(localId: string): Promise<void> {
    return this.#host.cancel(localId)
  }

  // --- kept up to date by the client -----------------------------------------------------

  /**
   * @internal The server's summary (chat.get, chat.list), then what this device holds after it
   * (`later`: messages with seq above chat.lastSeq, which the summary did not count yet).
   */
  _summary(chat: Chat, later: ChatMessage[], askedAt = Number.POSITIVE_INFINITY): void {
    const before = this.#summaryNow()
    const was = { loaded: this.#loaded, lastSeq: this.#lastSeq, createdAt: this.#createdAt }
    this.#name = chat.name
    this.#createdAt = chat.createdAt ?? this.#createdAt
    if (!sameMembers(this.#members, chat.members)) {
      this.#members = chat.members.map((m) => ({ userId: m.userId, role: m.role }))
    }
    this.#membersAt = chat.lastSeq
    this.#readSeq = chat.readSeq
    this.#unread = chat.unread
    this.#countedTo = chat.lastSeq
    this.#lastSeq = Math.max(this.#lastSeq, chat.lastSeq)
    if (chat.lastMessage && (!this.#lastMessage || chat.lastMessage.seq >= this.#lastMessage.seq)) {
      this.#lastMessage = { ...chat.lastMessage, type: 'message' }
    }
    // A summary asked before this device's last mute or unmute was answered may predate it.
    if (chat.muted !== undefined && askedAt >= this.#mutedAt) {
      // Learning it with the chat is no change to announce; a change of a known value is.
      if (this.#muted === null) before.muted = chat.muted
      this.#muted = chat.muted
    }
    this.#loaded = true
    for (const m of later) if (m.seq > chat.lastSeq) this.#count(m)
    const changed =
      this.#differs(before) ||
      was.loaded !== this.#loaded ||
      was.lastSeq !== this.#lastSeq ||
      was.createdAt !== this.#createdAt
    if (changed) this.#version++
    this.#changed(before)
    if (changed) this.#notify()
  }

  /** @internal A message entered the timeline or changed there; live: not from a history page. */
  _message(m: ChatMessage, change: MessageChange, previous: ChatMessage | undefined, live: boolean): void {
    const before = this.#summaryNow()
    if (change === 'new') this.#count(m)
    else if (
      change === 'deleted' &&
      previous?.deletedAt === null &&
      m.seq > this.#readSeq &&
      m.seq <= this.#countedTo &&
      this.#counts(m)
    ) {
      this.#unread = Math.max(0, this.#unread - 1)
    }
    if (m.seq > this.#lastSeq) this.#lastSeq = m.seq
    if (!this.#lastMessage || m.seq >= this.#lastMessage.seq) this.#lastMessage = m
    // The timeline changed: a new version before any event, so handlers read the new snapshot.
    this.#version++
    if (change !== 'new' || live) this.emit(`message.${change}`, m)
    this.#changed(before)
    const membership = change === 'new' && live ? membershipEvent(m) : null
    if (membership) this.emit('membership', membership)
    this.#notify()
  }

  /** @internal The server's answer to `read`. */
  _read(readSeq: number, unread: number): void {
    const before = this.#summaryNow()
    this.#readSeq = Math.max(this.#readSeq, readSeq)
    this.#unread = unread
    this.#settle(before)
  }

  /** @internal The server's answer to push.mute. */
  _muted(muted: boolean): void {
    const before = this.#summaryNow()
    this.#muted = muted
    this.#mutedAt = performance.now()
    this.#settle(before)
  }

  /** @internal A status of one of this user's messages to this chat. */
  _status(s: StatusEvent): void {
    this.#version++
    this.emit('status', s)
    this.#notify()
  }

  /** @internal Something this object shows changed on the client's side (the outbox): a new version. */
  _touch(): void {
    this.#version++
    this.#notify()
  }

  /**
   * Throws not_found (a NatterRequestError) on a chat the user left or was removed from: the
   * server would refuse the send, and it would sit failed in the outbox.
   */
  #member(): void {
    if (this.#removed) throw this.#gone()
  }

  #gone(): NatterRequestError {
    return new NatterRequestError('not_found', `not a member of chat ${this.id} any more (left or removed)`)
  }

  /** @internal The user left or was removed; called while the client still holds the timeline. */
  _removed(): void {
    clearTimeout(this.#readTimer)
    if (this.#removed) return
    // What the user saw stays readable (a UI keeps showing the chat, read-only).
    this.#frozen = this.#host.messages(this.id)
    this.#removed = true
    this.#version++
    this.#notify()
  }

  /** Whether a message counts as unread when after the read cursor (the server's rule). */
  #counts(m: ChatMessage): boolean {
    return m.kind === 'text' && m.senderId !== this.#host.userId
  }

  /** A message the server's counts did not include yet: unread, read cursor and members follow it. */
  #count(m: ChatMessage): void {
    if (m.seq <= this.#countedTo) return
    this.#countedTo = m.seq
    if (m.senderId === this.#host.userId && m.kind === 'text') {
      // Sending marks the chat read for its sender, up to the message (docs/protocol.md#receipts-and-unread-counts).
      this.#readSeq = Math.max(this.#readSeq, m.seq)
      this.#unread = 0
    } else if (this.#counts(m) && m.deletedAt === null && m.seq > this.#readSeq) this.#unread++
    if (m.kind === 'event' && this.#loaded && m.seq > this.#membersAt) {
      this.#membersAt = m.seq
      const next = applyMembership(this.#members, m)
      if (!sameMembers(next, this.#members)) this.#members = next
      if (m.event?.type === 'chat_renamed' && typeof m.event.name === 'string') this.#name = m.event.name
    }
  }

  /** What a change is compared with: members and lastMessage are replaced, never changed in place. */
  #summaryNow(): Summary {
    return {
      name: this.#name,
      members: this.#members,
      unread: this.#unread,
      readSeq: this.#readSeq,
      lastMessage: this.#lastMessage,
      muted: this.#muted,
    }
  }

  /** A summary change: a new version when anything differs, then its events, then the subscribers. */
  #settle(before: Summary): void {
    const changed = this.#differs(before)
    if (changed) this.#version++
    this.#changed(before)
    if (changed) this.#notify()
  }

  #differs(before: Summary): boolean {
    const now = this.#summaryNow()
    return (Object.keys(now) as (keyof Summary)[]).some((k) => now[k] !== before[k])
  }

  /** Calls the subscribers (a copy of the set: one may unsubscribe another). */
  #notify(): void {
    for (const listener of [...this.#listeners]) listener()
  }

  #changed(before: Summary): void {
    if (before.members !== this.#members) {
      this.emit('members.updated', { chatId: this.id, members: this.#members })
    }
    if (before.name !== this.#name) this.emit('name.updated', { chatId: this.id, name: this.#name })
    if (before.unread !== this.#unread || before.readSeq !== this.#readSeq) {
      this.emit('unread.updated', { chatId: this.id, unread: this.#unread, readSeq: this.#readSeq })
    }
    if (before.muted !== this.#muted && this.#muted !== null) {
      this.emit('muted.updated', { chatId: this.id, muted: this.#muted })
    }
    if (this.#differs(before)) this.emit('updated', this)
  }
}

interface Summary {
  name: string | null
  members: Member[]
  unread: number
  readSeq: number
  lastMessage: ChatMessage | null
  muted: boolean | null
}

function sameMembers(a: Member[], b: Member[]): boolean {
  return a.length === b.length && a.every((m, i) => m.userId === b[i]?.userId && m.role === b[i]?.role)
}

/**
 * The members after a membership event (docs/protocol.md#chats): chat_created {members},
 * members_added {userIds}, member_removed / member_left {userId, promoted?}, member_role
 * {userId, role, promoted?}.
 */
function applyMembership(members: Member[], m: ChatMessage): Member[] {
  const e = m.event ?? {}
  const ids = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [])
  let next = members
  if (e.type === 'chat_created') {
    // Groups, encrypted ones (`e_`) included, start with their creator as admin; direct chats have none.
    next = ids(e.members).map((userId) => ({
      userId,
      role: !isDirectChat(m.chatId) && userId === m.senderId ? 'admin' : 'member',
    }))
  } else if (e.type === 'members_added') {
    const fresh = ids(e.userIds).filter((u) => !members.some((x) => x.userId === u))
    next = [...members, ...fresh.map((userId) => ({ userId, role: 'member' as const }))]
  } else if (e.type === 'member_removed' || e.type === 'member_left') {
    next = members.filter((x) => x.userId !== e.userId)
  } else if (e.type === 'member_role' && (e.role === 'admin' || e.role === 'member')) {
    const role = e.role
    next = members.map((x) => (x.userId === e.userId ? { ...x, role } : x))
  }
  if (typeof e.promoted === 'string') {
    next = next.map((x) => (x.userId === e.promoted ? { ...x, role: 'admin' as const } : x))
  }
  return next
}
