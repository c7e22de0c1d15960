import type { DeviceIdentity } from '../auth/identity.ts'
import { type TypingEvent, typingSchema } from './wire.ts'

export type TypingOutcome =
  | { ok: true; payload: Buffer }
  | { ok: false; reason: 'bad_request' | 'rate_limited' }

/**
 * Typing indicators: validated, stamped with who is typing (a client cannot speak for
 * another), and rate-limited per device and chat. Never stored.
 */
export class TypingGate {
  readonly #minIntervalMs: number
  readonly #expiresInMs: number
  readonly #last = new Map<string, number>()

  constructor(o: { minIntervalMs: number; expiresInMs: number }) {
    this.#minIntervalMs = o.minIntervalMs
    this.#expiresInMs = o.expiresInMs
  }

  check(who: DeviceIdentity, chatId: string, payload: Buffer, now = Date.now()): TypingOutcome {
    let json: unknown
    try {
      json = JSON.parse(payload.toString('utf8'))
    } catch {
      return { ok: false, reason: 'bad_request' }
    }
    const parsed = typingSchema.safeParse(json)
    if (!parsed.success) return { ok: false, reason: 'bad_request' }
    const key = `${who.clientId}\u0000${chatId}`
    // "stopped" always passes, so an indicator never outlives the typing because of the limit.
    if (parsed.data.state === 'typing' && now - (this.#last.get(key) ?? 0) < this.#minIntervalMs) {
      return { ok: false, reason: 'rate_limited' }
    }
    if (parsed.data.state === 'typing') this.#last.set(key, now)
    else this.#last.delete(key)
    if (this.#last.size > 100_000) this.#prune(now)
    const event: TypingEvent = {
      userId: who.userId,
      deviceId: who.deviceId,
      state: parsed.data.state,
      expiresInMs: this.#expiresInMs,
    }
    return { ok: true, payload: Buffer.from(JSON.stringify(event)) }
  }

  #prune(now: number): void {
    for (const [k, t] of this.#last) if (now - t > this.#minIntervalMs) this.#last.delete(k)
  }
}
