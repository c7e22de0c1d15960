import { z } from 'zod'
import { idSchema, messageTextSchema, sendSchema } from '../messages/wire.ts'
import { characters } from '../text/graphemes.ts'
import { visibleName } from '../text/visible-names.ts'

/** The largest page of history, sync or search results. */
export const MAX_PAGE_SIZE = 200

/** The most KeyPackages one mls.keypackages.upload carries. */
export const MAX_KEY_PACKAGE_BATCH = 100

/** The largest Commit mls.commit takes, in bytes (a Commit with an UpdatePath in a group of 100 is about 9 KB). */
export const MAX_COMMIT_BYTES = 128 * 1024

/** Bytes as base64 (RFC 4648 §4), at most `maxBytes` of them once decoded. */
const base64Bytes = (maxBytes: number, what: string) =>
  z
    .base64({ error: `expected ${what} as base64` })
    .max(Math.ceil(maxBytes / 3) * 4, { error: `${what} is over ${maxBytes} bytes` })
    .describe(`${what}, base64`)

/** The longest display name of a profile, in characters (grapheme clusters). */
export const MAX_DISPLAY_NAME_CHARS = 64

export interface OperationLimits {
  maxGroupMembers: number
  maxPageSize: number
}

/**
 * Every operation of the request/response convention: what it does and its params, as the one
 * schema that validates requests and documents them (docs/schemas.md is made from it).
 */
export function operations(l: OperationLimits) {
  const chatId = idSchema
  const seq = z.number().int().min(1)
  const limit = z.number().int().min(1).max(l.maxPageSize).default(50)
  // chat.create and chat.rename: one rule for a group's name.
  const groupName = visibleName({ max: 100 }, 'The group’s name')
  return {
    whoami: { summary: 'Who the connection is: user, device, token expiry.', params: z.object({}).strict() },
    'chat.create': {
      summary: 'Create a group; the caller becomes its admin.',
      params: z
        .object({
          name: groupName,
          members: z.array(idSchema).max(l.maxGroupMembers),
          encrypted: z
            .boolean()
            .optional()
            .describe(
              'End-to-end encrypted with MLS (docs/e2ee.md): fixed at creation, its id starts with e_',
            ),
        })
        .strict(),
    },
    'chat.direct': {
      summary: 'The one direct chat with another user, created the first time.',
      params: z
        .object({
          with: idSchema,
          encrypted: z
            .boolean()
            .optional()
            .describe(
              'The pair’s end-to-end encrypted direct chat (docs/e2ee.md), beside the plaintext one: its id starts with e_d.',
            ),
        })
        .strict(),
    },
    'chat.get': {
      summary: 'One chat: members, last message, unread count.',
      params: z.object({ chatId }).strict(),
    },
    'chat.list': {
      summary: "The caller's chats with unread counts and last message.",
      params: z.object({}).strict(),
    },
    'chat.add': {
      summary: 'Add members to a group (admins only).',
      params: z.object({ chatId, members: z.array(idSchema).min(1).max(l.maxGroupMembers) }).strict(),
    },
    'chat.remove': {
      summary: 'Remove a member from a group (admins only).',
      params: z.object({ chatId, userId: idSchema }).strict(),
    },
    'chat.role': {
      summary:
        'Make a group member an admin, or an admin a member again (admins only); the last admin cannot be made a member.',
      params: z.object({ chatId, userId: idSchema, role: z.enum(['admin', 'member']) }).strict(),
    },
    'chat.rename': {
      summary: 'Rename a group (admins only).',
      params: z.object({ chatId, name: groupName }).strict(),
    },
    'chat.leave': {
      summary: 'Leave a group; if the last admin leaves, the longest-standing member becomes admin.',
      params: z.object({ chatId }).strict(),
    },
    send: {
      summary:
        'Send a chat message, as c/<chatId>/send does (for HTTP: backends and scripts): answered with the stored message once it is durable; a clientMsgId the sender used in the chat before is stored once (duplicate: true).',
      params: sendSchema
        .safeExtend({ chatId })
        .describe('POST /v1/send or req/send: a chat message, the payload of c/<chatId>/send plus chatId'),
    },
    history: {
      summary: 'A page of messages before a seq (or the newest), newest first.',
      params: z.object({ chatId, before: seq.optional(), limit }).strict(),
    },
    sync: {
      summary: 'Messages after a seq, oldest first: how a device catches up.',
      params: z.object({ chatId, after: z.number().int().min(0), limit }).strict(),
    },
    read: { summary: 'Mark the chat read up to a seq.', params: z.object({ chatId, seq }).strict() },
    receipts: {
      summary: "Every member's delivered and read cursor in a chat.",
      params: z.object({ chatId }).strict(),
    },
    edit: {
      summary: "Replace the text of one's own message.",
      params: z.object({ chatId, seq, text: messageTextSchema }).strict(),
    },
    delete: {
      summary: "Delete one's own message for everyone; a tombstone stays in history.",
      params: z.object({ chatId, seq }).strict(),
    },
    search: {
      summary:
        'Messages of a chat that hold every word of the query, the last one as a prefix, newest first: words in any script, insensitive to case and accents.',
      params: z.object({ chatId, query: characters({ min: 1, max: 200 }), limit }).strict(),
    },
    'media.begin': {
      summary:
        'Start an upload for a chat, or of a profile photo (purpose "avatar"): the same bytes uploaded before come back ready; otherwise a signed URL to PUT them to.',
      params: z
        .object({
          chatId: chatId
            .optional()
            .describe(
              'The chat the media is for (the caller is a member); exactly one of chatId and purpose',
            ),
          purpose: z
            .literal('avatar')
            .optional()
            .describe(
              '"avatar": a profile photo, an image needing no chat; exactly one of chatId and purpose',
            ),
          sha256: z
            .string()
            .regex(/^[0-9a-fA-F]{64}$/, { error: 'expected the SHA-256 of the bytes as 64 hex digits' })
            .transform((h) => h.toLowerCase()),
          size: z.number().int().min(1),
          contentType: characters({ min: 1, max: 255 }).transform((t) => t.toLowerCase()),
          name: visibleName({ max: 255 }, 'The file name, for downloads', (n) =>
            /[/\\]/.test(n) ? 'a file name has no slashes' : undefined,
          ).optional(),
          durationMs: z
            .number()
            .int()
            .min(0)
            .optional()
            .describe('Audio and video: the length, as the uploader measured it'),
        })
        .strict()
        .refine((p) => (p.chatId === undefined) !== (p.purpose === undefined), {
          error:
            'name exactly one of chatId (an upload for a chat) and purpose "avatar" (a profile photo, no chat needed)',
        }),
    },
    'media.complete': {
      summary: 'After the PUT: the server checks the stored bytes and makes the media sendable.',
      params: z.object({ mediaId: characters({ min: 1, max: 128 }) }).strict(),
    },
    'push.register': {
      summary:
        "Register this device (or deviceId, another of the caller's) for push notifications; replaces its earlier token.",
      params: z
        .object({
          platform: z.enum(['fcm', 'apns']),
          token: characters({ min: 8, max: 4096 }),
          apnsTopic: z
            .string()
            .regex(/^[A-Za-z0-9.-]{1,255}$/, { error: 'expected the app’s bundle id' })
            .optional()
            .describe('APNs: the bundle id (apns-topic)'),
          sandbox: z.boolean().optional().describe('APNs: the development environment'),
          locale: z
            .string()
            .regex(/^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$/, { error: 'expected a BCP 47 language tag' })
            .optional(),
          hideText: z.boolean().optional().describe('Notifications say "New message" instead of the text'),
          deviceId: idSchema.optional(),
        })
        .strict(),
    },
    'push.unregister': {
      summary: "Stop push notifications to this device (or deviceId, another of the caller's): on logout.",
      params: z.object({ deviceId: idSchema.optional() }).strict(),
    },
    'push.mute': {
      summary: 'Mute or unmute push notifications of a chat, for every device of the caller.',
      params: z.object({ chatId, muted: z.boolean() }).strict(),
    },
    'devices.list': {
      summary:
        'The caller’s devices: first and last seen, connected now, push registration; and the cap on devices per user.',
      params: z.object({}).strict(),
    },
    'device.revoke': {
      summary:
        'Revoke one of the caller’s devices (deviceId), or every one but the caller’s (others: true, "log out everywhere else"): connections cut on every node, delivery state and push registration removed, earlier tokens refused.',
      params: z
        .object({ deviceId: idSchema.optional(), others: z.literal(true).optional() })
        .strict()
        .refine((p) => (p.deviceId === undefined) !== (p.others === undefined), {
          error: 'give either deviceId or others: true',
        }),
    },
    'media.get': {
      summary: 'Short-lived download URLs (and a thumbnail for images) of a media one may see.',
      params: z.object({ mediaId: characters({ min: 1, max: 128 }) }).strict(),
    },
    'profile.set': {
      summary:
        "Change the caller's profile: a field left out keeps its value, null clears it; chat partners get a profile event.",
      params: z
        .object({
          displayName: visibleName({ max: MAX_DISPLAY_NAME_CHARS }, 'Shown instead of the user id')
            .nullable()
            .optional(),
          avatar: characters(
            { min: 1, max: 128 },
            'The mediaId of an image the caller uploaded (media.begin)',
          )
            .nullable()
            .optional(),
        })
        .strict()
        .refine((p) => p.displayName !== undefined || p.avatar !== undefined, {
          error: 'name displayName or avatar (null clears it)',
        }),
    },
    'profile.get': {
      summary:
        'Profiles of the caller and of users who share a chat with the caller; any other id is answered as not found.',
      params: z.object({ userIds: z.array(idSchema).min(1).max(l.maxGroupMembers) }).strict(),
    },
    'user.block': {
      summary:
        'Block a user: no new direct chat, their direct messages hidden from you, presence and typing hidden both ways; they are not told.',
      params: z.object({ userId: idSchema }).strict(),
    },
    'user.unblock': {
      summary: 'Unblock a user blocked with user.block.',
      params: z.object({ userId: idSchema }).strict(),
    },
    'mls.keypackages.upload': {
      summary:
        "Store MLS KeyPackages of the calling device (docs/e2ee.md): each one checked (suite, the device's credential, signatures, lifetime); one bad package refuses the batch. lastResort replaces the device's last-resort package.",
      params: z
        .object({
          keyPackages: z.array(base64Bytes(16 * 1024, 'an MLSMessage KeyPackage')).max(MAX_KEY_PACKAGE_BATCH),
          lastResort: base64Bytes(16 * 1024, 'an MLSMessage KeyPackage')
            .optional()
            .describe('Handed out when the device has no other left, and kept'),
        })
        .strict()
        .refine((p) => p.keyPackages.length > 0 || p.lastResort !== undefined, {
          error: 'give keyPackages, lastResort or both',
        }),
    },
    'mls.keypackages.count': {
      summary: "The calling device's unclaimed KeyPackages: when to upload more.",
      params: z.object({}).strict(),
    },
    'mls.keypackages.claim': {
      summary:
        'One KeyPackage for every device of a user (oneself, or a user one shares a chat with), each one-time package handed out once; a device with none left gives its last-resort one.',
      params: z.object({ userId: idSchema }).strict(),
    },
    'mls.commit': {
      summary:
        "An MLS Commit (a PublicMessage) for an encrypted chat's group (docs/e2ee.md): the first for the chat's current epoch is stored with the next seq and delivered to every member device; any other is refused (stale_epoch with the current epoch).",
      params: z
        .object({
          chatId,
          commit: base64Bytes(MAX_COMMIT_BYTES, 'an MLSMessage Commit'),
          welcome: base64Bytes(MAX_COMMIT_BYTES, 'an MLSMessage Welcome')
            .optional()
            .describe('With a Commit that adds devices: their Welcome, which they fetch with mls.welcome'),
        })
        .strict(),
    },
    'mls.group': {
      summary:
        "An encrypted chat's group as the server keeps it: the epoch the next Commit is for, each device's leaf, the leaves of users no longer members, which that Commit must remove, and the leaves of revoked devices, which any member may remove.",
      params: z.object({ chatId }).strict(),
    },
    'mls.welcome': {
      summary:
        'The Welcome of the Commit made in an epoch of an encrypted chat, for the calling device if that Commit added it, and the seq of the Commit (read the chat after it).',
      params: z.object({ chatId, epoch: z.number().int().min(0) }).strict(),
    },
    'user.blocked': {
      summary: 'The users the caller blocks, oldest block first.',
      params: z.object({}).strict(),
    },
  } as const
}

export type Operations = ReturnType<typeof operations>
