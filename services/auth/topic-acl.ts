import { clientIdOf, topics } from '../../client-sdk/src/topics.ts'
import type { DeviceIdentity } from './identity.ts'

export { clientIdOf, topics }

/**
 * Natter's topic namespace (docs/protocol.md) as rules: which topics a device may subscribe to,
 * publish to, and receive. Every rule names topics exactly: wildcard filters are refused, since
 * a wildcard over a level that holds user or chat ids would reach other people's data.
 */

/** What the rules need to know about chats; the membership index answers in memory. */
export interface Access {
  isMember(chatId: string, userId: string): boolean
  shareChat(a: string, b: string): boolean
  /**
   * Whether a block between the two users (either way) hides one's presence from the other
   * (services/blocks/). Asked at delivery only: the subscription itself is kept, so that the
   * blocked user is answered as before and is not told.
   */
  eitherBlocks?(a: string, b: string): boolean
}

/** Rules before any chat exists, for callers that have no index. */
export const noChats: Access = { isMember: () => false, shareChat: (a, b) => a === b }

/** Where refused publishes are sent so that nothing receives them (see broker/hooks.ts). */
export const DROPPED_TOPIC = '$natter/dropped'

export type Refusal =
  | 'wildcard_not_allowed'
  | 'system_topic'
  | 'shared_subscription'
  | 'foreign_topic'
  | 'unknown_topic'
  | 'retain_not_allowed'
  | 'not_a_member'
  | 'no_shared_chat'

export type Decision = { ok: true } | { ok: false; reason: Refusal }

const allow: Decision = { ok: true }
const refuse = (reason: Refusal): Decision => ({ ok: false, reason })

function structural(topic: string): Decision | null {
  if (topic.startsWith('$share/') || topic.startsWith('$queue/')) return refuse('shared_subscription')
  if (topic.startsWith('$')) return refuse('system_topic')
  if (topic.includes('+') || topic.includes('#')) return refuse('wildcard_not_allowed')
  return null
}

/** A topic of the form `<prefix><id><suffix>`, spelled as `topics` spells it. */
interface TopicShape {
  prefix: string
  suffix: string
}

function shapeOf(make: (id: string) => string): TopicShape {
  const marker = '\u0000'
  const topic = make(marker)
  const at = topic.indexOf(marker)
  return { prefix: topic.slice(0, at), suffix: topic.slice(at + marker.length) }
}

/** Whether `topic` is `shape` around `id`, compared in place (no string is built). */
function isShape(topic: string, shape: TopicShape, id: string): boolean {
  return (
    topic.length === shape.prefix.length + id.length + shape.suffix.length &&
    topic.startsWith(shape.prefix) &&
    topic.startsWith(id, shape.prefix.length) &&
    topic.endsWith(shape.suffix)
  )
}

/** What a device may do on one of its own topics. */
interface OwnRule {
  shape: TopicShape
  /**
   * Whose id fills the topic: the user's (every device of theirs), or the client id of any device
   * of the user (`d/<userId>/<deviceId>/…`: a device's replies and notices, which every device of
   * the same user may follow, so that a shell's mosquitto_sub can read what its mosquitto_pub
   * asked; the token names the user, who could connect as that device anyway).
   */
  of: 'userId' | 'anyDeviceOfUser'
  publish: boolean
  subscribe: boolean
}

// The user's own topics and the device's own topics. Matched by comparison on every check
// (authorizeForward asks on every delivery): a map of each connection's own topic names cost
// about 400 bytes on every idle connection (bench/, idle).
const OWN_RULES: readonly OwnRule[] = [
  { shape: shapeOf(topics.inbox), of: 'userId', publish: false, subscribe: true },
  { shape: shapeOf(topics.self), of: 'userId', publish: true, subscribe: true },
  { shape: shapeOf(topics.reply), of: 'anyDeviceOfUser', publish: false, subscribe: true },
  { shape: shapeOf(topics.errors), of: 'anyDeviceOfUser', publish: false, subscribe: true },
]

/** Whether `topic` is `shape` around `<userId>/<deviceId>` for some non-empty device id. */
function isDeviceShape(topic: string, shape: TopicShape, userId: string): boolean {
  const start = shape.prefix.length + userId.length + 1
  const end = topic.length - shape.suffix.length
  return (
    end > start &&
    topic.startsWith(shape.prefix) &&
    topic.startsWith(userId, shape.prefix.length) &&
    topic.charCodeAt(start - 1) === 0x2f &&
    topic.endsWith(shape.suffix) &&
    topic.indexOf('/', start) === end
  )
}

/** The rule of one of the device's own topics, or undefined when the topic is none of them. */
function ownRule(who: DeviceIdentity, topic: string): OwnRule | undefined {
  for (const rule of OWN_RULES) {
    if (
      rule.of === 'userId'
        ? isShape(topic, rule.shape, who.userId)
        : isDeviceShape(topic, rule.shape, who.userId)
    )
      return rule
  }
  return undefined
}

/** The chat id of c/<chatId>/<leaf> when leaf is the given one. */
export function chatTopic(topic: string, leaf: 'send' | 'typing'): string | null {
  // Asked several times for every PUBLISH: no split, no array.
  if (!topic.startsWith('c/')) return null
  const slash = topic.indexOf('/', 2)
  if (slash <= 2 || topic.length !== slash + 1 + leaf.length || !topic.endsWith(leaf)) return null
  return topic.slice(2, slash)
}

/** The user id of u/<userId>/presence. */
function presenceOf(topic: string): string | null {
  const parts = topic.split('/')
  return parts.length === 3 && parts[0] === 'u' && parts[2] === 'presence' && parts[1] ? parts[1] : null
}

export function canSubscribe(who: DeviceIdentity, filter: string, access: Access = noChats): Decision {
  const s = structural(filter)
  if (s) return s
  if (ownRule(who, filter)?.subscribe) return allow
  const typingChat = chatTopic(filter, 'typing')
  if (typingChat !== null) return access.isMember(typingChat, who.userId) ? allow : refuse('not_a_member')
  const presenceUser = presenceOf(filter)
  if (presenceUser !== null)
    return access.shareChat(who.userId, presenceUser) ? allow : refuse('no_shared_chat')
  return refuse(belongsToSomeoneElse(who, filter) ? 'foreign_topic' : 'unknown_topic')
}

/**
 * Sends (c/<chatId>/send) pass here whatever the membership: the send path answers a
 * non-member with an error that names the message, which a topic refusal could not.
 */
export function canPublish(
  who: DeviceIdentity,
  topic: string,
  retain: boolean,
  access: Access = noChats,
): Decision {
  const s = structural(topic)
  if (s) return s
  const decision = publishRule(who, topic, access)
  if (decision.ok && retain) return refuse('retain_not_allowed')
  return decision
}

function publishRule(who: DeviceIdentity, topic: string, access: Access): Decision {
  if (topic.startsWith('req/') && topic.length > 4 && topic.indexOf('/', 4) < 0) return allow
  if (chatTopic(topic, 'send') !== null) return allow
  const typingChat = chatTopic(topic, 'typing')
  if (typingChat !== null) return access.isMember(typingChat, who.userId) ? allow : refuse('not_a_member')
  if (ownRule(who, topic)?.publish) return allow
  return refuse(belongsToSomeoneElse(who, topic) ? 'foreign_topic' : 'unknown_topic')
}

/** A second check at delivery time, so that a subscription can never outlive its right. */
export function canReceive(who: DeviceIdentity, topic: string, access: Access = noChats): boolean {
  if (!canSubscribe(who, topic, access).ok) return false
  if (!access.eitherBlocks || !topic.startsWith('u/') || !topic.endsWith('/presence')) return true
  const presenceUser = presenceOf(topic)
  return (
    presenceUser === null || presenceUser === who.userId || !access.eitherBlocks(who.userId, presenceUser)
  )
}

function belongsToSomeoneElse(who: DeviceIdentity, topic: string): boolean {
  const [root, a] = topic.split('/')
  if (root === 'u') return a !== who.userId
  if (root === 'c') return true
  if (root === 'd') return a !== who.userId
  return false
}
