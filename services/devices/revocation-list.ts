import type { Revocation } from '../delivery/delivery-store.ts'

interface UserRevocations {
  /** deviceId → tokens issued before this (ms) are refused. */
  devices: Map<string, number>
  /** "Log out everywhere else": every device but `except`. */
  others: { before: number; except: string | null } | null
}

/**
 * Every revocation, in memory: a CONNECT is checked against it without a store lookup, and no
 * packet after the CONNECT is checked at all (a revoked device's connection is closed instead).
 * Loaded from the delivery store at start and kept current by the announcements of
 * device.revoke (one device, or every other one) (broker/device-wiring.ts). Memory: one entry per revoked
 * device or user, never per connection.
 */
export class RevocationList {
  readonly #byUser = new Map<string, UserRevocations>()

  /** Replaces every entry with these (the store's list, at start and at each resync). */
  load(all: Revocation[]): void {
    this.#byUser.clear()
    for (const r of all) this.apply(r)
  }

  /** Adds one revocation; a device keeps the greater `before`, "others" the latest. */
  apply(r: Revocation): void {
    let u = this.#byUser.get(r.userId)
    if (!u) {
      u = { devices: new Map(), others: null }
      this.#byUser.set(r.userId, u)
    }
    if (r.deviceId === null) u.others = { before: r.before, except: r.except }
    else u.devices.set(r.deviceId, Math.max(u.devices.get(r.deviceId) ?? 0, r.before))
  }

  /** Tokens for this device issued before this (ms since the epoch) are refused; 0: none. */
  revokedBefore(userId: string, deviceId: string): number {
    const u = this.#byUser.get(userId)
    if (!u) return 0
    const own = u.devices.get(deviceId) ?? 0
    const others = u.others && u.others.except !== deviceId ? u.others.before : 0
    return Math.max(own, others)
  }

  /**
   * Whether a token issued at issuedAt (ms, from its `iat`: whole seconds) is revoked for this
   * device. A token without `iat` is revoked wherever any revocation applies. The `iat` second
   * of the revoke itself counts as before it: `iat` has no finer resolution, so a token issued in
   * that second cannot be told from one issued just before the revoke.
   */
  isRevoked(userId: string, deviceId: string, issuedAt: number | undefined): boolean {
    const before = this.revokedBefore(userId, deviceId)
    if (before === 0) return false
    if (issuedAt === undefined) return true
    return issuedAt <= Math.floor(before / 1000) * 1000
  }
}
