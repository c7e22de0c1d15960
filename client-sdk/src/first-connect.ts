import type { MqttClient } from 'mqtt'
import { NatterRequestError } from './request.ts'

/** Default of connectTimeoutMs: how long a first connection may take before it fails, in ms. */
export const CONNECT_TIMEOUT_MS = 10_000
/** Longer than a timer can wait (2^31 - 1 ms): such a timeout, Infinity included, is none. */
const TIMER_MAX_MS = 2 ** 31 - 1

/**
 * connectTimeoutMs checked: the default when not given, Infinity for "no timeout" (Infinity or
 * anything past a timer's range). Throws a TypeError for anything but a positive number, so
 * that a 0, a NaN or a negative number does not fail every connect at once.
 */
export function connectTimeoutOf(value: number | undefined): number {
  if (value === undefined) return CONNECT_TIMEOUT_MS
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0)
    throw new TypeError(
      `connectTimeoutMs must be a positive number of ms (or Infinity), got ${String(value)}`,
    )
  return value > TIMER_MAX_MS ? Number.POSITIVE_INFINITY : value
}

/**
 * The first token from the app's getToken, within `timeoutMs` (Infinity: no limit): what is left
 * of the connect timeout, `connectTimeoutMs` (ms, named in the error, since the app set that one
 * and what is left depends on the work done before). Rejects with
 * a NatterRequestError: connect_timeout when getToken takes longer (a token endpoint that never
 * answers would otherwise hold createClient for ever), connect_failed when it throws or resolves
 * with anything but a non-empty string (a token endpoint's error body read as `.token` gives
 * undefined, which the server would only refuse as a bad token).
 */
export async function firstToken(
  getToken: () => Promise<string>,
  timeoutMs: number,
  connectTimeoutMs = timeoutMs,
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    if (timeoutMs !== Number.POSITIVE_INFINITY)
      timer = setTimeout(
        () =>
          reject(
            new NatterRequestError(
              'connect_timeout',
              `getToken did not resolve within ${connectTimeoutMs} ms`,
            ),
          ),
        timeoutMs,
      )
  })
  try {
    const token: unknown = await Promise.race([
      Promise.resolve()
        .then(getToken)
        .catch((err: unknown) => {
          throw new NatterRequestError(
            'connect_failed',
            `getToken failed: ${err instanceof Error ? err.message : String(err)}`,
          )
        }),
      timeout,
    ])
    if (typeof token !== 'string' || token === '')
      throw new NatterRequestError(
        'connect_failed',
        `getToken resolved ${token === '' ? 'an empty string' : String(token)}, not a token (a JWT string)`,
      )
    return token
  } finally {
    clearTimeout(timer)
  }
}

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
 * `fail`'s second argument says whether the server answered: a CONNACK refusal, or bytes that
 * are not MQTT (a wrong URL); false for an unreachable address, a closed transport or a timeout,
 * which a device without a network meets too. The caller ends the client in `fail` (which stops
 * mqtt.js' reconnects), or keeps it trying.
 */
export function watchFirstConnect(
  client: MqttClient,
  o: {
    url: string
    /** ms left for it (Infinity: no limit) */
    timeoutMs: number
    /** The whole limit the caller was given, ms, when getToken took some of it: named in the error. */
    limitMs?: number
    describeRefusal?: (err: Error) => string
  },
  fail: (err: NatterRequestError, answered: boolean) => void,
): () => void {
  const where = o.url.replace(/\/\/[^@/]*@/, '//')
  const timer =
    o.timeoutMs === Number.POSITIVE_INFINITY
      ? undefined
      : setTimeout(
          () =>
            settle(
              new NatterRequestError(
                'connect_timeout',
                `no MQTT answer from ${where} within ${o.limitMs ?? o.timeoutMs} ms`,
              ),
            ),
          o.timeoutMs,
        )
  const onError = (err: Error) => {
    // mqtt.js' own CONNACK timer (its connectTimeout option), when set below timeoutMs.
    if (err.message === 'connack timeout')
      return settle(new NatterRequestError('connect_timeout', `no CONNACK from ${where}`))
    // A socket error (ECONNREFUSED, ENOTFOUND…) has a string code; a CONNACK refusal a number,
    // and bytes that do not parse as MQTT none.
    const answered = typeof (err as { code?: unknown }).code !== 'string'
    settle(new NatterRequestError('connect_failed', failureMessage(err, where, o.describeRefusal)), answered)
  }
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
  const settle = (err: NatterRequestError, answered = false) => {
    stop()
    fail(err, answered)
  }
  client.on('error', onError)
  client.on('close', onClose)
  return stop
}

/**
 * What a failed first connect says: the broker's refusal as `describeRefusal` words it (a CONNACK
 * code), a socket error with the address it concerns, or, for bytes that do not parse as MQTT
 * (the HTTP port given as an MQTT URL), that the address is likely not an MQTT endpoint.
 */
function failureMessage(err: Error, where: string, describeRefusal?: (err: Error) => string): string {
  const code = (err as { code?: unknown }).code
  if (typeof code === 'number') return describeRefusal?.(err) ?? err.message
  if (typeof code === 'string') return `${where}: ${err.message}`
  return `${where} answered something that is not MQTT (${err.message}): is it the MQTT port, or for ws:// the WebSocket path?`
}

/**
 * Throws connect_failed for an mqtt:// or mqtts:// URL in a browser, which can only open
 * WebSockets (mqtt.js would quietly try ws:// on the same port and fail as "closed").
 */
export function checkUrlForHere(url: string): void {
  const inBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined'
  if (inBrowser && /^mqtts?:/i.test(url))
    throw new NatterRequestError(
      'connect_failed',
      `${url}: a browser connects over WebSocket only; use ws:// or wss:// and the WebSocket path (for example ws://host:8083/mqtt)`,
    )
}
