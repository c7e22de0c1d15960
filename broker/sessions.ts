import type { Client } from 'aedes'
import type { DeviceIdentity } from '../services/auth/identity.ts'

export interface Session {
  who: DeviceIdentity
  /** When the connection's token expires, ms since the epoch. */
  tokenExpiresAt: number
  /** The token's `iat` in ms, if it had one: device revocations close connections by it. */
  issuedAt?: number | undefined
}

/** Expiries are checked once a second: a connection closes at most this long after its token expires. */
const TICK_MS = 1000

/** The token_expired notice before the close (docs/protocol.md#the-token). */
export interface ExpiryNotice {
  /** How long before the token's exp, in ms; 0: none. */
  beforeMs: number
  /** Called with a client once, beforeMs before its token expires (within a second). */
  send: (client: Client, expiresAt: number) => void
}

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
  readonly #notice: ExpiryNotice | undefined
  /**
   * Clients that connected with less than the notice time left: noticed at the second tick after
   * their CONNECT (the first may come before they subscribed). They also wait in #expiring.
   */
  #noticeNext = new Set<Client>()
  #noticeNow = new Set<Client>()
  /**
   * Clients authenticated that aedes has not registered yet (no `clientReady`). One whose socket
   * closes in between never gets `clientDisconnect` (aedes 1.2 unregisters registered clients
   * only), so the tick ends the sessions of those found closed: without it each kept its
   * Client and socket until its token expired (about 7.7 KB a connection, found by the fuzz
   * test). A set rather than a close listener per socket: the listener cost every connection.
   */
  readonly #connecting = new Set<Client>()

  /**
   * @param onExpiry called with a client once its token has expired (within a second)
   * @param notice a warning sent that long before (a client waits in #expiring at its notice
   *   second, then at its expiry second once warned)
   */
  constructor(onExpiry: (client: Client) => void, notice?: ExpiryNotice) {
    this.#onExpiry = onExpiry
    this.#notice = notice?.beforeMs ? notice : undefined
  }

  /** The session of a connected client, undefined before it authenticated or after it left. */
  get(client: Client | null | undefined): Session | undefined {
    return client ? this.#byClient.get(client) : undefined
  }

  /**
   * Records an authenticated client; the expiry callback is called with it once its token has
   * expired (within a second), unless it ended before, and the notice beforeMs earlier (1-2 s
   * after the CONNECT when less than that is left). A token already expired calls it at once.
   */
  start(client: Client, session: Session): void {
    this.end(client)
    this.#byClient.set(client, session)
    this.#connecting.add(client)
    if (session.tokenExpiresAt <= Date.now()) {
      this.#onExpiry(client)
      return
    }
    // Due first at its notice second, or (no notice) at its expiry second.
    const noticeAt = session.tokenExpiresAt - (this.#notice?.beforeMs ?? 0)
    const late = this.#notice !== undefined && noticeAt <= Date.now()
    if (late) this.#noticeNext.add(client)
    this.#due(client, Math.ceil((late ? session.tokenExpiresAt : noticeAt) / TICK_MS))
    if (!this.#ticker) {
      this.#checkedUpTo = Math.floor(Date.now() / TICK_MS)
      this.#ticker = setInterval(() => this.#tick(), TICK_MS)
      this.#ticker.unref()
    }
  }

  /** aedes registered the client (`clientReady`): from now on its `clientDisconnect` ends it. */
  ready(client: Client): void {
    this.#connecting.delete(client)
  }

  /** The client left: it is forgotten. */
  end(client: Client): void {
    const s = this.#byClient.get(client)
    if (!s) return
    this.#byClient.delete(client)
    this.#connecting.delete(client)
    const seconds = [Math.ceil(s.tokenExpiresAt / TICK_MS)]
    if (this.#notice) {
      seconds.push(Math.ceil((s.tokenExpiresAt - this.#notice.beforeMs) / TICK_MS))
      this.#noticeNext.delete(client)
      this.#noticeNow.delete(client)
    }
    for (const second of seconds) {
      const due = this.#expiring.get(second)
      due?.delete(client)
      if (due?.size === 0) this.#expiring.delete(second)
    }
    if (this.#expiring.size === 0) this.#stop()
  }

  #due(client: Client, second: number): void {
    let due = this.#expiring.get(second)
    if (!due) {
      due = new Set()
      this.#expiring.set(second, due)
    }
    due.add(client)
  }

  #tick(): void {
    for (const client of this.#connecting) if (client.closed) this.end(client)
    const now = Math.floor(Date.now() / TICK_MS)
    if (this.#notice) {
      for (const client of this.#noticeNow) this.#warn(client)
      ;[this.#noticeNow, this.#noticeNext] = [this.#noticeNext, this.#noticeNow]
      this.#noticeNext.clear()
    }
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
      for (const client of due) {
        // Due at its notice second, before its exp: warned, and due again at its expiry second
        // (always a later one: exp is past the current second).
        const expiresAt = this.#byClient.get(client)?.tokenExpiresAt ?? 0
        if (expiresAt <= Date.now()) this.#onExpiry(client)
        else {
          this.#warn(client)
          this.#due(client, Math.ceil(expiresAt / TICK_MS))
        }
      }
    }
    this.#checkedUpTo = Math.max(this.#checkedUpTo, now)
    if (this.#expiring.size === 0) this.#stop()
  }

  #warn(client: Client): void {
    const expiresAt = this.#byClient.get(client)?.tokenExpiresAt ?? 0
    if (expiresAt > Date.now()) this.#notice?.send(client, expiresAt)
  }

  #stop(): void {
    clearInterval(this.#ticker)
    this.#ticker = undefined
  }
}
