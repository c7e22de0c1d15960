import type { ChatMessage } from './timeline.ts'

/** Who did it, where and when: every membership event has these. */
interface MembershipBase {
  chatId: string
  seq: number
  /** The member who made the change (senderId); '' when the operator did (an account erase). */
  by: string
  /** ms since the epoch. */
  at: number
}

/**
 * A membership event of a chat's history (a message of kind `event`, docs/protocol.md#chats),
 * typed: what a UI shows as "alice added bob", "amy left; bob is now admin", "alice renamed the
 * group to Trip". `promoted` is the member made admin because the last admin went (null: nobody).
 */
export type MembershipEvent = MembershipBase &
  (
    | { type: 'chat_created'; members: string[]; name: string | null }
    | { type: 'members_added'; userIds: string[] }
    | { type: 'member_removed'; userId: string; promoted: string | null }
    | { type: 'member_left'; userId: string; promoted: string | null }
    | { type: 'member_role'; userId: string; role: 'admin' | 'member'; promoted: string | null }
    | { type: 'chat_renamed'; name: string; previous: string | null }
  )

const ids = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [])
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null)

/**
 * The membership event a message carries, typed; null for a text message, or an event of a type
 * or shape this SDK does not know (a newer server's: show it as a generic change).
 */
export function membershipEvent(m: ChatMessage): MembershipEvent | null {
  if (m.kind !== 'event' || !m.event) return null
  const e = m.event
  const base: MembershipBase = { chatId: m.chatId, seq: m.seq, by: m.senderId, at: m.at }
  const userId = str(e.userId)
  switch (e.type) {
    case 'chat_created':
      return { ...base, type: 'chat_created', members: ids(e.members), name: str(e.name) }
    case 'members_added':
      return { ...base, type: 'members_added', userIds: ids(e.userIds) }
    case 'member_removed':
    case 'member_left':
      return userId === null ? null : { ...base, type: e.type, userId, promoted: str(e.promoted) }
    case 'member_role':
      return userId === null || (e.role !== 'admin' && e.role !== 'member')
        ? null
        : { ...base, type: 'member_role', userId, role: e.role, promoted: str(e.promoted) }
    case 'chat_renamed': {
      const name = str(e.name)
      return name === null ? null : { ...base, type: 'chat_renamed', name, previous: str(e.previous) }
    }
    default:
      return null
  }
}
