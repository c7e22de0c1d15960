import type { Writable } from 'node:stream'
import { z } from 'zod'
import type { AccountRecord } from '../accounts/account-store.ts'
import type { Chat, ChatStore } from '../chats/chat-store.ts'
import type { DeliveryStore } from '../delivery/delivery-store.ts'
import { toEvent } from '../messages/events.ts'
import type { MessageStore, StoredMessage } from '../messages/message-store.ts'
import type { ExportSummary } from '../privacy/user-export.ts'
import type { ProfileStore } from '../profiles/profile-store.ts'
import { NatterError } from '../requests/envelope.ts'
import { HttpError } from '../requests/http-errors.ts'
import type { AdminCall, AdminRoute } from './admin-api.ts'
import { MAX_AUDIT_PAGE } from './admin-api.ts'
import type { AuditStore } from './audit-store.ts'

/** What the admin routes act on: stores to read, and the services that change things. */
export interface AdminDeps {
  audit: Pick<AuditStore, 'list'>
  chats: Pick<ChatStore, 'getChat' | 'members' | 'chatsOf'>
  messages: Pick<MessageStore, 'lastSeq'>
  profiles: Pick<ProfileStore, 'get'>
  delivery: Pick<DeliveryStore, 'devices'>
  accounts: {
    status(userId: string): Promise<AccountRecord | null>
    ban(userId: string, o: { reason: string | null; by: string }): Promise<AccountRecord>
    unban(userId: string, o: { by: string }): Promise<AccountRecord>
    erase(userId: string, o: { by: string }): Promise<AccountRecord>
  }
  moderation: {
    deleteMessage(chatId: string, seq: number): Promise<StoredMessage>
    /** False when the user is not a member. */
    removeMember(chat: Chat, userId: string): Promise<boolean>
  }
  exportUser(userId: string, out: Writable): Promise<ExportSummary>
}

const auditQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_AUDIT_PAGE).default(100),
  actor: z.string().min(1).max(64).optional(),
  action: z.string().min(1).max(64).optional(),
  target: z.string().min(1).max(200).optional(),
})

const banBody = z.strictObject({
  /** Shown to nobody but operators (the audit log, user.get). */
  reason: z.string().trim().min(1).max(500).optional(),
})
const emptyBody = z.strictObject({})

const seqOf = (text: string): number => {
  if (!/^[1-9]\d{0,15}$/.test(text)) throw new HttpError('bad_request', 'seq must be a positive integer')
  return Number(text)
}

const user = (p: Record<string, string>) => `user:${p.userId}`
const get = (p: Record<string, string>, name: string): string => p[name] as string

/**
 * The admin API's routes (docs/admin.md), each with the action and target its audit entries
 * carry. Errors: not_found for a chat or message that does not exist, not_allowed for what the
 * account rules forbid (unban of an erased account), bad_request for a malformed call.
 */
export function adminRoutes(d: AdminDeps): AdminRoute[] {
  const chatOr404 = async (chatId: string): Promise<Chat> => {
    const chat = await d.chats.getChat(chatId)
    if (!chat) throw new NatterError('not_found', `no chat ${chatId}`)
    return chat
  }
  return [
    {
      method: 'GET',
      path: 'audit',
      action: 'audit.list',
      target: () => null,
      params: (c) => Object.fromEntries(c.query),
      handle: async (c: AdminCall) => {
        const q = auditQuery.parse(Object.fromEntries(c.query))
        // One more than asked: `next` is set only when there is more to read.
        const found = await d.audit.list({ ...q, afterId: q.after, limit: q.limit + 1 })
        const entries = found.slice(0, q.limit)
        const more = found.length > q.limit
        return { status: 200, json: { entries, next: more ? (entries.at(-1)?.id ?? null) : null } }
      },
    },
    {
      method: 'GET',
      path: 'users/{userId}',
      action: 'user.get',
      target: user,
      handle: async (c) => {
        const userId = get(c.path, 'userId')
        const [account, profiles, devices, chats] = await Promise.all([
          d.accounts.status(userId),
          d.profiles.get([userId]),
          d.delivery.devices(userId),
          d.chats.chatsOf(userId),
        ])
        return {
          status: 200,
          json: {
            userId,
            account,
            profile: profiles[0] ?? null,
            devices,
            chats: chats.map((chat) => ({ chatId: chat.id, kind: chat.kind, name: chat.name })),
          },
        }
      },
    },
    {
      method: 'GET',
      path: 'users/{userId}/export',
      action: 'user.export',
      target: user,
      handle: async (c) => {
        const userId = get(c.path, 'userId')
        return {
          headers: {
            'content-type': 'application/zip',
            // An ASCII fallback name, and the user's id as given in filename* (RFC 6266 §4.3).
            'content-disposition': `attachment; filename="natter-export.zip"; filename*=UTF-8''${encodeURIComponent(`natter-export-${userId}.zip`).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`,
          },
          stream: async (res) => {
            const { userId: _, ...summary } = await d.exportUser(userId, res)
            return summary
          },
        }
      },
    },
    {
      method: 'POST',
      path: 'users/{userId}/ban',
      action: 'user.ban',
      target: user,
      // Only a reason the call could take is written, never arbitrary input.
      params: (c) => {
        const reason = (c.body as { reason?: unknown } | null)?.reason
        return { reason: typeof reason === 'string' && reason.length <= 500 ? reason : null }
      },
      handle: async (c) => {
        const { reason } = banBody.parse(c.body)
        const account = await d.accounts.ban(get(c.path, 'userId'), { reason: reason ?? null, by: c.actor })
        return { status: 200, json: { account } }
      },
    },
    {
      method: 'POST',
      path: 'users/{userId}/unban',
      action: 'user.unban',
      target: user,
      handle: async (c) => {
        emptyBody.parse(c.body)
        await d.accounts.unban(get(c.path, 'userId'), { by: c.actor })
        // In good standing again: no account record, as user.get shows it.
        return { status: 200, json: { account: null } }
      },
    },
    {
      method: 'POST',
      path: 'users/{userId}/erase',
      action: 'user.erase',
      target: user,
      handle: async (c) => {
        emptyBody.parse(c.body)
        const account = await d.accounts.erase(get(c.path, 'userId'), { by: c.actor })
        // Accepted: the erase goes on in the background (GET users/{userId} shows its progress).
        return { status: account.status === 'erased' ? 200 : 202, json: { account } }
      },
    },
    {
      method: 'GET',
      path: 'chats/{chatId}',
      action: 'chat.get',
      target: (p) => `chat:${p.chatId}`,
      handle: async (c) => {
        const chat = await chatOr404(get(c.path, 'chatId'))
        const [members, lastSeq] = await Promise.all([d.chats.members(chat.id), d.messages.lastSeq(chat.id)])
        return { status: 200, json: { chat, members, lastSeq } }
      },
    },
    {
      method: 'DELETE',
      path: 'chats/{chatId}/messages/{seq}',
      action: 'message.delete',
      target: (p) => `chat:${p.chatId}/seq:${p.seq}`,
      handle: async (c) => {
        const chat = await chatOr404(get(c.path, 'chatId'))
        const gone = await d.moderation.deleteMessage(chat.id, seqOf(get(c.path, 'seq')))
        return { status: 200, json: { message: toEvent(gone, 'delete') } }
      },
    },
    {
      method: 'DELETE',
      path: 'chats/{chatId}/members/{userId}',
      action: 'member.remove',
      target: (p) => `chat:${p.chatId}/user:${p.userId}`,
      handle: async (c) => {
        const chat = await chatOr404(get(c.path, 'chatId'))
        if (chat.kind !== 'group')
          throw new NatterError(
            'not_allowed',
            'a direct chat has no member changes: ban the user, or erase them, instead',
          )
        const userId = get(c.path, 'userId')
        if (!(await d.moderation.removeMember(chat, userId)))
          throw new NatterError('not_found', `${userId} is not a member of ${chat.id}`)
        return { status: 200, json: { removed: userId, chatId: chat.id } }
      },
    },
  ]
}
