import { createClient, type NatterClient } from '../client-sdk/src/index.ts'
import { IndexedDbOutboxStorage } from '../client-sdk/src/indexeddb-outbox.ts'

/**
 * The signed-in session of this tab, kept in sessionStorage: it survives a reload, and each tab
 * has its own device id, so two tabs of one user are two devices that do not disconnect each other.
 */
export interface Session {
  userId: string
  deviceId: string
}

const KEY = 'natter:session'

export function savedSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Partial<Session> | null
    return s && typeof s.userId === 'string' && typeof s.deviceId === 'string'
      ? { userId: s.userId, deviceId: s.deviceId }
      : null
  } catch {
    return null
  }
}

export function newSession(userId: string): Session {
  const prev = savedSession()
  // The same user signing in again in this tab keeps the tab's device (its outbox, its session).
  const deviceId = prev?.userId === userId ? prev.deviceId : `web-${crypto.randomUUID().slice(0, 8)}`
  const s = { userId, deviceId }
  sessionStorage.setItem(KEY, JSON.stringify(s))
  return s
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

/** The server's answer to /web/config.json: where the WebSocket listens. */
interface WebConfig {
  wsUrl: string
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
    localStorage.setItem(CONFIG_KEY, JSON.stringify({ wsUrl: config.wsUrl }))
    return config
  } catch (e) {
    const kept = JSON.parse(localStorage.getItem(CONFIG_KEY) ?? 'null') as WebConfig | null
    if (kept && typeof kept.wsUrl === 'string') return kept
    throw e
  }
}

/** The `online` listener of each connected client, removed by endSession. */
const onlineListeners = new WeakMap<NatterClient, () => void>()

/**
 * Connects the session's client; its outbox lives in IndexedDB, per user and device.
 *
 * A new sign-in (`resumed` false) must reach the server: a name it refuses, or a server that
 * does not answer, rejects at once (with the server's reason, or a TypeError from fetch) for the
 * sign-in screen to say. A resumed session (a reload of a signed-in tab) starts without the
 * network when it has to (the SDK's `offlineStart`): the chats with messages waiting in the
 * outbox show at once, in state `reconnecting`, and go out once a connection is made.
 */
export async function connectSession(s: Session, resumed = false): Promise<NatterClient> {
  const config = await webConfig()
  // Fails fast (with the server's reason) for a name the server refuses; a network error (a
  // TypeError) is no reason to keep a resumed session from starting offline.
  await devToken(s.userId).catch((e: unknown) => {
    if (!(resumed && e instanceof TypeError)) throw e
  })
  const client = await createClient({
    url: config.wsUrl,
    userId: s.userId,
    deviceId: s.deviceId,
    getToken: () => devToken(s.userId),
    outbox: new IndexedDbOutboxStorage(`natter-outbox:${s.userId}/${s.deviceId}`),
    offlineStart: true,
    // A ping every 2 s, dropped after 1 s more unanswered: a silent network is noticed within
    // 3 s, inside the 5 s the banner has to say so (the SDK's 5 s default takes up to 7.5 s).
    // A reconnect that gets no answer is given up after 5 s and tried again.
    mqtt: { keepalive: 2, connectTimeout: 5000 },
  })
  // The network is back: connect now rather than at the end of the backoff's wait.
  const online = () => client.reconnectNow()
  addEventListener('online', online)
  onlineListeners.set(client, online)
  // For the browser console (and the browser test): the app's client.
  ;(window as unknown as { natter: NatterClient }).natter = client
  return client
}

/** Signs the tab out: forgets the session, stops listening for the network, closes the client. */
export function endSession(client: NatterClient): Promise<void> {
  forgetSession()
  const online = onlineListeners.get(client)
  if (online) removeEventListener('online', online)
  onlineListeners.delete(client)
  return client.close()
}
