import type { MqttClient } from 'mqtt'
import { topics } from './topics.ts'

/**
 * The server's error codes (docs/protocol.md#errors), and the client's own: disconnected (the
 * connection closed before the reply), timeout, connect_failed, connect_timeout, upload_failed,
 * cancelled (a message the app removed from the outbox).
 */
export type NatterErrorCode =
  | 'bad_request'
  | 'unknown_operation'
  | 'forbidden_topic'
  | 'retain_not_allowed'
  | 'token_expired'
  | 'chat_not_found'
  | 'not_found'
  | 'not_allowed'
  | 'too_many_members'
  | 'last_admin'
  | 'too_large'
  | 'rate_limited'
  | 'media_not_found'
  | 'unsupported_media_type'
  | 'upload_incomplete'
  | 'checksum_mismatch'
  | 'invalid_image'
  | 'invalid_key_package'
  | 'too_many_key_packages'
  | 'invalid_commit'
  | 'stale_epoch'
  | 'internal'
  | 'disconnected'
  | 'timeout'
  | 'connect_failed'
  | 'connect_timeout'
  | 'upload_failed'
  | 'cancelled'
  /** SDK only: a downloaded media is not what its message describes (hash, size or AES-GCM tag). */
  | 'media_corrupt'
  /** SDK only: the storage refused a media download, or the connection to it broke. */
  | 'download_failed'

export class NatterRequestError extends Error {
  override name = 'NatterRequestError'
  readonly code: NatterErrorCode
  /** rate_limited: ms after which the same call may succeed (the server's retryAfterMs). */
  readonly retryAfterMs: number | undefined
  /** stale_epoch: the MLS epoch the chat is at (docs/e2ee.md §3). */
  readonly epoch: number | undefined
  constructor(code: NatterErrorCode, message: string, retryAfterMs?: number, epoch?: number) {
    super(message)
    this.code = code
    this.retryAfterMs = retryAfterMs
    this.epoch = epoch
  }
}

let counter = 0

interface Pending {
  op: string
  resolve: (result: unknown) => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
}

/**
 * The requests waiting for a reply, per MQTT client and reply topic: one `message` and one
 * `close` listener per client, however many requests are in flight (a listener per request
 * parsed every reply once per waiting request, and past ten Node warned of a leak).
 */
const waiting = new WeakMap<MqttClient, Map<string, Map<string, Pending>>>()

function pendingFor(client: MqttClient, replyTopic: string): Map<string, Pending> {
  let byTopic = waiting.get(client)
  if (!byTopic) {
    const topicsOfClient = new Map<string, Map<string, Pending>>()
    byTopic = topicsOfClient
    waiting.set(client, topicsOfClient)
    client.on('message', (topic: string, payload: Buffer) => {
      const pending = topicsOfClient.get(topic)
      if (!pending || pending.size === 0) return
      let reply: {
        id?: string
        ok?: boolean
        result?: unknown
        error?: { code: string; message: string; retryAfterMs?: number; epoch?: number }
      }
      try {
        reply = JSON.parse(payload.toString('utf8'))
      } catch {
        return
      }
      const p = reply.id === undefined ? undefined : pending.get(reply.id)
      if (!p || reply.id === undefined) return
      pending.delete(reply.id)
      clearTimeout(p.timer)
      if (reply.ok) p.resolve(reply.result)
      else
        p.reject(
          new NatterRequestError(
            (reply.error?.code ?? 'internal') as NatterErrorCode,
            reply.error?.message ?? 'request failed',
            reply.error?.retryAfterMs,
            reply.error?.epoch,
          ),
        )
    })
    // A reply to a connection that closed never comes: the callers learn it at once.
    client.on('close', () => {
      for (const pending of topicsOfClient.values()) {
        for (const p of pending.values()) {
          clearTimeout(p.timer)
          p.reject(
            new NatterRequestError('disconnected', `the connection closed before the reply to ${p.op}`),
          )
        }
        pending.clear()
      }
    })
  }
  let pending = byTopic.get(replyTopic)
  if (!pending) {
    pending = new Map()
    byTopic.set(replyTopic, pending)
  }
  return pending
}

/**
 * One operation of the request/response convention: publishes {id, params} to req/<op> and
 * resolves with the result from the device's reply topic (it must already be subscribed, as
 * connect() does), or rejects with the server's error code: `timeout` after timeoutMs (ms),
 * `disconnected` when the connection closes first.
 */
export function request<T = unknown>(
  client: MqttClient,
  clientId: string,
  op: string,
  params: Record<string, unknown> = {},
  timeoutMs = 10_000,
): Promise<T> {
  const id = `${Date.now().toString(36)}-${(counter++).toString(36)}`
  const pending = pendingFor(client, topics.reply(clientId))
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(id)
      reject(new NatterRequestError('timeout', `no reply to ${op} within ${timeoutMs} ms`))
    }, timeoutMs)
    pending.set(id, { op, resolve: resolve as (result: unknown) => void, reject, timer })
    client.publish(topics.request(op), JSON.stringify({ id, params }), { qos: 1 }, (err) => {
      if (err && pending.delete(id)) {
        clearTimeout(timer)
        reject(err)
      }
    })
  })
}
