import type { Logger } from 'pino'
import { NatterError } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestContext, RequestRouter } from '../requests/router.ts'
import type { KeyPackageCount, KeyPackageStore, NewKeyPackage } from './key-package-store.ts'
import { checkKeyPackage, leafIdentity, MlsProblem } from './mls-codec.ts'

/** A KeyPackage as mls.keypackages.claim answers it. */
export interface ClaimedView {
  deviceId: string
  /** The MLSMessage bytes, base64. */
  keyPackage: string
  /** The device's last-resort package (it had no other left). */
  lastResort: boolean
}

/**
 * The KeyPackage directory's operations (docs/e2ee.md#2-keypackage-directory-built): a device
 * uploads its own KeyPackages, counts them, and any user claims one per device of themselves
 * or of a user they share a chat with.
 */
export class KeyPackageService {
  readonly #store: KeyPackageStore
  readonly #shareChat: (a: string, b: string) => boolean
  readonly #max: number
  readonly #ops: Operations
  readonly #log: Logger

  /**
   * @param d.shareChat whether two users are members of one chat (the membership index)
   * @param d.maxPerDevice one-time packages a device may hold (NATTER_MLS_MAX_KEY_PACKAGES)
   */
  constructor(d: {
    store: KeyPackageStore
    shareChat: (a: string, b: string) => boolean
    maxPerDevice: number
    ops: Operations
    log: Logger
  }) {
    this.#store = d.store
    this.#shareChat = d.shareChat
    this.#max = d.maxPerDevice
    this.#ops = d.ops
    this.#log = d.log
  }

  register(router: RequestRouter): void {
    router.register('mls.keypackages.upload', {
      params: this.#ops['mls.keypackages.upload'].params,
      handle: (ctx, p) => this.upload(ctx, p.keyPackages, p.lastResort),
    })
    router.register('mls.keypackages.count', {
      params: this.#ops['mls.keypackages.count'].params,
      handle: (ctx) => this.#store.count(ctx.who.userId, ctx.who.deviceId, Date.now()),
    })
    router.register('mls.keypackages.claim', {
      params: this.#ops['mls.keypackages.claim'].params,
      handle: (ctx, p) => this.claim(ctx, p.userId),
    })
  }

  /**
   * Checks every package (services/mls/mls-codec.ts checkKeyPackage) and stores them for the
   * calling device. Errors: not_allowed for a caller without an MQTT connection (HTTP's
   * pseudo-device `http` is no MLS member); invalid_key_package naming the first bad package
   * (index, or lastResort) and why, nothing stored; too_many_key_packages when the device would
   * hold more than the cap, nothing stored.
   *
   * @returns how many were new, and what the device holds now
   */
  async upload(
    ctx: RequestContext,
    keyPackages: string[],
    lastResort: string | undefined,
  ): Promise<{ stored: number } & KeyPackageCount> {
    const { userId, deviceId } = ctx.who
    if (!ctx.connected)
      throw new NatterError(
        'not_allowed',
        'KeyPackages belong to a device: upload them over its MQTT connection, not over HTTP',
      )
    const now = Date.now()
    const identity = leafIdentity(userId, deviceId)
    const check = async (b64: string, where: string): Promise<NewKeyPackage> => {
      const bytes = new Uint8Array(Buffer.from(b64, 'base64'))
      try {
        return { ...(await checkKeyPackage(bytes, identity, now)), bytes }
      } catch (err) {
        if (err instanceof MlsProblem)
          throw new NatterError('invalid_key_package', `${where}: ${err.message}`)
        throw err
      }
    }
    const packages: NewKeyPackage[] = []
    for (const [i, b64] of keyPackages.entries()) packages.push(await check(b64, `keyPackages.${i}`))
    const last = lastResort === undefined ? undefined : await check(lastResort, 'lastResort')
    const r = await this.#store.add({
      userId,
      deviceId,
      packages,
      ...(last ? { lastResort: last } : {}),
      max: this.#max,
      now,
    })
    if ('overCap' in r)
      throw new NatterError(
        'too_many_key_packages',
        `this device holds ${r.overCap} KeyPackages; with ${packages.length} more it would pass the cap of ${this.#max}`,
      )
    this.#log.info({ event: 'mls_key_packages_uploaded', userId, deviceId, stored: r.stored, count: r.count })
    return r
  }

  /**
   * One KeyPackage per device of `userId` that has one (ordered by deviceId), each one-time
   * package handed out once. A user the caller shares no chat with (and is not) is answered as
   * one with no packages: the directory tells strangers nothing and they cannot drain it.
   */
  async claim(ctx: RequestContext, userId: string): Promise<{ keyPackages: ClaimedView[] }> {
    const me = ctx.who.userId
    if (userId !== me && !this.#shareChat(me, userId)) return { keyPackages: [] }
    const claimed = await this.#store.claim(userId, Date.now())
    this.#log.info({
      event: 'mls_key_packages_claimed',
      userId,
      by: me,
      devices: claimed.length,
      lastResort: claimed.filter((c) => c.lastResort).length,
    })
    return {
      keyPackages: claimed.map((c) => ({
        deviceId: c.deviceId,
        keyPackage: Buffer.from(c.bytes).toString('base64'),
        lastResort: c.lastResort,
      })),
    }
  }

  /** A revoked device's packages go: it is never added to a chat again. */
  forgetDevice(userId: string, deviceId: string): Promise<number> {
    return this.#store.removeDevice(userId, deviceId)
  }

  /** Every device's packages but `keep`'s ("log out everywhere else"). */
  forgetOtherDevices(userId: string, keep: string): Promise<number> {
    return this.#store.removeOtherDevices(userId, keep)
  }
}
