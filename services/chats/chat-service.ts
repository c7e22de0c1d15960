import { randomBytes } from 'node:crypto'
import { visibleTo } from '../blocks/hidden.ts'
import { toEvent } from '../messages/events.ts'
import type { InboxSink } from '../messages/message-service.ts'
import type { MessageStore } from '../messages/message-store.ts'
import { NatterError } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestContext, RequestRouter } from '../requests/router.ts'
import { KeyedQueue } from '../storage/keyed-queue.ts'
import { ENCRYPTED_DIRECT_CHAT_PREFIX } from './chat-ids.ts'
import type { Chat, ChatStore, Role } from './chat-store.ts'
import { ENCRYPTED_CHAT_PREFIX, isEncryptedChat } from './encrypted-chats.ts'
import type { MembershipIndex } from './membership-index.ts'

export interface ChatLimits {
  maxGroupMembers: number
}

const newChatId = (prefix: 'g' | 'd' | typeof ENCRYPTED_CHAT_PREFIX) =>
  `${prefix}_${randomBytes(12).toString('base64url')}`
/** An encrypted direct chat's id (services/chats/chat-ids.ts): `e_d.` then the random part. */
const newEncryptedDirectId = () => `${ENCRYPTED_DIRECT_CHAT_PREFIX}${randomBytes(12).toString('base64url')}`
const newEventId = () => `evt_${randomBytes(12).toString('base64url')}`
// The sender of events the operator causes: no user id is empty (services/auth/identity.ts).
const OPERATOR = { userId: '', deviceId: '', clientId: '' }

/**
 * Chats and their members: creating groups and direct chats, adding, removing, leaving, admin
 * roles and renaming. Every membership change becomes an event message in the chat's history,
 * fanned out like any message.
 */
export class ChatService {
  readonly #chats: ChatStore
  readonly #messages: MessageStore
  readonly #index: MembershipIndex
  readonly #inbox: InboxSink
  readonly #limits: ChatLimits
  readonly #ops: Operations
  readonly #blocks: { eitherBlocks(a: string, b: string): boolean } | undefined
  readonly #isErased: (userId: string) => boolean
  readonly #mutedChats: (userId: string) => Promise<Set<string>>
  /** Role changes of one chat, one after another on this node, so two never both pass the last-admin check. */
  readonly #roleChanges = new KeyedQueue()

  constructor(d: {
    chats: ChatStore
    messages: MessageStore
    index: MembershipIndex
    inbox: InboxSink
    limits: ChatLimits
    ops: Operations
    /** Blocks between users (services/blocks/): no new direct chat between a blocked pair. */
    blocks?: { eitherBlocks(a: string, b: string): boolean }
    /** Accounts erased or being erased (docs/admin.md#erase): never made members again. */
    isErased?: (userId: string) => boolean
    /** The chats a user muted (push.mute): shown as `muted` in chat.get and chat.list. */
    mutedChats?: (userId: string) => Promise<Set<string>>
  }) {
    this.#isErased = d.isErased ?? (() => false)
    this.#mutedChats = d.mutedChats ?? (async () => new Set())
    this.#blocks = d.blocks
    this.#ops = d.ops
    this.#chats = d.chats
    this.#messages = d.messages
    this.#index = d.index
    this.#inbox = d.inbox
    this.#limits = d.limits
  }

  /** Refuses to make an erased account a member again: their membership rows would hold their id anew. */
  #refuseErased(userIds: string[]): void {
    const erased = userIds.find((u) => this.#isErased(u))
    if (erased !== undefined)
      throw new NatterError('not_allowed', `${erased} cannot be a member: the account was erased`)
  }

  /** A chat the caller belongs to, or the one error that does not tell whether it exists. */
  async chatOf(ctx: RequestContext, chatId: string): Promise<Chat> {
    const chat = this.#index.isMember(chatId, ctx.who.userId) ? await this.#chats.getChat(chatId) : null
    if (!chat) throw new NatterError('chat_not_found', `no chat ${chatId}, or you are not a member`)
    return chat
  }

  #requireAdmin(ctx: RequestContext, chat: Chat): void {
    if (chat.kind !== 'group')
      throw new NatterError('not_allowed', 'direct chats have no admins or member changes')
    if (this.#index.role(chat.id, ctx.who.userId) !== 'admin') {
      throw new NatterError('not_allowed', 'only an admin of the group can do this')
    }
  }

  /** Records a membership change as an event message and sends it to everyone concerned. */
  async #event(ctx: RequestContext, chatId: string, event: Record<string, unknown>, alsoTo: string[] = []) {
    const { message } = await this.#messages.append({
      chatId,
      senderId: ctx.who.userId,
      deviceId: ctx.who.deviceId,
      clientMsgId: newEventId(),
      kind: 'event',
      text: null,
      body: { event },
    })
    this.#inbox.message(message, alsoTo)
    return message
  }

  /**
   * A chat as chat.get and chat.list show it to `userId`; `muted` is read once per call of
   * chat.list and handed in (else read here).
   */
  async describe(chat: Chat, userId: string, muted?: Set<string>) {
    const mutedHere = muted ?? (await this.#mutedChats(userId))
    const members = await this.#chats.members(chat.id)
    const cursor = await this.#chats.cursor(chat.id, userId)
    const last = await this.#lastVisible(chat.id, userId)
    return {
      id: chat.id,
      kind: chat.kind,
      encrypted: isEncryptedChat(chat.id),
      name: chat.name,
      createdBy: chat.createdBy,
      createdAt: chat.createdAt,
      members: members.map((m) => ({ userId: m.userId, role: m.role })),
      lastSeq: await this.#messages.lastSeq(chat.id),
      readSeq: cursor.readSeq,
      unread: await this.#messages.countUnread(chat.id, cursor.readSeq, userId),
      lastMessage: last ? toEvent(last) : null,
      muted: mutedHere.has(chat.id),
    }
  }

  register(router: RequestRouter): void {
    const ops = this.#ops
    router.register('chat.create', {
      params: ops['chat.create'].params,
      handle: async (ctx, p) => {
        const members = [...new Set(p.members)].filter((u) => u !== ctx.who.userId)
        this.#refuseErased(members)
        if (members.length + 1 > this.#limits.maxGroupMembers) {
          throw new NatterError(
            'too_many_members',
            `a group has at most ${this.#limits.maxGroupMembers} members`,
          )
        }
        const chat = await this.#chats.createGroup({
          id: newChatId(p.encrypted ? ENCRYPTED_CHAT_PREFIX : 'g'),
          name: p.name,
          createdBy: ctx.who.userId,
          members,
          at: Date.now(),
        })
        this.#index.add(chat.id, ctx.who.userId, 'admin')
        for (const u of members) this.#index.add(chat.id, u, 'member')
        await this.#event(ctx, chat.id, {
          type: 'chat_created',
          name: p.name,
          members: [ctx.who.userId, ...members],
        })
        return this.describe(chat, ctx.who.userId)
      },
    })

    router.register('chat.direct', {
      params: ops['chat.direct'].params,
      handle: async (ctx, p) => {
        if (p.with === ctx.who.userId)
          throw new NatterError('bad_request', 'a direct chat needs another user')
        this.#refuseErased([p.with])
        // Both sides get the same answer, which does not say who blocks whom (docs/protocol.md#blocking).
        const encrypted = p.encrypted === true
        if (
          this.#blocks?.eitherBlocks(ctx.who.userId, p.with) &&
          !this.#directExists(ctx.who.userId, p.with, encrypted)
        )
          throw new NatterError('not_allowed', `a direct chat with ${p.with} cannot be started`)
        // The encrypted one is the pair's second direct chat, beside the plaintext one (docs/e2ee.md).
        const { chat, created } = await this.#chats.findOrCreateDirect({
          id: encrypted ? newEncryptedDirectId() : newChatId('d'),
          a: ctx.who.userId,
          b: p.with,
          at: Date.now(),
          encrypted,
        })
        // A direct chat one of the two left (an erase removes the erased user) is never shown
        // to, or reopened by, someone who is no longer in it.
        // The store decides when this node's index says no: another node may have just made it.
        if (
          !created &&
          !this.#index.isMember(chat.id, ctx.who.userId) &&
          !(await this.#chats.members(chat.id)).some((m) => m.userId === ctx.who.userId)
        )
          throw new NatterError('not_allowed', `a direct chat with ${p.with} cannot be started`)
        if (created) {
          this.#index.add(chat.id, ctx.who.userId, 'member')
          this.#index.add(chat.id, p.with, 'member')
          await this.#event(ctx, chat.id, { type: 'chat_created', members: [ctx.who.userId, p.with] })
        }
        return this.describe(chat, ctx.who.userId)
      },
    })

    router.register('chat.get', {
      params: ops['chat.get'].params,
      handle: async (ctx, p) => this.describe(await this.chatOf(ctx, p.chatId), ctx.who.userId),
    })

    router.register('chat.list', {
      params: ops['chat.list'].params,
      handle: async (ctx) => {
        const chats = await this.#chats.chatsOf(ctx.who.userId)
        const muted = await this.#mutedChats(ctx.who.userId)
        return { chats: await Promise.all(chats.map((c) => this.describe(c, ctx.who.userId, muted))) }
      },
    })

    router.register('chat.add', {
      params: ops['chat.add'].params,
      handle: async (ctx, p) => {
        const chat = await this.chatOf(ctx, p.chatId)
        this.#requireAdmin(ctx, chat)
        const fresh = [...new Set(p.members)].filter((u) => !this.#index.isMember(chat.id, u))
        this.#refuseErased(fresh)
        if (this.#index.members(chat.id).length + fresh.length > this.#limits.maxGroupMembers) {
          throw new NatterError(
            'too_many_members',
            `a group has at most ${this.#limits.maxGroupMembers} members`,
          )
        }
        // A newcomer's unread count starts at the join: what the chat held before is history.
        // Read before the add, so a message that lands in between (and reaches the newcomer,
        // a member by then) counts as unread. A member who comes back keeps their own cursor.
        const startSeq = await this.#messages.lastSeq(chat.id)
        const at = Date.now()
        const added = await this.#chats.addMembers(chat.id, fresh, at, startSeq)
        for (const u of added) this.#index.add(chat.id, u, 'member', at)
        if (added.length) await this.#event(ctx, chat.id, { type: 'members_added', userIds: added })
        return { added }
      },
    })

    router.register('chat.remove', {
      params: ops['chat.remove'].params,
      handle: async (ctx, p) => {
        const chat = await this.chatOf(ctx, p.chatId)
        this.#requireAdmin(ctx, chat)
        if (p.userId === ctx.who.userId)
          throw new NatterError('bad_request', 'use chat.leave to leave a chat')
        if (!this.#index.isMember(chat.id, p.userId))
          throw new NatterError('not_found', `${p.userId} is not a member`)
        await this.#leave(ctx, chat, p.userId, 'member_removed')
        return { removed: p.userId }
      },
    })

    router.register('chat.role', {
      params: ops['chat.role'].params,
      handle: async (ctx, p) => {
        const chat = await this.chatOf(ctx, p.chatId)
        this.#requireAdmin(ctx, chat)
        return this.#roleChanges.run(chat.id, () => this.#setRole(ctx, chat, p.userId, p.role))
      },
    })

    router.register('chat.rename', {
      params: ops['chat.rename'].params,
      handle: async (ctx, p) => {
        const chat = await this.chatOf(ctx, p.chatId)
        this.#requireAdmin(ctx, chat)
        // The same name again changes nothing: no write, no event.
        if (chat.name === p.name) return this.describe(chat, ctx.who.userId)
        if (!(await this.#chats.renameChat(chat.id, p.name)))
          throw new NatterError('chat_not_found', `no chat ${chat.id}, or you are not a member`)
        await this.#event(ctx, chat.id, { type: 'chat_renamed', name: p.name, previous: chat.name })
        return this.describe({ ...chat, name: p.name }, ctx.who.userId)
      },
    })

    router.register('chat.leave', {
      params: ops['chat.leave'].params,
      handle: async (ctx, p) => {
        const chat = await this.chatOf(ctx, p.chatId)
        if (chat.kind !== 'group') throw new NatterError('not_allowed', 'a direct chat cannot be left')
        await this.#leave(ctx, chat, ctx.who.userId, 'member_left')
        return { left: chat.id }
      },
    })
  }

  /**
   * Removes a member on the operator's behalf (an account erase; docs/admin.md), from a group
   * or a direct chat, with the usual `member_removed` event to the others and to the user (and
   * `promoted` when the last admin went). The event's senderId is '' (no user: the operator),
   * so that erasing the removed user's messages leaves it whole. False when not a member.
   */
  async removeByOperator(chat: Chat, userId: string): Promise<boolean> {
    // The store, not this node's index, which another node's change may not have reached yet.
    if (!(await this.#chats.members(chat.id)).some((m) => m.userId === userId)) return false
    const ctx = { who: OPERATOR, tokenExpiresAt: Number.POSITIVE_INFINITY }
    await this.#leave(ctx, chat, userId, 'member_removed')
    return true
  }

  /**
   * chat.role once the caller is known to be an admin: `member_role` {userId, role} in the
   * history, fanned out to the members. Setting the role someone has is answered with
   * `changed: false` and no event. Errors: not_allowed (the caller is no longer an admin),
   * not_found (not a member), last_admin (the group's only admin made a member: a group always
   * keeps one, docs/protocol.md#chats).
   */
  async #setRole(ctx: RequestContext, chat: Chat, userId: string, role: Role) {
    // The store, not this node's index, which another node's change may not have reached yet.
    const members = await this.#chats.members(chat.id)
    // Checked again in the queue: a role change just before this one may have made the caller a member.
    if (members.find((m) => m.userId === ctx.who.userId)?.role !== 'admin')
      throw new NatterError('not_allowed', 'only an admin of the group can do this')
    const target = members.find((m) => m.userId === userId)
    if (!target) throw new NatterError('not_found', `${userId} is not a member`)
    if (target.role === role) return { userId, role, changed: false }
    if (role === 'member' && !members.some((m) => m.role === 'admin' && m.userId !== userId)) {
      throw new NatterError(
        'last_admin',
        `${userId} is the group's only admin: make another member admin first (a group keeps at least one)`,
      )
    }
    await this.#chats.setRole(chat.id, userId, role)
    this.#index.add(chat.id, userId, role)
    const event: Record<string, unknown> = { type: 'member_role', userId, role }
    // Two nodes can each demote one of the last two admins at once (MongoDB has no transaction to
    // stop it): whoever finds no admin left afterwards promotes the longest-standing member, as a
    // leave does.
    if (role === 'member') {
      const heir = await this.#heirIfNoAdmin(chat.id)
      if (heir) event.promoted = heir
    }
    await this.#event(ctx, chat.id, event)
    return { userId, role, changed: true }
  }

  /** When the group has members but no admin, makes the longest-standing member admin and returns them. */
  async #heirIfNoAdmin(chatId: string): Promise<string | undefined> {
    const rest = await this.#chats.members(chatId)
    const heir = rest[0]
    if (!heir || rest.some((m) => m.role === 'admin')) return undefined
    await this.#chats.setRole(chatId, heir.userId, 'admin')
    this.#index.add(chatId, heir.userId, 'admin')
    return heir.userId
  }

  /** The newest message userId may see (services/blocks/hidden.ts), or undefined. */
  async #lastVisible(chatId: string, userId: string) {
    let before: number | null = null
    for (;;) {
      const page = await this.#messages.before(chatId, before, before === null ? 1 : 50)
      const shown = page.find((m) => visibleTo(m, userId))
      if (shown || page.length === 0) return shown
      before = (page.at(-1) as (typeof page)[number]).seq
    }
  }

  /**
   * Whether the two users already have their direct chat, the plaintext one (ids start with d_)
   * or the encrypted one (e_d.).
   */
  #directExists(a: string, b: string, encrypted: boolean): boolean {
    const prefix = encrypted ? ENCRYPTED_DIRECT_CHAT_PREFIX : 'd_'
    return this.#index
      .chatsOf(a)
      .some((chatId) => chatId.startsWith(prefix) && this.#index.isMember(chatId, b))
  }

  async #leave(ctx: RequestContext, chat: Chat, userId: string, type: 'member_removed' | 'member_left') {
    const wasAdmin = this.#index.role(chat.id, userId) === 'admin'
    await this.#chats.removeMember(chat.id, userId)
    this.#index.remove(chat.id, userId)
    const event: Record<string, unknown> = { type, userId }
    // A group is never left without an admin: the longest-standing member takes over.
    const heir = wasAdmin ? await this.#heirIfNoAdmin(chat.id) : undefined
    if (heir) event.promoted = heir
    // The one who left hears of it too, so each of their devices drops the chat.
    await this.#event(ctx, chat.id, event, [userId])
  }
}
