import type { MqttClient } from 'mqtt'
import { NatterRequestError } from './request.ts'

/** Default of connectTimeoutMs: how long a first connection may take before it fails, in ms. */
export const CONNECT_TIMEOUT_MS = 10_000

/**
 * Watches the first connection of `client` until the returned `stop()` is called (once the
 * caller counts it connected), and calls `fail` once with a NatterRequestError:
 * - `connect_failed` when the server refuses the CONNECT (a CONNACK error: bad or expired token,
 *   too many devices, a banned account) or the transport fails: a Node socket error such as
 *   ECONNREFUSED, or in a browser the WebSocket closing before the CONNACK (browsers hide the
 *   cause of a failed WebSocket, and mqtt.js then emits only `close`, so without this the first
 *   connect would wait through reconnects forever);
 * - `connect_timeout` when `timeoutMs` pass first: a host that drops packets, or a port that
 *   accepts TCP and never answers.
 * The caller ends the client in `fail` (which stops mqtt.js' reconnects).
 */
export function watchFirstConnect(
  client: MqttClient,
  o: { url: string; timeoutMs: number; describeRefusal?: (err: Error) => string },
  fail: (err: NatterRequestError) => void,
): () => void {
  const where = o.url.replace(/\/\/[^@/]*@/, '//')
  const timer = setTimeout(
    () =>
      settle(
        new NatterRequestError('connect_timeout', `no MQTT answer from ${where} within ${o.timeoutMs} ms`),
      ),
    o.timeoutMs,
  )
  const onError = (err: Error) =>
    settle(
      // mqtt.js' own CONNACK timer (its connectTimeout option), when set below timeoutMs.
      err.message === 'connack timeout'
        ? new NatterRequestError('connect_timeout', `no CONNACK from ${where}`)
        : new NatterRequestError('connect_failed', o.describeRefusal?.(err) ?? err.message),
    )
  const onClose = () =>
    settle(
      new NatterRequestError(
        'connect_failed',
        `the connection to ${where} closed before the server accepted it: unreachable, refused, or not an MQTT endpoint`,
      ),
    )
  const stop = () => {
    clearTimeout(timer)
    client.off('error', onError)
    client.off('close', onClose)
  }
  const settle = (err: NatterRequestError) => {
    stop()
    fail(err)
  }
  client.on('error', onError)
  client.on('close', onClose)
  return stop
}
