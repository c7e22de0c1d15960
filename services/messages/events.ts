import type { StoredMessage } from './message-store.ts'
import type { MessageEvent } from './wire.ts'

/** A stored message as clients see it on their inbox. */
export function toEvent(m: StoredMessage, type: MessageEvent['type'] = 'message'): MessageEvent {
  const e: MessageEvent = {
    type,
    chatId: m.chatId,
    seq: m.seq,
    clientMsgId: m.clientMsgId,
    senderId: m.senderId,
    deviceId: m.deviceId,
    at: m.at,
    kind: m.kind,
    text: m.text,
    editedAt: m.editedAt,
    deletedAt: m.deletedAt,
  }
  const body = m.body as {
    media?: string[]
    replyTo?: number
    event?: Record<string, unknown>
    ciphertext?: string
  }
  if (body.media?.length) e.media = body.media
  if (body.replyTo !== undefined) e.replyTo = body.replyTo
  if (body.ciphertext !== undefined) e.ciphertext = body.ciphertext
  if (body.event) e.event = body.event
  return e
}
