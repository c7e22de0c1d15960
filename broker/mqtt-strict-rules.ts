/**
 * The MUST-level rules of MQTT 3.1.1 (OASIS Standard, 29 October 2014, with Errata 01) on the
 * syntax of the packets a client sends, checked on raw bytes. aedes 1.2's parser (mqtt-packet 9)
 * lets many of them through; broker/mqtt-strict.ts runs these checks on every packet before
 * aedes sees it, and the connection is closed on the first one broken ([MQTT-4.8.0-1]).
 *
 * Only what the checks need is read: no strings are decoded and nothing is allocated, so a
 * PUBLISH costs a look at its fixed header, topic and packet identifier (bench/strict-mqtt.ts).
 * MQTT 3.1 (protocol name `MQIsdp`, level 3) has the same packet layout and is held to the same
 * rules.
 */

/** A broken rule: why a connection is closed. */
export interface ProtocolViolation {
  /**
   * The normative statement broken, as the specification numbers it (`MQTT-3.3.1-4`).
   * Where the specification defines a packet's layout without a numbered statement (the
   * remaining length of a PUBACK, an empty PINGREQ), it is the general one: a protocol
   * violation closes the connection [MQTT-4.8.0-1], and the reason names the section.
   */
  readonly rule: string
  /** What was wrong, for the log (never any of the packet's content). */
  readonly reason: string
  /**
   * The CONNACK return code to send before closing: only 1 (unacceptable protocol level)
   * [MQTT-3.1.2-2]. Every other broken CONNECT closes without a CONNACK [MQTT-3.1.4-1].
   */
  readonly connack?: number
}

function rule(id: string, reason: string, connack?: number): ProtocolViolation {
  return Object.freeze(connack === undefined ? { rule: id, reason } : { rule: id, reason, connack })
}

// Control packet types (MQTT 3.1.1 §2.2.1, Table 2.1).
export const CONNECT = 1
export const PUBLISH = 3
export const PUBACK = 4
export const PUBREC = 5
export const PUBREL = 6
export const PUBCOMP = 7
export const SUBSCRIBE = 8
export const UNSUBSCRIBE = 10
export const PINGREQ = 12
export const DISCONNECT = 14

const NAMES = [
  'reserved(0)',
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'reserved(15)',
]

/** The name of a packet type from its first byte (`PUBLISH`), for logs. */
export function packetName(first: number): string {
  return NAMES[first >> 4] as string
}

export const VIOLATIONS = {
  notConnectFirst: rule('MQTT-3.1.0-1', 'the first packet must be CONNECT'),
  secondConnect: rule('MQTT-3.1.0-2', 'a second CONNECT on the same connection'),
  // §2.2.1: CONNACK, SUBACK, UNSUBACK and PINGRESP go from server to client only; 0 and 15 are
  // reserved.
  typeNotFromClient: rule('MQTT-4.8.0-1', 'a packet type a client never sends (§2.2.1)'),
  lengthTooLong: rule('MQTT-4.8.0-1', 'remaining length longer than four bytes (§2.2.3)'),
  connectFlags: rule('MQTT-2.2.2-2', 'CONNECT fixed-header flags must be 0000'),
  ackFlags: rule('MQTT-2.2.2-2', 'PUBACK, PUBREC, PUBCOMP and PINGREQ fixed-header flags must be 0000'),
  pubrelFlags: rule('MQTT-3.6.1-1', 'PUBREL fixed-header flags must be 0010'),
  subscribeFlags: rule('MQTT-3.8.1-1', 'SUBSCRIBE fixed-header flags must be 0010'),
  unsubscribeFlags: rule('MQTT-3.10.1-1', 'UNSUBSCRIBE fixed-header flags must be 0010'),
  disconnectFlags: rule('MQTT-3.14.1-1', 'DISCONNECT fixed-header flags must be 0000'),
  ackLength: rule(
    'MQTT-4.8.0-1',
    'PUBACK, PUBREC, PUBREL and PUBCOMP have a remaining length of 2 (§3.4.1–3.7.1)',
  ),
  ackPacketIdZero: rule('MQTT-2.3.1-6', 'an acknowledgement of packet identifier 0, which no PUBLISH has'),
  pingreqLength: rule('MQTT-4.8.0-1', 'PINGREQ has no variable header or payload (§3.12)'),
  disconnectLength: rule('MQTT-4.8.0-1', 'DISCONNECT has no variable header or payload (§3.14)'),

  connectTruncated: rule('MQTT-3.1.4-1', 'CONNECT variable header cut short'),
  protocolName: rule('MQTT-3.1.2-1', 'protocol name is neither MQTT nor MQIsdp'),
  protocolLevel: rule('MQTT-3.1.2-2', 'protocol level not supported (MQTT 3.1.1 and 3.1 only)', 1),
  connectReserved: rule('MQTT-3.1.2-3', 'CONNECT reserved flag set'),
  willQosWithoutWill: rule('MQTT-3.1.2-13', 'will QoS set without the will flag'),
  willQos3: rule('MQTT-3.1.2-14', 'will QoS 3'),
  willRetainWithoutWill: rule('MQTT-3.1.2-15', 'will retain set without the will flag'),
  passwordWithoutUsername: rule('MQTT-3.1.2-22', 'password flag set without the user name flag'),
  clientIdMissing: rule('MQTT-3.1.3-3', 'client identifier missing or cut short'),
  willMissing: rule('MQTT-3.1.2-9', 'will flag set but the will topic or message is missing'),
  willTopicEmpty: rule('MQTT-4.7.3-1', 'empty will topic'),
  willTopicWildcard: rule('MQTT-4.7.1-1', 'wildcard in the will topic (a topic name)'),
  usernameMissing: rule('MQTT-3.1.2-19', 'user name flag set but no user name'),
  passwordMissing: rule('MQTT-3.1.2-21', 'password flag set but no password'),
  connectExcess: rule('MQTT-3.1.4-1', 'bytes after the last CONNECT field'),

  publishQos3: rule('MQTT-3.3.1-4', 'PUBLISH with QoS 3'),
  publishDupQos0: rule('MQTT-3.3.1-2', 'PUBLISH with QoS 0 and DUP 1'),
  topicMissing: rule('MQTT-3.3.2-1', 'PUBLISH topic name missing or cut short'),
  topicEmpty: rule('MQTT-4.7.3-1', 'empty PUBLISH topic name'),
  topicWildcard: rule('MQTT-3.3.2-2', 'wildcard in a PUBLISH topic name'),
  packetIdMissing: rule('MQTT-2.3.1-1', 'packet identifier missing'),
  packetIdZero: rule('MQTT-2.3.1-1', 'packet identifier 0'),

  subscribeEmpty: rule('MQTT-3.8.3-3', 'SUBSCRIBE without a topic filter'),
  unsubscribeEmpty: rule('MQTT-3.10.3-2', 'UNSUBSCRIBE without a topic filter'),
  filterTruncated: rule('MQTT-4.8.0-1', 'topic filter cut short'),
  filterEmpty: rule('MQTT-4.7.3-1', 'empty topic filter'),
  multiLevelWildcard: rule('MQTT-4.7.1-2', "'#' not alone in the last level of a topic filter"),
  singleLevelWildcard: rule('MQTT-4.7.1-3', "'+' not alone in its level of a topic filter"),
  // The specification prints this id as "MQTT-3-8.3-4".
  subscribeOptionsMissing: rule('MQTT-3.8.3-4', 'topic filter without its requested QoS byte'),
  subscribeOptions: rule('MQTT-3.8.3-4', 'requested QoS byte with reserved bits set or QoS 3'),
} as const

// UTF-8 problems per field: [MQTT-1.5.3-1] ill-formed (surrogates included), [MQTT-1.5.3-2] U+0000.
function utf8Rules(field: string) {
  return {
    illFormed: rule('MQTT-1.5.3-1', `ill-formed UTF-8 in the ${field}`),
    nul: rule('MQTT-1.5.3-2', `U+0000 in the ${field}`),
  }
}
const CLIENT_ID = utf8Rules('client identifier')
const WILL_TOPIC = utf8Rules('will topic')
const USERNAME = utf8Rules('user name')
const TOPIC = utf8Rules('topic name')
const FILTER = utf8Rules('topic filter')

// What scanString finds.
const OK = 0
const ILL_FORMED = 1
const NUL = 2
const WILDCARD = 3
const BAD_MULTI_LEVEL = 4
const BAD_SINGLE_LEVEL = 5

// How a string is read: plain text, a topic name (no wildcards), or a topic filter.
const TEXT = 0
const TOPIC_NAME = 1
const TOPIC_FILTER = 2

const SLASH = 0x2f
const PLUS = 0x2b
const HASH = 0x23

/**
 * Checks buf[start, end) as the characters of a UTF-8 encoded string (§1.5.3): well-formed by
 * the Unicode Standard's Table 3-7 (no overlong forms, no surrogates U+D800–U+DFFF, nothing
 * past U+10FFFF) [MQTT-1.5.3-1], no U+0000 [MQTT-1.5.3-2]; a topic name has no wildcard
 * [MQTT-3.3.2-2]; in a topic filter '#' is alone in the last level [MQTT-4.7.1-2] and '+'
 * alone in its level [MQTT-4.7.1-3]. Multi-byte sequences never hold bytes below 0x80, so
 * the wildcard and separator tests read single bytes.
 */
function scanString(buf: Buffer, start: number, end: number, form: number): number {
  let i = start
  while (i < end) {
    const b = buf[i] as number
    if (b < 0x80) {
      if (b === 0) return NUL
      if (b === PLUS || b === HASH) {
        if (form === TOPIC_NAME) return WILDCARD
        if (form === TOPIC_FILTER) {
          const levelStart = i === start || buf[i - 1] === SLASH
          if (b === HASH) {
            if (!levelStart || i + 1 !== end) return BAD_MULTI_LEVEL
          } else if (!levelStart || (i + 1 !== end && buf[i + 1] !== SLASH)) return BAD_SINGLE_LEVEL
        }
      }
      i++
      continue
    }
    if (b < 0xc2) return ILL_FORMED // a continuation byte first, or an overlong 2-byte form
    if (b < 0xe0) {
      if (i + 1 >= end || ((buf[i + 1] as number) & 0xc0) !== 0x80) return ILL_FORMED
      i += 2
      continue
    }
    if (b < 0xf0) {
      if (i + 2 >= end) return ILL_FORMED
      const b1 = buf[i + 1] as number
      // E0 needs A0–BF (else overlong); ED needs 80–9F (else a surrogate).
      const lo = b === 0xe0 ? 0xa0 : 0x80
      const hi = b === 0xed ? 0x9f : 0xbf
      if (b1 < lo || b1 > hi || ((buf[i + 2] as number) & 0xc0) !== 0x80) return ILL_FORMED
      i += 3
      continue
    }
    if (b < 0xf5) {
      if (i + 3 >= end) return ILL_FORMED
      const b1 = buf[i + 1] as number
      // F0 needs 90–BF (else overlong); F4 needs 80–8F (else past U+10FFFF).
      const lo = b === 0xf0 ? 0x90 : 0x80
      const hi = b === 0xf4 ? 0x8f : 0xbf
      if (
        b1 < lo ||
        b1 > hi ||
        ((buf[i + 2] as number) & 0xc0) !== 0x80 ||
        ((buf[i + 3] as number) & 0xc0) !== 0x80
      )
        return ILL_FORMED
      i += 4
      continue
    }
    return ILL_FORMED
  }
  return OK
}

function utf8Violation(found: number, field: { illFormed: ProtocolViolation; nul: ProtocolViolation }) {
  return found === NUL ? field.nul : field.illFormed
}

/**
 * The checks that need only the fixed header: the packet type is one a client sends, the
 * connection's state allows it, the reserved flag bits are as Table 2.2 sets them
 * [MQTT-2.2.2-1], and packets of fixed size have that size.
 *
 * @param first the packet's first byte (type and flags)
 * @param length its remaining length, bytes
 * @param connected whether a CONNECT was already accepted on this connection
 * @returns the broken rule, or null
 */
export function checkFixedHeader(
  first: number,
  length: number,
  connected: boolean,
): ProtocolViolation | null {
  const type = first >> 4
  const flags = first & 0x0f
  if (type === CONNECT) {
    if (connected) return VIOLATIONS.secondConnect
    return flags === 0 ? null : VIOLATIONS.connectFlags
  }
  if (!connected) return VIOLATIONS.notConnectFirst
  switch (type) {
    case PUBLISH: {
      const qos = (flags >> 1) & 3
      if (qos === 3) return VIOLATIONS.publishQos3
      if (qos === 0 && (flags & 0x08) !== 0) return VIOLATIONS.publishDupQos0
      return null
    }
    case PUBACK:
    case PUBREC:
    case PUBCOMP:
      if (flags !== 0) return VIOLATIONS.ackFlags
      return length === 2 ? null : VIOLATIONS.ackLength
    case PUBREL:
      if (flags !== 2) return VIOLATIONS.pubrelFlags
      return length === 2 ? null : VIOLATIONS.ackLength
    case SUBSCRIBE:
      return flags === 2 ? null : VIOLATIONS.subscribeFlags
    case UNSUBSCRIBE:
      return flags === 2 ? null : VIOLATIONS.unsubscribeFlags
    case PINGREQ:
      if (flags !== 0) return VIOLATIONS.ackFlags
      return length === 0 ? null : VIOLATIONS.pingreqLength
    case DISCONNECT:
      if (flags !== 0) return VIOLATIONS.disconnectFlags
      return length === 0 ? null : VIOLATIONS.disconnectLength
    default:
      return VIOLATIONS.typeNotFromClient
  }
}

/**
 * How many body bytes of a PUBLISH its checks read: the topic name and, for QoS 1 and 2, the
 * packet identifier; the payload is the application's and has no syntax. While fewer than
 * two body bytes are at hand the topic's length is not known, and two are asked for.
 *
 * @param first the packet's first byte
 * @param length its remaining length, bytes
 * @param buf bytes holding the body from `start`
 * @param have how many body bytes buf holds
 * @returns body bytes needed, at most `length`
 */
export function publishBytesNeeded(
  first: number,
  length: number,
  buf: Buffer,
  start: number,
  have: number,
): number {
  if (length < 2 || have < 2) return Math.min(length, 2)
  const topicLength = ((buf[start] as number) << 8) | (buf[start + 1] as number)
  const qos = (first >> 1) & 3
  return Math.min(length, 2 + topicLength + (qos > 0 ? 2 : 0))
}

/**
 * The checks on a packet's body, after checkFixedHeader passed. CONNECT, SUBSCRIBE and
 * UNSUBSCRIBE are read whole; PUBLISH only as far as publishBytesNeeded says (buf may end
 * there); the acknowledgements' packet identifier. PINGREQ and DISCONNECT have no body.
 *
 * @param first the packet's first byte
 * @param buf bytes holding the body from `start`
 * @param start where the body starts in buf
 * @param length the remaining length, bytes (the whole body, even where buf holds less of a
 *   PUBLISH)
 * @returns the broken rule, or null
 */
export function checkBody(
  first: number,
  buf: Buffer,
  start: number,
  length: number,
): ProtocolViolation | null {
  switch (first >> 4) {
    case PUBLISH:
      return checkPublish(first, buf, start, length)
    case PUBACK:
    case PUBREC:
    case PUBREL:
    case PUBCOMP:
      return buf[start] === 0 && buf[start + 1] === 0 ? VIOLATIONS.ackPacketIdZero : null
    case SUBSCRIBE:
      return checkFilters(buf, start, start + length, true)
    case UNSUBSCRIBE:
      return checkFilters(buf, start, start + length, false)
    case CONNECT:
      return checkConnect(buf, start, start + length)
    default:
      return null
  }
}

function checkPublish(first: number, buf: Buffer, start: number, length: number): ProtocolViolation | null {
  if (length < 2) return VIOLATIONS.topicMissing
  const topicLength = ((buf[start] as number) << 8) | (buf[start + 1] as number)
  if (topicLength === 0) return VIOLATIONS.topicEmpty
  if (2 + topicLength > length) return VIOLATIONS.topicMissing
  const topicEnd = start + 2 + topicLength
  const found = scanString(buf, start + 2, topicEnd, TOPIC_NAME)
  if (found !== OK) return found === WILDCARD ? VIOLATIONS.topicWildcard : utf8Violation(found, TOPIC)
  if ((first & 0x06) !== 0) {
    if (2 + topicLength + 2 > length) return VIOLATIONS.packetIdMissing
    if (buf[topicEnd] === 0 && buf[topicEnd + 1] === 0) return VIOLATIONS.packetIdZero
  }
  return null
}

function checkFilters(buf: Buffer, start: number, end: number, subscribe: boolean): ProtocolViolation | null {
  if (end - start < 2) return VIOLATIONS.packetIdMissing
  if (buf[start] === 0 && buf[start + 1] === 0) return VIOLATIONS.packetIdZero
  let i = start + 2
  if (i === end) return subscribe ? VIOLATIONS.subscribeEmpty : VIOLATIONS.unsubscribeEmpty
  while (i < end) {
    if (end - i < 2) return VIOLATIONS.filterTruncated
    const filterLength = ((buf[i] as number) << 8) | (buf[i + 1] as number)
    i += 2
    if (filterLength > end - i) return VIOLATIONS.filterTruncated
    if (filterLength === 0) return VIOLATIONS.filterEmpty
    const found = scanString(buf, i, i + filterLength, TOPIC_FILTER)
    if (found !== OK) {
      if (found === BAD_MULTI_LEVEL) return VIOLATIONS.multiLevelWildcard
      if (found === BAD_SINGLE_LEVEL) return VIOLATIONS.singleLevelWildcard
      return utf8Violation(found, FILTER)
    }
    i += filterLength
    if (subscribe) {
      if (i === end) return VIOLATIONS.subscribeOptionsMissing
      // Bits 7–2 reserved, and QoS 3 is malformed.
      const options = buf[i] as number
      if (options > 2) return VIOLATIONS.subscribeOptions
      i++
    }
  }
  return null
}

// "MQTT" and "MQIsdp", the protocol names of 3.1.1 (level 4) and 3.1 (level 3).
function isName(buf: Buffer, at: number, length: number, name: string): boolean {
  if (length !== name.length) return false
  for (let k = 0; k < length; k++) if (buf[at + k] !== name.charCodeAt(k)) return false
  return true
}

function checkConnect(buf: Buffer, start: number, end: number): ProtocolViolation | null {
  let i = start
  if (end - i < 2) return VIOLATIONS.connectTruncated
  const nameLength = ((buf[i] as number) << 8) | (buf[i + 1] as number)
  i += 2
  if (nameLength > end - i) return VIOLATIONS.connectTruncated
  const mqtt = isName(buf, i, nameLength, 'MQTT')
  if (!mqtt && !isName(buf, i, nameLength, 'MQIsdp')) return VIOLATIONS.protocolName
  i += nameLength
  // Level, flags and keep alive.
  if (end - i < 4) return VIOLATIONS.connectTruncated
  const level = buf[i] as number
  // MQTT 5 and anything else is answered CONNACK 1 before its flags are read: their layout
  // may differ. 0x83/0x84 (a bridge's "try private") are not supported either.
  if (level !== (mqtt ? 4 : 3)) return VIOLATIONS.protocolLevel
  const flags = buf[i + 1] as number
  i += 4
  if ((flags & 0x01) !== 0) return VIOLATIONS.connectReserved
  const will = (flags & 0x04) !== 0
  const willQos = (flags >> 3) & 3
  const willRetain = (flags & 0x20) !== 0
  if (!will) {
    if (willQos !== 0) return VIOLATIONS.willQosWithoutWill
    if (willRetain) return VIOLATIONS.willRetainWithoutWill
  } else if (willQos === 3) return VIOLATIONS.willQos3
  const username = (flags & 0x80) !== 0
  const password = (flags & 0x40) !== 0
  if (password && !username) return VIOLATIONS.passwordWithoutUsername

  // Payload: client id, will topic, will message, user name, password, in that order [MQTT-3.1.3-1].
  let n = fieldEnd(buf, i, end)
  if (n < 0) return VIOLATIONS.clientIdMissing
  let s = scanString(buf, i + 2, n, TEXT)
  if (s !== OK) return utf8Violation(s, CLIENT_ID)
  i = n
  if (will) {
    n = fieldEnd(buf, i, end)
    if (n < 0) return VIOLATIONS.willMissing
    if (n === i + 2) return VIOLATIONS.willTopicEmpty
    s = scanString(buf, i + 2, n, TOPIC_NAME)
    if (s !== OK) return s === WILDCARD ? VIOLATIONS.willTopicWildcard : utf8Violation(s, WILL_TOPIC)
    i = fieldEnd(buf, n, end) // the will message: binary
    if (i < 0) return VIOLATIONS.willMissing
  }
  if (username) {
    n = fieldEnd(buf, i, end)
    if (n < 0) return VIOLATIONS.usernameMissing
    s = scanString(buf, i + 2, n, TEXT)
    if (s !== OK) return utf8Violation(s, USERNAME)
    i = n
  }
  if (password) {
    i = fieldEnd(buf, i, end) // binary
    if (i < 0) return VIOLATIONS.passwordMissing
  }
  return i === end ? null : VIOLATIONS.connectExcess
}

/** Where a length-prefixed field starting at i ends, or -1 when it runs past end. */
function fieldEnd(buf: Buffer, i: number, end: number): number {
  if (end - i < 2) return -1
  const n = i + 2 + (((buf[i] as number) << 8) | (buf[i + 1] as number))
  return n > end ? -1 : n
}
