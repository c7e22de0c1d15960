import { createClient, type NatterClient } from '../client-sdk/src/index.ts'
import { IndexedDbOutboxStorage } from '../client-sdk/src/indexeddb-outbox.ts'
// The storage only: the MLS client itself (ts-mls) is a chunk the SDK imports when it starts.
import { IndexedDbMlsStorage } from '../client-sdk/src/mls/indexeddb-storage.ts'
import { claimDevice, dropDevices } from './device-pool.ts'
import { setMaxTextChars } from './text-limit.ts'

/**
 * The signed-in session of this tab, kept in sessionStorage: a reload keeps the tab signed in
 * and asks for the same device id first (its outbox waits there). The device id itself is lent
 * by the user's pool in this browser (device-pool.ts): two tabs open at once never share one,
 * and a closed tab's id goes to the next tab.
 */
export interface Session {
  userId: string
  /** The device this tab had before a reload; absent for a new sign-in. */
  deviceId?: string
}

const KEY = 'natter:session'

export function savedSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Partial<Session> | null
    return s && typeof s.userId === 'string'
      ? { userId: s.userId, ...(typeof s.deviceId === 'string' ? { deviceId: s.deviceId } : {}) }
      : null
  } catch {
    return null
  }
}

/** A new sign-in: the same user signing in again in this tab asks for the tab's device first. */
export function newSession(userId: string): Session {
  const prev = savedSession()
  return prev?.userId === userId ? prev : { userId }
}

/** Forgets the session and what the tab kept of it: the open chat, drafts, chat titles. */
export function forgetSession(): void {
  for (const k of Object.keys(sessionStorage)) if (k.startsWith('natter:')) sessionStorage.removeItem(k)
}

/** A dev token from the embedded default's /dev/token (fetched again at each reconnect that needs one). */
export async function devToken(userId: string): Promise<string> {
  const res = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  })
  const body = (await res.json().catch(() => ({}))) as { token?: string; error?: { message: string } }
  if (!res.ok || !body.token) throw new Error(body.error?.message ?? `no token (${res.status})`)
  return body.token
}

/** The server's answer to /web/config.json: where the WebSocket listens, the text limit. */
interface WebConfig {
  wsUrl: string
  maxTextChars?: number
}

const CONFIG_KEY = 'natter:config'

/**
 * The web config, kept in localStorage: a page reloaded without a network (served from the
 * browser's cache) still knows where to connect. Rejects (a TypeError from fetch) when the
 * server cannot be reached and no config was ever read.
 */
async function webConfig(): Promise<WebConfig> {
  try {
    const config = (await (await fetch('/web/config.json')).json()) as WebConfig
    localStorage.setItem(
      CONFIG_KEY,
      JSON.stringify({ wsUrl: config.wsUrl, maxTextChars: config.maxTextChars }),
    )
    setMaxTextChars(config.maxTextChars)
    return config
  } catch (e) {
    const kept = JSON.parse(localStorage.getItem(CONFIG_KEY) ?? 'null') as WebConfig | null
    if (kept && typeof kept.wsUrl === 'string') {
      setMaxTextChars(kept.maxTextChars)
      return kept
    }
    throw e
  }
}

/** What each connected client holds besides itself: its `online` listener, its device's lock. */
const held = new WeakMap<
  NatterClient,
  { online: () => void; release: () => void; deviceId: string; devices: BroadcastChannel | undefined }
>()

/**
 * Tells this user's other tabs in this browser that a device of theirs is ready for encrypted
 * chats (its KeyPackages uploaded), and adds a device they announce to this device's encrypted
 * chats (`addOwnDevices`). The SDK adds the user's new devices only at its own connects
 * (docs/e2ee.md §6: there is no device-added event from the server), so without this a second tab
 * would read nothing until the first one reconnected.
 */
function announceDevice(client: NatterClient): BroadcastChannel | undefined {
  if (typeof BroadcastChannel === 'undefined') return undefined
  const channel = new BroadcastChannel(`natter-devices:${client.userId}`)
  channel.onmessage = () => {
    client.addOwnDevices().catch(() => {
      // Offline, or a refusal: the SDK checks again at its next connect.
    })
  }
  client
    .keyPackagesReady()
    .then(() => channel.postMessage({ deviceId: client.deviceId }))
    .catch(() => {
      // Not uploaded (offline), or signed out meanwhile (the channel closed): nothing to announce.
    })
  return channel
}

const outboxName = (userId: string, deviceId: string) => `natter-outbox:${userId}/${deviceId}`
/**
 * The IndexedDB database of a device's MLS keys, group states and the messages it read in
 * encrypted chats (docs/e2ee.md §9): the keys belong to the device, so one per pooled device id.
 */
const mlsName = (userId: string, deviceId: string) => `natter-mls:${userId}/${deviceId}`

/**
 * Deletes the MLS keys this browser kept for devices revoked on the server: a revoked device is
 * never added to a group again (its KeyPackages are deleted with it), so its keys and what it
 * read only take room. An open tab still using one (revoked from another tab) blocks the delete
 * until it closes.
 */
function forgetMlsKeys(userId: string, deviceIds: string[]): void {
  for (const d of deviceIds) indexedDB.deleteDatabase(mlsName(userId, d))
}

/**
 * Connects the session's client on a device claimed from the user's pool (device-pool.ts); its
 * outbox lives in IndexedDB, per user and device. The tab's session is saved once connected.
 *
 * A new sign-in (`resumed` false) must reach the server: a name it refuses, or a server that
 * does not answer, rejects at once (with the server's reason, or a TypeError from fetch) for the
 * sign-in screen to say; a user at the server's device cap is rejected with code
 * `connect_failed` (see tooManyDevices). A resumed session (a reload of a signed-in tab) starts
 * without the network when it has to (the SDK's `offlineStart`): the chats with messages waiting
 * in the outbox show at once, in state `reconnecting`, and go out once a connection is made.
 */
export async function connectSession(s: Session, resumed = false): Promise<NatterClient> {
  const config = await webConfig()
  // Fails fast (with the server's reason) for a name the server refuses; a network error (a
  // TypeError) is no reason to keep a resumed session from starting offline.
  await devToken(s.userId).catch((e: unknown) => {
    if (!(resumed && e instanceof TypeError)) throw e
  })
  const connect = async (preferred?: string) => {
    const device = await claimDevice(s.userId, preferred)
    try {
      const client = await createClient({
        url: config.wsUrl,
        userId: s.userId,
        deviceId: device.deviceId,
        getToken: () => devToken(s.userId),
        outbox: new IndexedDbOutboxStorage(outboxName(s.userId, device.deviceId)),
        // Every web device is an MLS client: it uploads KeyPackages at connect, so others can add
        // it to encrypted chats, and it reads and writes those chats like any other.
        mls: { storage: new IndexedDbMlsStorage(mlsName(s.userId, device.deviceId)) },
        offlineStart: true,
        // A ping every 2 s, dropped after 1 s more unanswered: a silent network is noticed within
        // 3 s, inside the 5 s the banner has to say so (the SDK's 5 s default takes up to 7.5 s).
        // A reconnect that gets no answer is given up after 5 s and tried again.
        mqtt: { keepalive: 2, connectTimeout: 5000 },
      })
      return { client, ...device }
    } catch (e) {
      device.release()
      // A pooled id revoked elsewhere (devices.list and device.revoke from another app) refuses
      // every earlier token (CONNACK 4): it leaves the pool, and this tab takes another.
      if (e instanceof Error && e.message.includes('revoked for this device')) {
        dropDevices(s.userId, [device.deviceId])
        forgetMlsKeys(s.userId, [device.deviceId])
      }
      throw e
    }
  }
  const { client, deviceId, release } = await connect(s.deviceId).catch((e: unknown) => {
    if (e instanceof Error && e.message.includes('revoked for this device')) return connect()
    throw e
  })
  sessionStorage.setItem(KEY, JSON.stringify({ userId: s.userId, deviceId }))
  // The network is back: connect now rather than at the end of the backoff's wait.
  const online = () => client.reconnectNow()
  addEventListener('online', online)
  held.set(client, { online, release, deviceId, devices: announceDevice(client) })
  // For the browser console (and the browser test): the app's client.
  ;(window as unknown as { natter: NatterClient }).natter = client
  return client
}

/** Whether a sign-in failed because the user is at the server's device cap (CONNACK 5). */
export function tooManyDevices(e: Error & { code?: string }): boolean {
  return e.code === 'connect_failed' && e.message.includes('too many devices')
}

/**
 * One operation over HTTP (`POST /v1/<op>`, docs/protocol.md#over-http) with a fresh dev token:
 * for what a tab does without (or after) its MQTT connection. Rejects with the server's message.
 */
async function httpOp<T>(userId: string, op: string, params: Record<string, unknown>): Promise<T> {
  const res = await fetch(`/v1/${op}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${await devToken(userId)}` },
    body: JSON.stringify(params),
  })
  const body = (await res.json().catch(() => ({}))) as { result?: T; error?: { message: string } }
  if (!res.ok || body.result === undefined)
    throw new Error(body.error?.message ?? `${op} failed (${res.status})`)
  return body.result
}

/**
 * "Sign out my other web sessions", for a user at the device cap: revokes the user's web chat
 * devices (`web-…`) that are not connected (tabs closed without signing out, other browsers),
 * or, when every one is connected, all of them. Resolves with how many were revoked.
 */
export async function signOutOtherWebSessions(userId: string): Promise<number> {
  const { devices } = await httpOp<{ devices: { deviceId: string; connected: boolean }[] }>(
    userId,
    'devices.list',
    {},
  )
  const web = devices.filter((d) => d.deviceId.startsWith('web-'))
  const idle = web.filter((d) => !d.connected)
  const revoke = (idle.length > 0 ? idle : web).map((d) => d.deviceId)
  for (const deviceId of revoke) await httpOp(userId, 'device.revoke', { deviceId })
  // Revoked ids refuse the tokens issued before: this browser must not lend them again.
  dropDevices(userId, revoke)
  forgetMlsKeys(userId, revoke)
  return revoke.length
}

/** Whether the client has messages, edits or deletes its outbox still means to send (refused ones aside). */
export function hasUnsent(client: NatterClient): boolean {
  return client
    .chats()
    .some((c) => [...client.pending(c.id), ...client.pendingChanges(c.id)].some((i) => !i.failed))
}

/**
 * Signs the tab out: closes the client, revokes its device on the server (`device.revoke`, over
 * HTTP: revoking over the device's own connection closes it before the answer), so that it no
 * longer counts against the device cap, then forgets the device (pool, outbox, MLS keys) and the session.
 * A revoke that fails (no network) keeps the device in the pool for the next tab: its session
 * then ends by expiry, and what its outbox holds still goes out from there.
 */
export async function endSession(client: NatterClient): Promise<void> {
  const h = held.get(client)
  held.delete(client)
  forgetSession()
  if (h) removeEventListener('online', h.online)
  h?.devices?.close()
  await client.close()
  if (!h) return
  const { userId } = client
  try {
    await httpOp(userId, 'device.revoke', { deviceId: h.deviceId })
    dropDevices(userId, [h.deviceId])
    indexedDB.deleteDatabase(outboxName(userId, h.deviceId))
    forgetMlsKeys(userId, [h.deviceId])
  } catch {
    // Kept in the pool (see above).
  }
  h.release()
}
