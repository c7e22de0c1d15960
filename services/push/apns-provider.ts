import apn from '@parse/node-apn'
import type { PushNotification, PushProvider, SendResult } from './push-provider.ts'
import type { Registration } from './push-store.ts'

export interface ApnsOptions {
  /** The .p8 key (PEM text or a file path), its key id and the team id. */
  key: string
  keyId: string
  teamId: string
  /** Instead of Apple's hosts: "host" or "host:port" (a gateway, or a local endpoint in tests). */
  address?: string | undefined
  /** Extra trusted certificates (PEM) for that host; NODE_EXTRA_CA_CERTS works too. */
  ca?: string[]
  requestTimeoutMs?: number
}

// Apple answers these for a token that will never work again.
const DEAD_TOKEN = new Set(['BadDeviceToken', 'Unregistered', 'DeviceTokenNotForTopic', 'ExpiredToken'])
const TRANSIENT_STATUS = new Set([403, 408, 429, 500, 502, 503, 504])

/**
 * APNs over HTTP/2 with a token (.p8) through @parse/node-apn: one connection per environment
 * (production, sandbox), opened when first needed. The library's own retries are off, so that
 * every attempt and its backoff is Natter's to count.
 */
export class ApnsProvider implements PushProvider {
  readonly name = 'apns'
  readonly #o: ApnsOptions
  readonly #providers = new Map<'production' | 'sandbox', apn.Provider>()

  constructor(o: ApnsOptions) {
    this.#o = o
  }

  #provider(sandbox: boolean): apn.Provider {
    const env = sandbox ? 'sandbox' : 'production'
    let p = this.#providers.get(env)
    if (!p) {
      const [host, port] = (this.#o.address ?? '').split(':')
      p = new apn.Provider({
        token: { key: this.#o.key, keyId: this.#o.keyId, teamId: this.#o.teamId },
        production: !sandbox,
        ...(host ? { address: host } : {}),
        ...(port ? { port: Number(port) } : {}),
        ...(this.#o.ca ? { ca: this.#o.ca } : {}),
        // Not in the library's types, but read by it: no internal retries, a bounded wait.
        ...({ connectionRetryLimit: 0, requestTimeout: this.#o.requestTimeoutMs ?? 10_000 } as object),
      })
      this.#providers.set(env, p)
    }
    return p
  }

  async send(to: Registration, n: PushNotification): Promise<SendResult> {
    if (!to.apnsTopic)
      return { ok: false, kind: 'failed', reason: 'the registration has no APNs topic (bundle id)' }
    const note = new apn.Notification()
    note.topic = to.apnsTopic
    note.pushType = 'alert'
    note.priority = 10
    note.alert = { title: n.title, body: n.body }
    note.badge = n.badge
    note.sound = 'default'
    // One visible notification per chat: a newer push replaces the older one.
    note.collapseId = n.chatId
    note.threadId = n.chatId
    note.expiry = Math.floor(Date.now() / 1000) + 24 * 3600
    note.payload = { chatId: n.chatId, seq: n.seq, unread: n.unread }
    const result = await this.#provider(to.sandbox).send(note, to.token)
    const failure = result.failed[0]
    if (!failure) return { ok: true }
    const reason = failure.response?.reason ?? failure.error?.message ?? 'unknown'
    if (failure.status === 410 || DEAD_TOKEN.has(reason)) return { ok: false, kind: 'invalid_token', reason }
    if (failure.status === undefined || TRANSIENT_STATUS.has(failure.status)) {
      // 403 is transient only when the provider token expired (the library makes a new one).
      if (failure.status !== 403 || reason.includes('ExpiredProviderToken'))
        return { ok: false, kind: 'retry', reason }
    }
    return { ok: false, kind: 'failed', reason: `${failure.status ?? ''} ${reason}`.trim() }
  }

  async close(): Promise<void> {
    // shutdown's callback never comes after a connection error; its timers do not hold the process.
    await Promise.all(
      [...this.#providers.values()].map(
        (p) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 1000)
            p.shutdown(() => {
              clearTimeout(timer)
              resolve()
            })
          }),
      ),
    )
  }
}
