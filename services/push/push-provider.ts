import type { Logger } from 'pino'
import type { Platform, Registration } from './push-store.ts'

/** One visible notification for one chat on one device: a burst of messages collapses into it. */
export interface PushNotification {
  chatId: string
  /** The newest message it covers. */
  seq: number
  title: string
  body: string
  /** The user's unread messages over all chats, for the app icon. */
  badge: number
  /** Unread messages in this chat. */
  unread: number
}

export type SendResult =
  | { ok: true }
  /** Worth another try later (429, 5xx, a timeout); retryAfterMs when the provider said when. */
  | { ok: false; kind: 'retry'; reason: string; retryAfterMs?: number }
  /** The token is dead (uninstalled app, a token of another app): remove it. */
  | { ok: false; kind: 'invalid_token'; reason: string }
  /** Anything else: this push is dropped, the token kept. */
  | { ok: false; kind: 'failed'; reason: string }

export interface PushProvider {
  /** fcm, apns, or log. */
  readonly name: string
  send(to: Registration, n: PushNotification): Promise<SendResult>
  close(): Promise<void>
}

/**
 * With no provider configured, pushes go to the log, so the flow can be watched while trying
 * Natter: everything but the body's text, of which only the length is logged.
 */
export class LogPushProvider implements PushProvider {
  readonly name = 'log'
  readonly #log: Logger
  readonly #platform: Platform

  constructor(log: Logger, platform: Platform) {
    this.#log = log
    this.#platform = platform
  }

  async send(to: Registration, n: PushNotification): Promise<SendResult> {
    // The body is the message's text (or its hidden form): logs carry its length, never text.
    const { body, ...rest } = n
    this.#log.info(
      {
        event: 'push',
        provider: 'log',
        platform: this.#platform,
        userId: to.userId,
        deviceId: to.deviceId,
        ...rest,
        bodyChars: body.length,
      },
      `push (no ${this.#platform === 'fcm' ? 'FCM' : 'APNs'} credentials configured) to ${to.userId}/${to.deviceId}`,
    )
    return { ok: true }
  }

  async close(): Promise<void> {}
}

/**
 * Exponential backoff with "equal jitter": half of base·2^(attempt-1) (capped) plus a random
 * part up to the other half, so retries spread out but never come sooner than half the step;
 * never before the provider's Retry-After.
 */
export function backoffMs(attempt: number, retryAfterMs = 0, baseMs = 1000, capMs = 300_000): number {
  const step = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.max(retryAfterMs, Math.round(step / 2 + Math.random() * (step / 2)))
}
