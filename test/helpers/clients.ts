import { type EventEmitter, once } from 'node:events'
import { createConnection } from 'node:net'
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'

export const WAIT_MS = 10_000

// mqtt.js types its client with its own event map, which events.once() does not accept.
const emitter = (client: MqttClient) => client as unknown as EventEmitter

/**
 * Rejects with the CONNACK refusal (err.code is the return code) instead of reconnecting.
 * MQTT 3.1.1 sends a password only with a username, so one is always set.
 */
export async function connectClient(
  url: string,
  options: IClientOptions,
  /** Called with the client before it connects: a persistent session's queued messages can come with the CONNACK. */
  prepare?: (client: MqttClient) => void,
): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    protocolVersion: 4,
    username: String(options.clientId ?? '').split('/')[0] || 'anyone',
    ...options,
  })
  prepare?.(client)
  try {
    await Promise.race([
      once(emitter(client), 'connect', { signal: AbortSignal.timeout(WAIT_MS) }),
      once(emitter(client), 'error').then(([err]) => {
        throw err
      }),
    ])
  } catch (err) {
    client.end(true)
    throw err
  }
  return client
}

/** The CONNACK return code a refused CONNECT got. */
export async function connackCode(url: string, options: IClientOptions): Promise<number> {
  try {
    const c = await connectClient(url, options)
    await c.endAsync()
    return 0
  } catch (err) {
    const code = (err as { code?: unknown }).code
    if (typeof code !== 'number') throw err
    return code
  }
}

/** SUBACK granted QoS per filter (128 = refused). */
export async function subscribe(client: MqttClient, filters: string[], qos: 0 | 1 = 1): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(filters, { qos })
    return granted.map((g) => g.qos)
  } catch (err) {
    // mqtt.js rejects a SUBACK whose first code is a failure; the codes are on the error.
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted
    if (!granted) throw err
    return granted
  }
}

/** Resolves with the next message on a topic. */
export function nextMessage(client: MqttClient, topic: string, ms = WAIT_MS): Promise<IPublishPacket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', on)
      reject(new Error(`no message on ${topic} within ${ms} ms`))
    }, ms)
    const on = (t: string, _p: Buffer, packet: IPublishPacket) => {
      if (t !== topic) return
      clearTimeout(timer)
      client.off('message', on)
      resolve(packet)
    }
    client.on('message', on)
  })
}

/** Every message a client receives, in order, for asserting what did not arrive. */
export function recordMessages(
  client: MqttClient,
): Array<{ topic: string; payload: string; retain: boolean }> {
  const seen: Array<{ topic: string; payload: string; retain: boolean }> = []
  client.on('message', (topic, payload, packet) =>
    seen.push({ topic, payload: payload.toString('utf8'), retain: packet.retain }),
  )
  return seen
}

export async function closed(client: MqttClient, ms = WAIT_MS): Promise<void> {
  await once(emitter(client), 'close', { signal: AbortSignal.timeout(ms) })
}

/**
 * Sends one CONNECT by hand and resolves with the CONNACK return code, for packets that mqtt.js
 * refuses to send (an empty client id with clean=false).
 */
export function rawConnack(port: number, fields: Partial<mqttPacket.IConnectPacket>): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    const parser = mqttPacket.parser()
    const timer = setTimeout(() => fail(new Error('no CONNACK')), WAIT_MS)
    const fail = (err: Error) => {
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }
    parser.on('packet', (p) => {
      clearTimeout(timer)
      socket.destroy()
      if (p.cmd === 'connack') resolve(p.returnCode ?? -1)
      else reject(new Error(`expected CONNACK, got ${p.cmd}`))
    })
    socket.on('data', (d) => parser.parse(d))
    socket.on('error', fail)
    const { clean = true, ...rest } = fields
    const bytes = mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      keepalive: 30,
      clientId: '',
      ...rest,
      clean: true,
    })
    // mqtt-packet will not encode an empty id with clean=false, so clear the flag by hand:
    // fixed header byte, remaining-length varint, "MQTT" with its length, level, then flags.
    let flags = 1
    while ((bytes[flags] as number) & 0x80) flags++
    flags += 1 + 2 + 4 + 1
    if (!clean) bytes[flags] = (bytes[flags] as number) & ~0x02
    socket.write(bytes)
  })
}
