/**
 * The web chat's device ids, kept per user in localStorage and lent to one tab at a time.
 *
 * The server keeps every device id as a persistent session for `NATTER_SESSION_EXPIRY_DAYS` and
 * refuses a user's device past `NATTER_MAX_DEVICES_PER_USER` (docs/protocol.md#devices), so a
 * new id per tab or sign-in locks the user out after ten. Instead each tab claims an id of the
 * pool with the Web Locks API (`navigator.locks`, held for the tab's life, released by the
 * browser when the tab closes or crashes) and makes a new one only when all are in use; a tab
 * that reuses an id also gets the messages its outbox (IndexedDB) still holds.
 */

const poolKey = (userId: string) => `natter:devices:${userId}`
const lockName = (userId: string, deviceId: string) => `natter-device:${userId}/${deviceId}`

/** A device id claimed by this tab; `release` gives it back to the pool (the lock only). */
export interface ClaimedDevice {
  deviceId: string
  release: () => void
}

/** The user's device ids in this browser, oldest first. */
export function devicePool(userId: string): string[] {
  try {
    const ids = JSON.parse(localStorage.getItem(poolKey(userId)) ?? '[]') as unknown
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : []
  } catch {
    return []
  }
}

function savePool(userId: string, ids: string[]): void {
  localStorage.setItem(poolKey(userId), JSON.stringify([...new Set(ids)]))
}

/** Takes device ids out of the pool for good (revoked on the server: no token connects as them). */
export function dropDevices(userId: string, deviceIds: string[]): void {
  const gone = new Set(deviceIds)
  savePool(
    userId,
    devicePool(userId).filter((d) => !gone.has(d)),
  )
}

/**
 * Takes the named lock: resolves with its release, or null when another tab holds it (at once,
 * or after `waitMs` when given: a reloaded tab may still be letting go of its own).
 */
function tryLock(name: string, waitMs = 0): Promise<(() => void) | null> {
  const locks = navigator.locks
  return new Promise((resolve) => {
    const held = (lock: Lock | null) => {
      if (!lock) {
        resolve(null)
        return undefined
      }
      return new Promise<void>((release) => resolve(() => release()))
    }
    const asked =
      waitMs > 0
        ? locks.request(name, { signal: AbortSignal.timeout(waitMs) }, held)
        : locks.request(name, { ifAvailable: true }, held)
    // An abort (the timeout) rejects the request: another tab has the id.
    asked.catch(() => resolve(null))
  })
}

/**
 * Claims a device id for this tab: `preferred` (the id this tab had before a reload) when it is
 * free, else the first free id of the user's pool, else a new `web-<8 hex>` added to the pool.
 * Two tabs never hold one id at once. Without the Web Locks API (a page not in a secure
 * context), every claim is a new id that is not pooled (the old behaviour: one device per tab).
 */
export async function claimDevice(userId: string, preferred?: string): Promise<ClaimedDevice> {
  const fresh = () => `web-${crypto.randomUUID().slice(0, 8)}`
  if (!navigator.locks) return { deviceId: preferred ?? fresh(), release: () => {} }
  const pool = devicePool(userId)
  if (preferred && pool.includes(preferred)) {
    const release = await tryLock(lockName(userId, preferred), 1000)
    if (release) return { deviceId: preferred, release }
  }
  for (const deviceId of pool) {
    if (deviceId === preferred) continue
    const release = await tryLock(lockName(userId, deviceId))
    if (release) return { deviceId, release }
  }
  const deviceId = fresh()
  // Nobody else knows the id yet, so the lock is free; it is taken before the id is pooled.
  const release = (await tryLock(lockName(userId, deviceId))) ?? (() => {})
  savePool(userId, [...devicePool(userId), deviceId])
  return { deviceId, release }
}
