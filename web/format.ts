import type { ChatMessage } from '../client-sdk/src/index.ts'

/** A message's time: hours and minutes today, else the date too. */
export function timeOf(at: number, now = Date.now()): string {
  const d = new Date(at)
  const today = new Date(now).toDateString() === d.toDateString()
  const hm = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
  return today ? hm : `${d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${hm}`
}

/** A chat list time: hours and minutes today, else the date. */
export function shortTimeOf(at: number, now = Date.now()): string {
  const d = new Date(at)
  return new Date(now).toDateString() === d.toDateString()
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
}

const ids = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [])

/**
 * A membership event in words (docs/protocol.md#chats: members_added carries userIds; a member
 * who left or was removed, or an admin who stepped down, may have made another admin: `promoted`).
 */
export function describeEvent(m: ChatMessage, nameOf: (userId: string) => string): string {
  const e = m.event ?? {}
  const who = nameOf(m.senderId)
  const promoted = typeof e.promoted === 'string' ? `; ${nameOf(e.promoted)} is now an admin` : ''
  switch (e.type) {
    case 'chat_created':
      // Direct chats' ids start with d_, encrypted ones' with e_d. (docs/e2ee.md §1).
      return !m.chatId.startsWith('d_') && !m.chatId.startsWith('e_d.')
        ? `${who} created the group${typeof e.name === 'string' ? ` “${e.name}”` : ''}`
        : `${who} started the chat`
    case 'members_added':
      return `${who} added ${ids(e.userIds).map(nameOf).join(', ')}`
    case 'member_removed':
      return `${who} removed ${nameOf(String(e.userId ?? ''))}${promoted}`
    case 'member_left':
      return `${nameOf(String(e.userId ?? m.senderId))} left${promoted}`
    case 'member_role':
      return e.role === 'admin'
        ? `${who} made ${nameOf(String(e.userId ?? ''))} an admin${promoted}`
        : `${who} made ${nameOf(String(e.userId ?? ''))} a member, not an admin${promoted}`
    case 'mls_commit':
      // The first Commit (epoch 0) opens the group's encryption (docs/e2ee.md §3).
      return e.epoch === 0 ? 'End-to-end encryption set up' : 'Encryption keys changed'
    case 'mls_device_revoked':
      return `${nameOf(String(e.userId ?? ''))} signed out of a device`
    case 'chat_renamed':
      return `${who} renamed the group to “${typeof e.name === 'string' ? e.name : ''}”`
    default:
      return typeof e.type === 'string' ? e.type : 'event'
  }
}

/**
 * Whether the message is an encrypted chat's key bookkeeping (a Commit, or a revoked device the
 * next Commit removes: docs/e2ee.md §3, §5): shown only as the devices-changed notice the Commit
 * brings, never as a line of its own or as a chat's last message.
 */
export function isKeyEvent(m: ChatMessage): boolean {
  const type = m.event?.type
  return type === 'mls_commit' || type === 'mls_device_revoked'
}

/**
 * How the user came to be out of a chat, read from the timeline kept when they were
 * (ChatState.messages once `removed`): the last member_removed or member_left event naming them,
 * with who removed them (the event's sender), or null when the timeline holds none (a removal
 * learnt from the chat list after a reconnect).
 */
export function departureOf(
  messages: readonly ChatMessage[],
  me: string,
): { left: boolean; by: string } | null {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as ChatMessage
    const type = m.event?.type
    if (m.kind === 'event' && (type === 'member_removed' || type === 'member_left') && m.event?.userId === me)
      return { left: type === 'member_left', by: m.senderId }
  }
  return null
}

/** Users named in a membership event (for loading their names). */
export function usersOf(m: ChatMessage): string[] {
  const e = m.event ?? {}
  return [
    m.senderId,
    ...ids(e.members),
    ...ids(e.userIds),
    ...(typeof e.userId === 'string' ? [e.userId] : []),
    ...(typeof e.promoted === 'string' ? [e.promoted] : []),
  ]
}

/** One line about a message, for chat list previews and reply quotes. */
export function previewOf(m: ChatMessage, nameOf: (userId: string) => string): string {
  if (m.deletedAt !== null) return 'Message deleted'
  if (m.kind === 'event') return describeEvent(m, nameOf)
  if (m.text) return m.text.replace(/\s+/g, ' ')
  // An encrypted message names its files' kinds inside it; a plaintext one holds media ids only,
  // whose kind is known once each is loaded.
  const kinds = m.encryptedMedia?.map((e) => e.kind)
  if (kinds?.length && kinds.every((k) => k === 'image'))
    return kinds.length > 1 ? `${kinds.length} photos` : 'Photo'
  if (kinds?.length === 1 && kinds[0] !== 'file') return kinds[0] === 'video' ? 'Video' : 'Audio'
  if (m.media?.length) return m.media.length > 1 ? `${m.media.length} attachments` : 'Attachment'
  // An encrypted chat's message this device has not read (or cannot: docs/e2ee.md §9).
  if (m.undecryptable === 'not read on this device yet') return 'Encrypted message'
  if (m.undecryptable !== undefined) return 'Message not readable on this device'
  if (m.chatId.startsWith('e_')) return 'Encrypted message'
  return ''
}
