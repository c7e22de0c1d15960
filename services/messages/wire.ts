import { z } from 'zod'
import { ID_PATTERN } from '../auth/identity.ts'
import { characters, MAX_CODE_POINTS_PER_CHARACTER } from '../text/graphemes.ts'

/** Payloads on the wire, validated where they enter (docs/protocol.md shows them as JSON Schema). */

/** User, device and chat ids: ASCII only, so their length in characters is their length in bytes. */
export const idSchema = z.string().regex(ID_PATTERN, { error: 'expected 1-64 letters, digits or . _ @ : -' })

/**
 * Message text, of send and edit. Its length is checked by the message service against
 * NATTER_MAX_TEXT_CHARS (a setting, so not here): once, with one error code (too_large). At least
 * one UTF-16 unit is at least one character.
 */
export const messageTextSchema = z
  .string()
  .min(1)
  .describe(
    `1 to NATTER_MAX_TEXT_CHARS (default 4,000) characters (user-perceived: grapheme clusters, UAX #29) of at most ${MAX_CODE_POINTS_PER_CHARACTER} code points each`,
  )

/**
 * The largest MLS PrivateMessage of an encrypted chat, in bytes: a 4,000-character text is at
 * most 16,000 bytes of UTF-8, plus what the client puts beside it (media keys, a reply) and MLS'
 * framing and padding.
 */
export const MAX_CIPHERTEXT_BYTES = 64 * 1024

/** c/<chatId>/send */
export const sendSchema = z
  .object({
    clientMsgId: characters({ min: 1, max: 64 }, 'The device’s own id for the message'),
    text: messageTextSchema.optional(),
    media: z
      .array(characters({ min: 1, max: 128 }, 'A mediaId from media.begin'))
      .max(10)
      .optional(),
    replyTo: z.number().int().positive().optional(),
    ciphertext: z
      .base64({ error: 'expected the MLS PrivateMessage as base64' })
      .max(Math.ceil(MAX_CIPHERTEXT_BYTES / 3) * 4, {
        error: `ciphertext is over ${MAX_CIPHERTEXT_BYTES} bytes`,
      })
      .optional()
      .describe(
        'Encrypted chats only, instead of text (docs/e2ee.md): an MLS PrivateMessage of the chat’s group, base64',
      ),
  })
  .strict()
  .describe(
    'c/<chatId>/send (QoS 1): a chat message, with text or media (or, in an encrypted chat, ciphertext); PUBACK once it is stored',
  )
  .refine((s) => s.text !== undefined || (s.media?.length ?? 0) > 0 || s.ciphertext !== undefined, {
    error: 'a message needs text or media',
  })
export type SendPayload = z.infer<typeof sendSchema>

/** c/<chatId>/typing, as a device sends it. */
export const typingSchema = z
  .object({ state: z.enum(['typing', 'stopped']) })
  .strict()
  .describe('c/<chatId>/typing (QoS 0), as a device sends it')

// What the server sends. Schemas rather than bare types, so docs/schemas.md can show them.

export const messageEventSchema = z
  .object({
    type: z.enum(['message', 'edit', 'delete']),
    chatId: z.string(),
    seq: z.number().int().positive().describe('Per-chat sequence number, from 1'),
    clientMsgId: z.string(),
    senderId: z.string(),
    deviceId: z.string(),
    at: z.number().int().describe('Server time of acceptance, ms since the epoch'),
    kind: z.enum(['text', 'event']),
    text: z.string().nullable(),
    media: z.array(z.string()).optional(),
    replyTo: z.number().int().positive().optional(),
    ciphertext: z
      .string()
      .optional()
      .describe('Encrypted chats: the MLS PrivateMessage, base64; text is null (docs/e2ee.md)'),
    event: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        'For kind "event": {type: chat_created|members_added|member_removed|member_left|member_role|chat_renamed|mls_commit|mls_device_revoked, …}',
      ),
    editedAt: z.number().int().nullable(),
    deletedAt: z.number().int().nullable().describe('Set on a tombstone: text is null and media gone'),
  })
  .describe('u/<userId>/inbox: a chat message, an edit of one, or its deletion')
export type MessageEvent = z.infer<typeof messageEventSchema>

export const receiptEventSchema = z
  .object({
    type: z.literal('receipt'),
    chatId: z.string(),
    userId: z.string().describe('Who received or read'),
    kind: z.enum(['delivered', 'read']),
    seq: z.number().int().positive().describe('Everything up to and including this seq'),
  })
  .describe("u/<userId>/inbox: another member's delivered or read cursor moved past messages this user sent")
export type ReceiptEvent = z.infer<typeof receiptEventSchema>

export const profileEventSchema = z
  .object({
    type: z.literal('profile'),
    userId: z.string().describe('Whose profile changed'),
    displayName: z.string().nullable(),
    avatar: z.string().nullable().describe('A mediaId: media.get gives its URLs'),
    updatedAt: z.number().int().describe('ms since the epoch'),
  })
  .describe(
    "u/<userId>/inbox: a chat partner's (or the user's own) profile changed; live only, not stored: a device that was offline reads profiles with profile.get",
  )
export type ProfileEvent = z.infer<typeof profileEventSchema>

export const typingEventSchema = z
  .object({
    userId: z.string(),
    deviceId: z.string(),
    state: z.enum(['typing', 'stopped']),
    expiresInMs: z.number().int().describe('Drop the indicator after this long without a new one'),
  })
  .describe('c/<chatId>/typing, as members receive it (stamped by the server)')
export type TypingEvent = z.infer<typeof typingEventSchema>

export const presenceEventSchema = z
  .object({
    userId: z.string(),
    online: z.boolean(),
    lastSeenAt: z
      .number()
      .int()
      .describe('When the user was last connected (now, while online), ms since the epoch'),
    lastSeen: z
      .string()
      .describe('Deprecated: lastSeenAt as an ISO 8601 string, kept for clients written before lastSeenAt'),
  })
  .describe('u/<userId>/presence, retained, written by the server only')
export type PresenceEvent = z.infer<typeof presenceEventSchema>
