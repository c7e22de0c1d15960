/**
 * The KeyPackage directory (docs/e2ee.md#2-keypackage-directory-built): per device, one-time
 * KeyPackages and one last-resort package. One interface, a SQLite store (embedded default)
 * and a MongoDB one, held to one contract by test/contract/key-package-store.contract.ts.
 * The bytes are checked before they get here (services/mls/mls-codec.ts); a store records.
 */

/** A checked KeyPackage to store. */
export interface NewKeyPackage {
  /** The KeyPackageRef (RFC 9420 §5.2), hex: unique per device, a second upload of it is skipped. */
  ref: string
  /** The MLSMessage bytes as uploaded. */
  bytes: Uint8Array
  /** The end of its lifetime, ms since the epoch: it is not handed out from then on. */
  notAfter: number
}

/** A package handed out by claim. */
export interface ClaimedKeyPackage {
  deviceId: string
  ref: string
  bytes: Uint8Array
  /** The device's last-resort package, which stays in the directory (handed out again). */
  lastResort: boolean
}

/** What a device has in the directory. */
export interface KeyPackageCount {
  /** One-time packages not claimed and not expired. */
  count: number
  /** Whether it has a last-resort package that is not expired. */
  lastResort: boolean
}

export interface KeyPackageStore {
  /**
   * Stores one device's packages (those whose ref it has are skipped) and, when given, its
   * last-resort package (replacing the one it had), unless the device would then hold more than
   * `max` one-time packages: then nothing is stored and `overCap` is what it holds now. Expired
   * packages of the device are removed first and do not count. Two uploads of one device at the
   * same instant may together pass `max` by one batch (the cap bounds storage, it is not a quota).
   *
   * @param now ms since the epoch
   */
  add(u: {
    userId: string
    deviceId: string
    packages: NewKeyPackage[]
    lastResort?: NewKeyPackage
    max: number
    now: number
  }): Promise<({ stored: number } & KeyPackageCount) | { overCap: number }>
  /** The device's unclaimed, unexpired packages. */
  count(userId: string, deviceId: string, now: number): Promise<KeyPackageCount>
  /**
   * One package for every device of the user that has an unexpired one, ordered by deviceId:
   * the oldest one-time package, which is removed and never handed out again (atomic: two
   * claims at the same instant, also through two connections or nodes, never get the same one),
   * else the last-resort package, which stays.
   */
  claim(userId: string, now: number): Promise<ClaimedKeyPackage[]>
  /**
   * Whether the device uploaded the package of this ref: the directory holds it (one-time or
   * last-resort, expired or not) or handed it out. A Commit's Add must carry such a package
   * (services/mls/commit-service.ts), so every leaf's identity is a device that proved it. A
   * revoked device's or an erased user's packages are no longer known.
   */
  uploaded(userId: string, deviceId: string, ref: string): Promise<boolean>
  /** Removes every package of the device (a revoked device); returns how many. */
  removeDevice(userId: string, deviceId: string): Promise<number>
  /** Removes every package of every device of the user but `keep` ("log out everywhere else"). */
  removeOtherDevices(userId: string, keep: string): Promise<number>
  /** Removes every package and claim record of every device of the user (account erase). */
  removeUser(userId: string): Promise<void>
  /**
   * Leaves nothing deleted before this in the store's files (account erase): SQLite truncates
   * its WAL (services/storage/sqlite-checkpoint.ts); MongoDB: nothing to do.
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}

/** The packages whose ref is not in `have`, each ref once, in the order given. */
export function uniqueNew(packages: NewKeyPackage[], have: Set<string>): NewKeyPackage[] {
  const seen = new Set(have)
  return packages.filter((p) => {
    if (seen.has(p.ref)) return false
    seen.add(p.ref)
    return true
  })
}
