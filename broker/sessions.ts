import type { Client } from 'aedes'
import type { DeviceIdentity } from '../services/auth/identity.ts'

export interface Session {
  who: DeviceIdentity
  tokenExpiresAt: number
  expiryTimer?: NodeJS.Timeout
}

// setTimeout holds at most 2^31-1 ms (about 24.8 days); longer tokens re-arm.
const MAX_TIMER_MS = 2 ** 31 - 1

/** The authenticated identity behind each connected client, and its token-expiry timer. */
export class Sessions {
  readonly #byClient = new WeakMap<Client, Session>()

  get(client: Client | null | undefined): Session | undefined {
    return client ? this.#byClient.get(client) : undefined
  }

  start(client: Client, session: Session, onExpiry: (client: Client) => void): void {
    this.end(client)
    this.#byClient.set(client, session)
    const arm = () => {
      const left = session.tokenExpiresAt - Date.now()
      if (left <= 0) return onExpiry(client)
      session.expiryTimer = setTimeout(arm, Math.min(left, MAX_TIMER_MS))
      session.expiryTimer.unref()
    }
    arm()
  }

  end(client: Client): void {
    const s = this.#byClient.get(client)
    if (s?.expiryTimer) clearTimeout(s.expiryTimer)
    this.#byClient.delete(client)
  }
}
