import type { IClientOptions, MqttClient } from 'mqtt'
import { connectClient, WAIT_MS } from './clients.ts'

export interface InboxEvent {
  type: string
  chatId: string
  seq: number
  clientMsgId?: string
  senderId?: string
  text?: string | null
  media?: string[]
  kind?: string
  event?: Record<string, unknown>
  userId?: string
}

let counter = 0

/**
 * One app device: a persistent session subscribed to its inbox, reply and error topics, with
 * everything it receives recorded, and waits that resolve on the arrival of what they wait for.
 */
export class Device {
  readonly client: MqttClient
  readonly userId: string
  readonly deviceId: string
  readonly inbox: InboxEvent[] = []
  readonly errors: Array<{ code: string; ref?: string; topic: string; message: string }> = []
  readonly other: Array<{ topic: string; body: unknown; retain: boolean }> = []
  readonly #waiters = new Set<() => void>()

  private constructor(client: MqttClient, userId: string, deviceId: string) {
    this.client = client
    this.userId = userId
    this.deviceId = deviceId
    client.on('message', (topic, payload, packet) => {
      let body: unknown
      try {
        body = JSON.parse(payload.toString('utf8'))
      } catch {
        body = payload.toString('utf8')
      }
      if (topic === `u/${userId}/inbox`) this.inbox.push(body as InboxEvent)
      else if (topic === `d/${userId}/${deviceId}/err`) this.errors.push(body as Device['errors'][number])
      else if (topic !== `d/${userId}/${deviceId}/res`)
        this.other.push({ topic, body, retain: packet.retain })
      for (const w of this.#waiters) w()
    })
  }

  static async connect(
    url: string,
    userId: string,
    deviceId: string,
    token: string,
    o: Partial<IClientOptions> & { subscribe?: boolean } = {},
  ): Promise<Device> {
    let device: Device | undefined
    const client = await connectClient(
      url,
      { clientId: `${userId}/${deviceId}`, password: token, clean: false, ...o },
      // Listening before the CONNACK: queued messages may arrive right behind it.
      (c) => {
        device = new Device(c, userId, deviceId)
      },
    )
    if (!device) throw new Error('the device was not prepared')
    if (o.subscribe !== false) {
      const own = [`u/${userId}/inbox`, `d/${userId}/${deviceId}/res`, `d/${userId}/${deviceId}/err`]
      await client.subscribeAsync(own, { qos: 1 })
    }
    return device
  }

  /** Resolves when the condition holds, checked now and after every message. */
  until(condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    return Device.untilAny([this], condition, what, ms)
  }

  /**
   * Resolves when the condition holds, checked now and after every message any of the devices
   * gets: for a condition that spans several devices (refusals to either of a user's devices).
   */
  static untilAny(devices: Device[], condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    if (condition()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const forget = () => {
        for (const d of devices) d.#waiters.delete(check)
      }
      const check = () => {
        if (!condition()) return
        clearTimeout(timer)
        forget()
        resolve()
      }
      const timer = setTimeout(() => {
        forget()
        const names = devices.map((d) => `${d.userId}/${d.deviceId}`).join(', ')
        reject(new Error(`${names}: ${what} did not happen within ${ms} ms`))
      }, ms)
      for (const d of devices) d.#waiters.add(check)
    })
  }

  async request<T = Record<string, unknown>>(op: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = `r${++counter}`
    const replyTopic = `d/${this.userId}/${this.deviceId}/res`
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('message', on)
        reject(new Error(`no reply to ${op}`))
      }, WAIT_MS)
      const on = (topic: string, payload: Buffer) => {
        if (topic !== replyTopic) return
        const reply = JSON.parse(payload.toString('utf8'))
        if (reply.id !== id) return
        clearTimeout(timer)
        this.client.off('message', on)
        if (reply.ok) resolve(reply.result as T)
        // Every field of the error (code, retryAfterMs, epoch) on the Error.
        else reject(Object.assign(new Error(reply.error.message), reply.error))
      }
      this.client.on('message', on)
      this.client.publish(`req/${op}`, JSON.stringify({ id, params }), { qos: 1 })
    })
  }

  /** Sends a chat message and resolves at its PUBACK (the "sent" tick). */
  async send(chatId: string, text: string, clientMsgId = `m${++counter}`): Promise<string> {
    await this.client.publishAsync(`c/${chatId}/send`, JSON.stringify({ clientMsgId, text }), { qos: 1 })
    return clientMsgId
  }

  messages(chatId: string): InboxEvent[] {
    return this.inbox.filter((e) => e.type === 'message' && e.chatId === chatId)
  }

  /** Distinct seqs of a chat's messages, in arrival order. */
  seqs(chatId: string): number[] {
    const seen = new Set<number>()
    const out: number[] = []
    for (const e of this.messages(chatId)) {
      if (!seen.has(e.seq)) {
        seen.add(e.seq)
        out.push(e.seq)
      }
    }
    return out
  }

  async close(): Promise<void> {
    await this.client.endAsync()
  }
}
