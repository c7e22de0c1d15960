import { z } from 'zod'
import { ID_PATTERN } from '../auth/identity.ts'

/** Payloads on the wire, validated where they enter (docs/protocol.md shows them as JSON Schema). */

export const idSchema = z.string().regex(ID_PATTERN, { error: 'expected 1-64 letters, digits or . _ @ : -' })

/** c/<chatId>/send */
export const sendSchema = z
  .object({
    clientMsgId: z.string().min(1).max(64),
    text: z.string().min(1).optional(),
    media: z.array(z.string().min(1).max(128)).max(10).optional(),
    replyTo: z.number().int().positive().optional(),
  })
  .strict()
  .refine((s) => s.text !== undefined || (s.media?.length ?? 0) > 0, {
    error: 'a message needs text or media',
  })
export type SendPayload = z.infer<typeof sendSchema>

/** c/<chatId>/typing, as a device sends it. */
export const typingSchema = z.object({ state: z.enum(['typing', 'stopped']) }).strict()

export interface MessageEvent {
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
  /** For kind "event": what happened (member_added, member_removed, member_left, …). */
  event?: Record<string, unknown>
  editedAt: number | null
  deletedAt: number | null
}

export interface ReceiptEvent {
  type: 'receipt'
  chatId: string
  userId: string
  kind: 'delivered' | 'read'
  /** Everything up to and including this seq. */
  seq: number
}

export interface TypingEvent {
  userId: string
  deviceId: string
  state: 'typing' | 'stopped'
  /** Receivers drop the indicator after this long without a new one. */
  expiresInMs: number
}

export interface PresenceEvent {
  userId: string
  online: boolean
  lastSeen: string
}
