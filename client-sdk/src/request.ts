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
  | 'too_large'
  | 'rate_limited'
  | 'media_not_found'
  | 'unsupported_media_type'
  | 'upload_incomplete'
  | 'checksum_mismatch'
  | 'invalid_image'
  | 'internal'
  | 'disconnected'
  | 'timeout'
  | 'connect_failed'
  | 'connect_timeout'
  | 'upload_failed'
  | 'cancelled'

export class NatterRequestError extends Error {
  override name = 'NatterRequestError'
  readonly code: NatterErrorCode
  /** rate_limited: ms after which the same call may succeed (the server's retryAfterMs). */
  readonly retryAfterMs: number | undefined
  constructor(code: NatterErrorCode, message: string, retryAfterMs?: number) {
    super(message)
    this.code = code
    this.retryAfterMs = retryAfterMs
  }
}

let counter = 0

/**
 * One operation of the request/response convention: publishes {id, params} to req/<op> and
 * resolves with the result from the device's reply topic (it must already be subscribed, as
 * connect() does), or rejects with the server's error code.
 */
export function request<T = unknown>(
  client: MqttClient,
  clientId: string,
  op: string,
  params: Record<string, unknown> = {},
  timeoutMs = 10_000,
): Promise<T> {
  const id = `${Date.now().toString(36)}-${(counter++).toString(36)}`
  const replyTopic = topics.reply(clientId)
  return new Promise<T>((resolve, reject) => {
    const onMessage = (topic: string, payload: Buffer) => {
      if (topic !== replyTopic) return
      let reply: {
        id?: string
        ok?: boolean
        result?: T
        error?: { code: string; message: string; retryAfterMs?: number }
      }
      try {
        reply = JSON.parse(payload.toString('utf8'))
      } catch {
        return
      }
      if (reply.id !== id) return
      cleanup()
      if (reply.ok) resolve(reply.result as T)
      else
        reject(
          new NatterRequestError(
            (reply.error?.code ?? 'internal') as NatterErrorCode,
            reply.error?.message ?? 'request failed',
            reply.error?.retryAfterMs,
          ),
        )
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new NatterRequestError('timeout', `no reply to ${op} within ${timeoutMs} ms`))
    }, timeoutMs)
    // A reply to a connection that closed never comes: the caller learns it at once.
    const onClose = () => {
      cleanup()
      reject(new NatterRequestError('disconnected', `the connection closed before the reply to ${op}`))
    }
    const cleanup = () => {
      clearTimeout(timer)
      client.off('message', onMessage)
      client.off('close', onClose)
    }
    client.on('message', onMessage)
    client.on('close', onClose)
    client.publish(topics.request(op), JSON.stringify({ id, params }), { qos: 1 }, (err) => {
      if (err) {
        cleanup()
        reject(err)
      }
    })
  })
}
