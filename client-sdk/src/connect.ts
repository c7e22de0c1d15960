import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { checkUrlForHere, connectTimeoutOf, watchFirstConnect } from './first-connect.ts'
import { NatterRequestError } from './request.ts'
import { clientIdOf, topics } from './topics.ts'

export interface ConnectOptions {
  /** mqtt://host:1883, mqtts://…, ws://host:8083/mqtt or wss://… */
  url: string
  userId: string
  deviceId: string
  /** A JWT whose sub is userId. */
  token: string
  /**
   * Keep the session (and its queued QoS 1 messages) while the device is away. Natter's
   * delivery relies on it; set false only for throw-away scripts.
   */
  persistentSession?: boolean
  /**
   * How long the first connection may take, in ms, before connect rejects with connect_timeout
   * (default 10 000; Infinity for no limit; anything but a positive number throws a TypeError).
   * mqtt.js' reconnects apply only after it succeeded.
   */
  connectTimeoutMs?: number
  mqtt?: Omit<IClientOptions, 'clientId' | 'password' | 'clean' | 'protocolVersion'>
}

export interface NatterConnection {
  client: MqttClient
  clientId: string
  close(): Promise<void>
}

/**
 * Connects one device and subscribes to its inbox, reply and error topics; resolves once
 * subscribed. Rejects with a NatterRequestError: `connect_failed` for the broker's refusal (for
 * example "Connection refused: Bad username or password"), a transport that fails or closes
 * before the CONNACK, or a refused subscription; `connect_timeout` after connectTimeoutMs.
 */
export function connect(o: ConnectOptions): Promise<NatterConnection> {
  const clientId = clientIdOf(o.userId, o.deviceId)
  // Checked before anything connects: a bad value is the caller's error, thrown as it is.
  const timeoutMs = connectTimeoutOf(o.connectTimeoutMs)
  try {
    checkUrlForHere(o.url)
  } catch (err) {
    return Promise.reject(err)
  }
  const client = mqtt.connect(o.url, {
    reconnectPeriod: 1000,
    ...o.mqtt,
    clientId,
    username: o.userId,
    password: o.token,
    clean: !(o.persistentSession ?? true),
    protocolVersion: 4,
  })
  // mqtt.js leaves Nagle's algorithm on. A device that acknowledges a delivery and then
  // publishes would wait for the server's delayed TCP ACK (up to 40 ms on Linux) before its
  // PUBLISH leaves: 22 ms median on every chat message in bench/. Set again on every reconnect,
  // which opens a new socket.
  client.on('connect', () => noDelay(client))
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      stop()
      // A late error of the socket being torn down must not be an unhandled 'error' event.
      client.on('error', () => {})
      client.end(true)
      reject(err)
    }
    const stop = watchFirstConnect(client, { url: o.url, timeoutMs }, fail)
    client.once('connect', () => {
      const own = [topics.inbox(o.userId), topics.reply(clientId), topics.errors(clientId)]
      client.subscribe(own, { qos: 1 }, (err, granted) => {
        if (err) return fail(new NatterRequestError('connect_failed', err.message))
        const refused = granted?.filter((g) => g.qos === 128) ?? []
        if (refused.length) {
          const names = refused.map((g) => g.topic).join(', ')
          return fail(new NatterRequestError('connect_failed', `subscription refused: ${names}`))
        }
        stop()
        resolve({
          client,
          clientId,
          close: () => new Promise<void>((done) => client.end(false, {}, () => done())),
        })
      })
    })
  })
}

function noDelay(client: MqttClient): void {
  const stream = client.stream as { setNoDelay?: (on: boolean) => unknown } | undefined
  stream?.setNoDelay?.(true)
}
