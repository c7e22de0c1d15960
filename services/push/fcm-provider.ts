import type { Agent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { type App, cert, deleteApp, initializeApp } from 'firebase-admin/app'
import { getMessaging, type Messaging } from 'firebase-admin/messaging'
import type { PushNotification, PushProvider, SendResult } from './push-provider.ts'
import type { Registration } from './push-store.ts'

export interface FcmOptions {
  /** Path of the service account JSON (Firebase console → Project settings → Service accounts). */
  credentialsFile: string
  /** Carries every request (OAuth token and FCM); tests pass one that leads to a local endpoint. */
  agent?: Agent
}

const DEAD_TOKEN = new Set([
  'messaging/registration-token-not-registered',
  'messaging/invalid-registration-token',
  'messaging/invalid-argument',
  'messaging/mismatched-credential',
])
const TRANSIENT = new Set([
  'messaging/message-rate-exceeded',
  'messaging/device-message-rate-exceeded',
  'messaging/internal-error',
  'messaging/server-unavailable',
  'messaging/unknown-error',
  'app/network-error',
  'app/network-timeout',
])

interface FcmError {
  code?: string
  message?: string
  httpResponse?: { status?: number; headers?: Record<string, string> }
}

let apps = 0

/**
 * FCM HTTP v1 through firebase-admin, with a service account. Android shows one notification
 * per chat (the tag), and iOS devices registered through FCM get the same collapse id and badge.
 */
export class FcmProvider implements PushProvider {
  readonly name = 'fcm'
  readonly #app: App
  readonly #messaging: Messaging

  constructor(o: FcmOptions) {
    const agent = o.agent ?? new HttpsAgent({ keepAlive: true })
    // The credential is given as a path: given as an object, firebase-admin fetches tokens
    // without the agent.
    this.#app = initializeApp(
      { credential: cert(o.credentialsFile, agent), httpAgent: agent },
      `natter-fcm-${++apps}`,
    )
    this.#messaging = getMessaging(this.#app)
  }

  async send(to: Registration, n: PushNotification): Promise<SendResult> {
    try {
      await this.#messaging.send({
        token: to.token,
        notification: { title: n.title, body: n.body },
        data: { chatId: n.chatId, seq: String(n.seq), unread: String(n.unread) },
        android: {
          priority: 'high',
          collapseKey: n.chatId,
          ttl: 24 * 3600 * 1000,
          notification: { tag: n.chatId, notificationCount: n.badge },
        },
        apns: {
          headers: { 'apns-collapse-id': n.chatId },
          payload: { aps: { badge: n.badge, sound: 'default', threadId: n.chatId } },
        },
      })
      return { ok: true }
    } catch (err) {
      const e = err as FcmError
      const code = e.code ?? 'unknown'
      const reason = `${code}: ${e.message ?? ''}`
      if (DEAD_TOKEN.has(code)) return { ok: false, kind: 'invalid_token', reason }
      if (TRANSIENT.has(code)) {
        const after = Number(e.httpResponse?.headers?.['retry-after'])
        return { ok: false, kind: 'retry', reason, ...(after > 0 ? { retryAfterMs: after * 1000 } : {}) }
      }
      return { ok: false, kind: 'failed', reason }
    }
  }

  async close(): Promise<void> {
    await deleteApp(this.#app)
  }
}
