import type { Aedes, AedesOptions, AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes'
import type { Logger } from 'pino'
import type { DeviceIdentity } from '../services/auth/identity.ts'
import { parseClientId } from '../services/auth/identity.ts'
import type { TokenVerifier } from '../services/auth/token-verifier.ts'
import { TokenError } from '../services/auth/token-verifier.ts'
import {
  type Access,
  canPublish,
  canReceive,
  canSubscribe,
  chatTopic,
  DROPPED_TOPIC,
} from '../services/auth/topic-acl.ts'
import type { DeviceService } from '../services/devices/device-service.ts'
import { type InKind, outKind, type Telemetry } from '../services/metrics/metrics.ts'
import type { ErrorNotice } from '../services/requests/envelope.ts'
import { useFastPath } from './mqtt-fast-path.ts'
import { PubackOrder } from './puback-order.ts'
import type { RateLimitWiring } from './rate-limit-wiring.ts'
import type { Sessions } from './sessions.ts'

// CONNACK return codes of MQTT 3.1.1. Numbers, not aedes' const enum, which type stripping
// cannot erase.
const IDENTIFIER_REJECTED = 2
const SERVER_UNAVAILABLE = 3
const BAD_USERNAME_OR_PASSWORD = 4
const NOT_AUTHORIZED = 5

type HookSet = Required<
  Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>
>

export interface HookDeps {
  verify: TokenVerifier
  sessions: Sessions
  log: Logger
  /** Sends a notice to the device's error topic. */
  notify: (client: Client, notice: ErrorNotice) => void
  /** Handles a publish to req/<op>; resolves once the reply has been published. */
  handleRequest: (client: Client, packet: PublishPacket) => Promise<void>
  /** Stores a chat message; resolves once it is durable (the PUBACK follows), rejects if the store failed. */
  handleSend: (client: Client, who: DeviceIdentity, chatId: string, packet: PublishPacket) => Promise<void>
  /** Checks a typing indicator; returns the payload to relay, or null to drop it. */
  handleTyping: (client: Client, who: DeviceIdentity, chatId: string, packet: PublishPacket) => Buffer | null
  /** Chat membership, for the topics that depend on it. */
  access: Access
  telemetry: Telemetry
  /** Rate limits of CONNECTs and typing (services/limits/); sends and requests are limited in their handlers. */
  limits: Pick<RateLimitWiring, 'connectFrom' | 'connectOf' | 'typing'>
  /** The device rules of a CONNECT: revoked devices, `did`, the cap on devices per user. */
  devices: Pick<DeviceService, 'admit'>
}

/** A CONNECT over a rate limit, passed down the verification chain. */
class ConnectLimited extends Error {
  readonly limit: string
  constructor(v: { limit: string; waitMs: number }) {
    super(`too many connections (${v.limit.replace(/_/g, ' ')}); try again in ${v.waitMs} ms`)
    this.limit = v.limit
  }
}

function inKind(topic: string): InKind {
  if (topic.startsWith('req/')) return 'request'
  if (topic.startsWith('c/')) return topic.endsWith('/send') ? 'chat' : 'typing'
  return 'self'
}

/**
 * Fits a connection's parser once its CONNECT is accepted.
 *
 * - mqtt-packet's parser keeps the CONNECT packet as its settings for the connection's life: the
 *   token (password) and every field, on every idle connection. It needs only the protocol
 *   version from it (aedes 1.2, mqtt-packet 9), and only reads it: every connection of one
 *   version shares one frozen settings object.
 * - PUBLISH and PUBACK take the fast path (broker/mqtt-fast-path.ts).
 */
function fitParser(client: Client): void {
  const c = client as Client & { version?: number; _parser?: { settings?: object } }
  if (!c._parser) return
  const version = c.version ?? 4
  c._parser.settings = parserSettings(version)
  useFastPath(c._parser, version)
}

const sharedParserSettings = new Map<number, Readonly<{ protocolVersion: number }>>()

/** The parser settings of one protocol version (3, 4 or 5), the same object every time. */
function parserSettings(protocolVersion: number): Readonly<{ protocolVersion: number }> {
  let settings = sharedParserSettings.get(protocolVersion)
  if (!settings) {
    settings = Object.freeze({ protocolVersion })
    sharedParserSettings.set(protocolVersion, settings)
  }
  return settings
}

function connectError(returnCode: number, message: string) {
  return Object.assign(new Error(message), { returnCode })
}

/** The aedes hooks that put Natter's auth and topic rules in front of every packet. */
export function createHooks(d: HookDeps): HookSet {
  // Every QoS 1 publish of a connection is acknowledged in arrival order, whatever its outcome.
  const acks = new PubackOrder()
  // Per address before the token is checked: a flood of CONNECTs costs no JWT verification.
  const verifyWithinLimits = (client: Client, password: Buffer | undefined) =>
    d.limits
      .connectFrom(client)
      .then((over) =>
        over ? Promise.reject(new ConnectLimited(over)) : d.verify(password?.toString('utf8')),
      )
  const authenticate: HookSet['authenticate'] = (client, _username, password, done) => {
    const who = parseClientId(client.id)
    if (!who) {
      d.log.info({ event: 'connect_refused', reason: 'bad_client_id' }, 'connection refused')
      return done(connectError(IDENTIFIER_REJECTED, 'client id must be <userId>/<deviceId>'), false)
    }
    verifyWithinLimits(client, password).then(
      (token) => {
        if (token.userId !== who.userId) {
          d.log.info({ event: 'connect_refused', clientId: client.id, reason: 'client_id_of_other_user' })
          return done(connectError(NOT_AUTHORIZED, 'client id belongs to another user'), false)
        }
        // aedes stores the will before authorizing it; a forbidden will must stop the CONNECT.
        const will = (client as Client & { _will?: PublishPacket | null })._will
        if (will) {
          const decision = canPublish(who, will.topic, will.retain, d.access)
          if (!decision.ok) {
            d.log.info({ event: 'connect_refused', clientId: client.id, reason: `will_${decision.reason}` })
            return done(connectError(NOT_AUTHORIZED, `will topic refused: ${decision.reason}`), false)
          }
        }
        // Per user once the token is good: nobody can use up another user's connects.
        d.limits.connectOf(who.userId).then((over) => {
          if (over) return limited(new ConnectLimited(over))
          // Expired since it was verified: a CONNACK refusal, never a close without one.
          if (token.expiresAt <= Date.now()) {
            d.log.info({ event: 'connect_refused', clientId: client.id, reason: 'expired' })
            return done(connectError(BAD_USERNAME_OR_PASSWORD, 'token expired'), false)
          }
          d.devices.admit(who, token).then(
            (refusal) => {
              if (refusal) {
                d.log.info({ event: 'connect_refused', clientId: client.id, reason: refusal.reason })
                // MQTT 3.1.1 has no code for "too many devices": 5 (not authorized) stops a
                // client's retries, and the SDK says why (docs/protocol.md#devices). A revoked
                // token is a bad password (4), as an expired one is.
                const code = refusal.reason === 'revoked' ? BAD_USERNAME_OR_PASSWORD : NOT_AUTHORIZED
                return done(connectError(code, refusal.message), false)
              }
              d.sessions.start(client, { who, tokenExpiresAt: token.expiresAt, issuedAt: token.issuedAt })
              fitParser(client)
              done(null, true)
            },
            (err: unknown) => {
              d.log.error({ err, clientId: client.id }, 'could not check the device rules')
              done(connectError(SERVER_UNAVAILABLE, 'device rules unavailable'), false)
            },
          )
        })
      },
      (err: unknown) => {
        if (err instanceof ConnectLimited) return limited(err)
        const reason = err instanceof TokenError ? err.problem : 'verify_failed'
        d.log.info({ event: 'connect_refused', clientId: client.id, reason })
        if (!(err instanceof TokenError)) d.log.error({ err }, 'token verification failed unexpectedly')
        done(connectError(BAD_USERNAME_OR_PASSWORD, 'bad token'), false)
      },
    )
    // MQTT 3.1.1 has no "rate exceeded" code; 3 (server unavailable) makes clients back off.
    const limited = (err: ConnectLimited) => {
      d.log.info({ event: 'connect_refused', clientId: client.id, reason: 'rate_limited', limit: err.limit })
      done(connectError(SERVER_UNAVAILABLE, err.message), false)
    }
  }

  const authorizePublish: HookSet['authorizePublish'] = (client, packet, done) => {
    const session = d.sessions.get(client)
    if (!client || !session) {
      // Only aedes itself publishes without a live client: a will of a node that died. Wills were
      // checked at CONNECT, so it passes when its client id still names a user it may write to.
      const who = parseClientId((packet as PublishPacket & { clientId?: string }).clientId ?? '')
      return done(
        who && canPublish(who, packet.topic, packet.retain, d.access).ok ? null : new Error('will refused'),
      )
    }
    const decision = canPublish(session.who, packet.topic, packet.retain, d.access)
    d.telemetry.messageIn(decision.ok ? inKind(packet.topic) : 'refused')
    if (!decision.ok) {
      // MQTT 3.1.1 lets a server either acknowledge an unauthorized PUBLISH or close the
      // connection (MQTT-3.3.5-2). Closing makes a client that retries its unacknowledged
      // QoS 1 packet loop forever, so Natter acknowledges it, delivers it nowhere, and says why
      // on the device's error topic (what mosquitto and EMQX do by default).
      d.log.info({
        event: 'publish_refused',
        clientId: client.id,
        topic: packet.topic,
        reason: decision.reason,
      })
      d.notify(client, {
        topic: packet.topic,
        code: decision.reason === 'retain_not_allowed' ? 'retain_not_allowed' : 'forbidden_topic',
        message: `publish to ${packet.topic} refused: ${decision.reason}`,
      })
      packet.topic = DROPPED_TOPIC
      packet.retain = false
      return acks.now(client, packet.qos, done)
    }
    const sendChat = chatTopic(packet.topic, 'send')
    if (sendChat !== null) {
      const ticket = acks.enter(client, packet.qos)
      return d.handleSend(client, session.who, sendChat, packet).then(
        () => {
          // Stored and fanned out by the send path; the raw packet itself goes nowhere.
          packet.topic = DROPPED_TOPIC
          acks.decided(client, ticket, done)
        },
        (err: unknown) => {
          // No PUBACK when the store failed: the client keeps the message and sends it again.
          if ((err as { code?: string }).code === 'shutting_down') {
            d.log.info({ event: 'send_refused', clientId: client.id, chatId: sendChat }, 'node shutting down')
          } else d.log.error({ err, clientId: client.id, chatId: sendChat }, 'message store write failed')
          acks.decided(client, ticket, done, err instanceof Error ? err : new Error(String(err)))
        },
      )
    }
    const typingChat = chatTopic(packet.topic, 'typing')
    if (typingChat !== null) {
      const payload = d.handleTyping(client, session.who, typingChat, packet)
      if (payload === null) {
        packet.topic = DROPPED_TOPIC
        return acks.now(client, packet.qos, done)
      }
      const ticket = acks.enter(client, packet.qos)
      // Over the typing limits the indicator is dropped, as one within the interval is.
      return d.limits.typing(session.who).then((ok) => {
        if (ok) packet.payload = payload
        else packet.topic = DROPPED_TOPIC
        acks.decided(client, ticket, done)
      })
    }
    if (packet.topic.startsWith('req/')) {
      const ticket = acks.enter(client, packet.qos)
      return d.handleRequest(client, packet).then(
        () => acks.decided(client, ticket, done),
        (err: unknown) => {
          d.log.error({ err, clientId: client.id, topic: packet.topic }, 'request failed')
          d.notify(client, {
            topic: packet.topic,
            code: 'internal',
            message: 'the request failed on the server',
          })
          acks.decided(client, ticket, done)
        },
      )
    }
    acks.now(client, packet.qos, done)
  }

  const authorizeSubscribe: HookSet['authorizeSubscribe'] = (client, sub: Subscription, done) => {
    const session = d.sessions.get(client)
    const decision = session
      ? canSubscribe(session.who, sub.topic, d.access)
      : ({ ok: false, reason: 'no_session' } as const)
    if (!decision.ok) {
      d.log.info({
        event: 'subscribe_refused',
        clientId: client.id,
        topic: sub.topic,
        reason: decision.reason,
      })
      // A null subscription makes aedes answer 0x80 for this filter and keep the connection.
      return done(null, null)
    }
    done(null, sub)
  }

  const authorizeForward: HookSet['authorizeForward'] = (client, packet: AedesPublishPacket) => {
    const session = d.sessions.get(client)
    if (!session || !canReceive(session.who, packet.topic, d.access)) return null
    const kind = outKind(packet.topic)
    if (kind) d.telemetry.messageOut(kind)
    return packet
  }

  return { authenticate, authorizePublish, authorizeSubscribe, authorizeForward }
}

/**
 * Packets the hooks send to DROPPED_TOPIC (refused publishes, and chat sends the send path has
 * already stored and fanned out) leave aedes right after their PUBACK: nothing subscribes to
 * that topic, and aedes' publish pipeline (persistence lookups, the emitter, Redis in a
 * cluster) cost about 9 µs per chat message for nothing (bench/).
 */
export function skipDroppedPublishes(broker: Aedes): void {
  // aedes 1.2 calls publish(packet, client, done) from its handlers; its declarations name
  // only publish(packet, done).
  type Done = (err?: Error) => void
  const target = broker as unknown as { publish(packet: PublishPacket, client: unknown, done?: Done): void }
  const publish = target.publish.bind(target)
  target.publish = (packet, client, done) => {
    if (packet.topic !== DROPPED_TOPIC) return publish(packet, client, done)
    const callback = typeof client === 'function' ? (client as Done) : done
    callback?.()
  }
}
