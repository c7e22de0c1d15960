import type { Logger } from 'pino'
import type { DeviceIdentity } from '../auth/identity.ts'
import type { DeliveryStore, DeviceRef, Revocation } from '../delivery/delivery-store.ts'
import type { PushStore } from '../push/push-store.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestRouter } from '../requests/router.ts'
import type { RevocationList } from './revocation-list.ts'

/** Why a CONNECT is refused by the device rules (broker/hooks.ts turns it into a CONNACK code). */
export type DeviceRefusal =
  | { reason: 'revoked'; message: string }
  | { reason: 'too_many_devices'; message: string }
  | { reason: 'token_for_other_device'; message: string }
  | { reason: 'account_banned' | 'account_erased'; message: string }

/** One device in the answer of devices.list. Times are ms since the epoch (docs/protocol.md#times). */
/** Forgets what a store holds for one device of a user, or for every device of the user but one. */
export type DeviceForgetter = (
  userId: string,
  which: { deviceId: string } | { except: string },
) => Promise<unknown>

/**
 * Called after a revoke with the user, which devices (one, or every one but `except`), the
 * revoking device and the revoke's time (ms since the epoch).
 */
export type RevokedHandler = (
  userId: string,
  which: { deviceId: string } | { except: string },
  by: string,
  revokedAt: number,
) => Promise<unknown>

export interface DeviceEntry {
  deviceId: string
  firstSeenAt: number
  lastSeenAt: number
  /** A connection of this device was open when last recorded (a node that died leaves it true until its sessions expire). */
  connected: boolean
  /** The device this request came from. */
  current: boolean
  /** The push registration's platform, or null when the device has none. */
  push: 'fcm' | 'apns' | null
}

/**
 * The caller's devices: list, revoke one, revoke every other one ("log out everywhere else"),
 * and the rules a CONNECT must pass: not revoked, a token bound to a device (`did`) used as that
 * device, and at most maxDevices devices per user (NATTER_MAX_DEVICES_PER_USER).
 *
 * A device is a session in the delivery store: it counts against the cap from its first CONNECT
 * until it is revoked or its session expires (NATTER_SESSION_EXPIRY_DAYS). HTTP callers (device
 * `http`) have no session: they neither count nor are refused by the cap.
 */
export class DeviceService {
  readonly #delivery: DeliveryStore
  readonly #push: Pick<PushStore, 'registrations'>
  readonly #forgetPush: (userId: string, deviceId: string) => Promise<boolean>
  readonly #forgetSubscriptions: (d: DeviceRef) => Promise<void>
  readonly #forgetKeyPackages: DeviceForgetter | undefined
  readonly #leaveGroups: RevokedHandler | undefined
  readonly #revocations: RevocationList
  readonly #accounts: { refusal(userId: string): 'banned' | 'erased' | null } | undefined
  readonly #announce: (r: Revocation) => void
  readonly #maxDevices: number
  readonly #ops: Operations
  readonly #log: Logger

  /**
   * @param d.announce applies a revocation on every node: each closes the matching connections
   *   it holds (broker/device-wiring.ts)
   * @param d.forgetSubscriptions removes the device's subscriptions from aedes' persistence
   */
  constructor(d: {
    delivery: DeliveryStore
    push: Pick<PushStore, 'registrations'>
    forgetPush: (userId: string, deviceId: string) => Promise<boolean>
    forgetSubscriptions: (d: DeviceRef) => Promise<void>
    /** Removes MLS KeyPackages (services/mls/): of one device, or of every device but one. */
    forgetKeyPackages?: DeviceForgetter
    /**
     * Tells the encrypted chats whose MLS group holds a revoked device, for their members to
     * remove it (services/mls/commit-service.ts devicesRevoked). A failure is logged: the revoke stands.
     */
    leaveGroups?: RevokedHandler
    revocations: RevocationList
    /** Banned and erased accounts (services/accounts/account-list.ts), refused before any device rule. */
    accounts?: { refusal(userId: string): 'banned' | 'erased' | null }
    announce: (r: Revocation) => void
    maxDevices: number
    ops: Operations
    log: Logger
  }) {
    this.#delivery = d.delivery
    this.#push = d.push
    this.#forgetPush = d.forgetPush
    this.#forgetSubscriptions = d.forgetSubscriptions
    this.#forgetKeyPackages = d.forgetKeyPackages
    this.#leaveGroups = d.leaveGroups
    this.#revocations = d.revocations
    this.#accounts = d.accounts
    this.#announce = d.announce
    this.#maxDevices = d.maxDevices
    this.#ops = d.ops
    this.#log = d.log
  }

  /**
   * The device rules of a CONNECT whose token is already verified: null to accept, or why not.
   * The revocation check is in memory; the cap costs one store lookup, only for a device with
   * no session yet (a count of the user's sessions). When the store cannot answer, the device is
   * admitted: the cap bounds resources, it is not a security boundary (revocation, which is, needs
   * no store), and a refused CONNACK stops most clients' reconnects for good (mqtt.js does not
   * reconnect after one), so a short store outage would keep devices off after it ended.
   */
  async admit(
    who: DeviceIdentity,
    token: { issuedAt?: number; deviceId?: string },
  ): Promise<DeviceRefusal | null> {
    const account = this.#accounts?.refusal(who.userId) ?? null
    if (account !== null) return { reason: `account_${account}`, message: `account ${account}` }
    if (token.deviceId !== undefined && token.deviceId !== who.deviceId) {
      return { reason: 'token_for_other_device', message: 'the token names another device (did claim)' }
    }
    if (this.#revocations.isRevoked(who.userId, who.deviceId, token.issuedAt)) {
      return { reason: 'revoked', message: 'this device was revoked: sign in again for a new token' }
    }
    let count: number
    try {
      if (await this.#delivery.session(who)) return null
      count = await this.#delivery.deviceCount(who.userId)
    } catch (err) {
      this.#log.warn(
        {
          event: 'device_cap_unchecked',
          clientId: `${who.userId}/${who.deviceId}`,
          err: (err as Error).message,
        },
        'store unavailable: device admitted without the cap check',
      )
      return null
    }
    if (count < this.#maxDevices) return null
    return {
      reason: 'too_many_devices',
      message: `too many devices (${count} of ${this.#maxDevices}): revoke one with devices.list and device.revoke`,
    }
  }

  /** Whether an HTTP caller's token (device `http`) was revoked by "log out everywhere else". */
  isRevoked(userId: string, deviceId: string, issuedAt: number | undefined): boolean {
    return this.#revocations.isRevoked(userId, deviceId, issuedAt)
  }

  register(router: RequestRouter): void {
    const ops = this.#ops
    router.register('devices.list', {
      params: ops['devices.list'].params,
      handle: async (ctx) => ({
        devices: await this.list(ctx.who.userId, ctx.who.deviceId, ctx.connected === true),
        max: this.#maxDevices,
      }),
    })
    router.register('device.revoke', {
      params: ops['device.revoke'].params,
      handle: (ctx, p) =>
        p.deviceId !== undefined ? this.#revokeOne(ctx.who, p.deviceId) : this.#revokeOthers(ctx.who),
    })
  }

  async #revokeOne(who: DeviceIdentity, deviceId: string) {
    const revokedAt = Date.now()
    await this.#revoke({ userId: who.userId, deviceId, before: revokedAt, except: null })
    const removed = await this.#forget({ userId: who.userId, deviceId })
    await this.#tellGroups(who, { deviceId }, revokedAt)
    this.#log.info({ event: 'device_revoked', userId: who.userId, deviceId, by: who.deviceId })
    return { deviceId, revokedAt, ...removed }
  }

  /** "Log out everywhere else": every device of the user but the caller's. */
  async #revokeOthers(who: DeviceIdentity) {
    const { userId, deviceId: keep } = who
    const revokedAt = Date.now()
    await this.#revoke({ userId, deviceId: null, before: revokedAt, except: keep })
    const [sessions, registrations] = await Promise.all([
      this.#delivery.devices(userId),
      this.#push.registrations([userId]),
    ])
    const others = new Set([
      ...sessions.map((s) => s.deviceId),
      ...registrations.filter((r) => r.userId === userId).map((r) => r.deviceId),
    ])
    others.delete(keep)
    const revoked = [...others].sort()
    for (const deviceId of revoked) await this.#forget({ userId, deviceId })
    // Also devices whose session is gone but whose KeyPackages are not.
    await this.#forgetKeyPackages?.(userId, { except: keep })
    await this.#tellGroups(who, { except: keep }, revokedAt)
    this.#log.info({ event: 'devices_revoked', userId, kept: keep, count: revoked.length })
    return { kept: keep, revoked, revokedAt }
  }

  /**
   * The user's devices, ordered by deviceId; `current` marks currentDeviceId. `callerConnected`
   * (a request over MQTT): the current device is listed as connected, added if its session's
   * record is not readable yet.
   */
  async list(userId: string, currentDeviceId: string, callerConnected = false): Promise<DeviceEntry[]> {
    const [sessions, registrations] = await Promise.all([
      this.#delivery.devices(userId),
      this.#push.registrations([userId]),
    ])
    const platform = new Map(
      registrations.filter((r) => r.userId === userId).map((r) => [r.deviceId, r.platform]),
    )
    const entries = sessions.map((s) => ({
      deviceId: s.deviceId,
      firstSeenAt: s.firstSeen,
      lastSeenAt: s.lastSeen,
      connected: s.connected,
      current: s.deviceId === currentDeviceId,
      push: platform.get(s.deviceId) ?? null,
    }))
    if (!callerConnected) return entries
    // A device asking over its connection is connected, even before its session's record,
    // written after its CONNACK, can be read: a request right after connecting overtook it.
    const current = entries.find((e) => e.current)
    if (current) {
      current.connected = true
      return entries
    }
    const now = Date.now()
    entries.push({
      deviceId: currentDeviceId,
      firstSeenAt: now,
      lastSeenAt: now,
      connected: true,
      current: true,
      push: platform.get(currentDeviceId) ?? null,
    })
    return entries.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0))
  }

  /** Durable first, so that a node that starts or resyncs meanwhile refuses the device too; then every node cuts it. */
  async #revoke(r: Revocation): Promise<void> {
    await this.#delivery.revoke(r)
    this.#revocations.apply(r)
    this.#announce(r)
  }

  /** After the session is gone (so the device counts as revoked for good): its groups hear of it. */
  async #tellGroups(
    who: DeviceIdentity,
    which: { deviceId: string } | { except: string },
    revokedAt: number,
  ): Promise<void> {
    try {
      await this.#leaveGroups?.(who.userId, which, who.deviceId, revokedAt)
    } catch (err) {
      this.#log.warn(
        { event: 'mls_revoke_unannounced', userId: who.userId, err: (err as Error).message },
        'a revoked device was not announced to its encrypted chats: the next Commit there may still remove it',
      )
    }
  }

  async #forget(d: DeviceRef): Promise<{ sessionRemoved: boolean; pushRemoved: boolean }> {
    const sessionRemoved = await this.#delivery.remove(d)
    await this.#forgetSubscriptions(d)
    const pushRemoved = await this.#forgetPush(d.userId, d.deviceId)
    await this.#forgetKeyPackages?.(d.userId, { deviceId: d.deviceId })
    return { sessionRemoved, pushRemoved }
  }
}
