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

export function forgetSession(): void {
  sessionStorage.removeItem(KEY)
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

/** Connects the session's client; its outbox lives in IndexedDB, per user and device. */
export async function connectSession(s: Session): Promise<NatterClient> {
  const config = (await (await fetch('/web/config.json')).json()) as { wsUrl: string }
  // Fails fast (with the server's reason) for a name the server refuses.
  await devToken(s.userId)
  const client = await createClient({
    url: config.wsUrl,
    userId: s.userId,
    deviceId: s.deviceId,
    getToken: () => devToken(s.userId),
    outbox: new IndexedDbOutboxStorage(`natter-outbox:${s.userId}/${s.deviceId}`),
    // A ping every 2 s, dropped after 2 s more unanswered: a silent network is noticed within 5 s.
    // A reconnect that gets no answer is given up after 5 s (mqtt.js waits 30 s) and tried again.
    mqtt: { keepalive: 2, connectTimeout: 5000 },
  })
  // For the browser console (and the browser test): the app's client.
  ;(window as unknown as { natter: NatterClient }).natter = client
  return client
}
