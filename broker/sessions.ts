import type { Client } from 'aedes'
import type { DeviceIdentity } from '../services/auth/identity.ts'

export interface Session {
  who: DeviceIdentity
  /** When the connection's token expires, ms since the epoch. */
  tokenExpiresAt: number
}

/** Expiries are checked once a second: a connection closes at most this long after its token expires. */
const TICK_MS = 1000

/**
 * The authenticated identity behind each connected client, and the end of its token. One timer
 * for every connection, ticking while any is connected, closes those whose token has expired
 * (a timer per connection cost memory on every idle connection).
 */
export class Sessions {
  readonly #byClient = new WeakMap<Client, Session>()
  /** Clients by the second their token expires in (ms / 1000, rounded up). */
  readonly #expiring = new Map<number, Set<Client>>()
  #checkedUpTo = Math.floor(Date.now() / TICK_MS)
  #ticker: NodeJS.Timeout | undefined
  readonly #onExpiry: (client: Client) => void

  /** @param onExpiry called with a client once its token has expired (within a second) */
  constructor(onExpiry: (client: Client) => void) {
    this.#onExpiry = onExpiry
  }

  /** The session of a connected client, undefined before it authenticated or after it left. */
  get(client: Client | null | undefined): Session | undefined {
    return client ? this.#byClient.get(client) : undefined
  }

  /**
   * Records an authenticated client; the expiry callback is called with it once its token has
   * expired (within a second), unless it ended before. A token already expired calls it at once.
   */
  start(client: Client, session: Session): void {
    this.end(client)
    this.#byClient.set(client, session)
    if (session.tokenExpiresAt <= Date.now()) {
      this.#onExpiry(client)
      return
    }
    const second = Math.ceil(session.tokenExpiresAt / TICK_MS)
    let due = this.#expiring.get(second)
    if (!due) {
      due = new Set()
      this.#expiring.set(second, due)
    }
    due.add(client)
    if (!this.#ticker) {
      this.#checkedUpTo = Math.floor(Date.now() / TICK_MS)
      this.#ticker = setInterval(() => this.#tick(), TICK_MS)
      this.#ticker.unref()
    }
  }

  /** The client left: it is forgotten. */
  end(client: Client): void {
    const s = this.#byClient.get(client)
    if (!s) return
    this.#byClient.delete(client)
    const second = Math.ceil(s.tokenExpiresAt / TICK_MS)
    const due = this.#expiring.get(second)
    due?.delete(client)
    if (due?.size === 0) this.#expiring.delete(second)
    if (this.#expiring.size === 0) this.#stop()
  }

  #tick(): void {
    const now = Math.floor(Date.now() / TICK_MS)
    // Every second since the last tick, so a slow tick misses none (after a long gap, such as
    // a clock stepped forward, the due seconds are found from the map instead); a clock
    // stepped back checks nothing until it catches up.
    const seconds =
      now - this.#checkedUpTo <= this.#expiring.size
        ? Array.from({ length: now - this.#checkedUpTo }, (_, i) => this.#checkedUpTo + 1 + i)
        : [...this.#expiring.keys()].filter((s) => s <= now)
    for (const s of seconds) {
      const due = this.#expiring.get(s)
      if (!due) continue
      this.#expiring.delete(s)
      for (const client of due) this.#onExpiry(client)
    }
    this.#checkedUpTo = Math.max(this.#checkedUpTo, now)
    if (this.#expiring.size === 0) this.#stop()
  }

  #stop(): void {
    clearInterval(this.#ticker)
    this.#ticker = undefined
  }
}
