import { topics } from '@natter/client-sdk/topics'
import type { DeviceIdentity } from './identity.ts'

export { topics }

/**
 * Natter's topic namespace (docs/protocol.md) as rules: which topics a device may subscribe to,
 * publish to, and receive. Every rule names topics exactly: wildcard filters are refused, since
 * a wildcard over a level that holds user or chat ids would reach other people's data.
 */

/** Where refused publishes are sent so that nothing receives them (see broker/hooks.ts). */
export const DROPPED_TOPIC = '$natter/dropped'

export type Refusal =
  | 'wildcard_not_allowed'
  | 'system_topic'
  | 'shared_subscription'
  | 'foreign_topic'
  | 'unknown_topic'
  | 'retain_not_allowed'

export type Decision = { ok: true } | { ok: false; reason: Refusal }

const allow: Decision = { ok: true }
const refuse = (reason: Refusal): Decision => ({ ok: false, reason })

function structural(topic: string): Decision | null {
  if (topic.startsWith('$share/') || topic.startsWith('$queue/')) return refuse('shared_subscription')
  if (topic.startsWith('$')) return refuse('system_topic')
  if (topic.includes('+') || topic.includes('#')) return refuse('wildcard_not_allowed')
  return null
}

/** The user's own topics and the device's own topics, as [topic, may publish, may retain]. */
function ownTopics(who: DeviceIdentity): ReadonlyMap<string, { publish: boolean; subscribe: boolean }> {
  return new Map([
    [topics.inbox(who.userId), { publish: false, subscribe: true }],
    [topics.self(who.userId), { publish: true, subscribe: true }],
    [topics.reply(who.clientId), { publish: false, subscribe: true }],
    [topics.errors(who.clientId), { publish: false, subscribe: true }],
  ])
}

export function canSubscribe(who: DeviceIdentity, filter: string): Decision {
  const s = structural(filter)
  if (s) return s
  const own = ownTopics(who).get(filter)
  if (own?.subscribe) return allow
  return refuse(belongsToSomeoneElse(who, filter) ? 'foreign_topic' : 'unknown_topic')
}

export function canPublish(who: DeviceIdentity, topic: string, retain: boolean): Decision {
  const s = structural(topic)
  if (s) return s
  if (topic.startsWith('req/') && topic.length > 4 && topic.indexOf('/', 4) < 0) {
    return retain ? refuse('retain_not_allowed') : allow
  }
  const own = ownTopics(who).get(topic)
  if (own?.publish) return retain ? refuse('retain_not_allowed') : allow
  return refuse(belongsToSomeoneElse(who, topic) ? 'foreign_topic' : 'unknown_topic')
}

/** A second check at delivery time, so that a subscription can never outlive its right. */
export function canReceive(who: DeviceIdentity, topic: string): boolean {
  return canSubscribe(who, topic).ok
}

function belongsToSomeoneElse(who: DeviceIdentity, topic: string): boolean {
  const [root, a, b] = topic.split('/')
  if (root === 'u') return a !== who.userId
  if (root === 'd') return a !== who.userId || b !== who.deviceId
  return false
}
