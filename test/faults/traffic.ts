import type { MqttJsDevice } from './devices.ts'

/**
 * The sender: QoS 1 chat messages on c/<chatId>/send at a steady rate, each counted as "acked"
 * when its PUBACK arrives. mqtt.js keeps unacknowledged publishes and sends them again after a
 * reconnect (to whichever node the proxy picks), as an app does.
 */
export class Traffic {
  readonly sent: string[] = []
  /** clientMsgId → when its PUBACK arrived. */
  readonly acked = new Map<string, number>()
  /** Publishes mqtt.js gave up on (an error in the callback). */
  readonly failed = new Set<string>()
  readonly #sender: MqttJsDevice
  readonly #chatId: string
  readonly #prefix: string
  readonly #waiters = new Set<() => void>()
  #timer: NodeJS.Timeout | undefined

  constructor(sender: MqttJsDevice, chatId: string, prefix: string) {
    this.#sender = sender
    this.#chatId = chatId
    this.#prefix = prefix
  }

  start(perSecond: number): void {
    // Pacing the load, not waiting for anything.
    this.#timer = setInterval(() => this.#publish(), Math.max(1, Math.round(1000 / perSecond)))
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #publish(): void {
    const id = `${this.#prefix}-${this.sent.length + 1}`
    this.sent.push(id)
    // The client of the moment: a deliberate reconnect replaces it, but traffic has stopped then.
    this.#sender.client.publish(
      `c/${this.#chatId}/send`,
      JSON.stringify({ clientMsgId: id, text: `fault traffic ${id}` }),
      { qos: 1 },
      (err) => {
        if (err) this.failed.add(id)
        else this.acked.set(id, Date.now())
        for (const w of [...this.#waiters]) w()
      },
    )
  }

  /** Resolves true once at least n messages are acked, false after ms. */
  ackedAtLeast(n: number, ms: number): Promise<boolean> {
    return this.#until(() => this.acked.size >= n, ms)
  }

  /** Resolves true once every message sent has its PUBACK (or failed), false after ms. */
  settled(ms: number): Promise<boolean> {
    return this.#until(() => this.acked.size + this.failed.size >= this.sent.length, ms)
  }

  #until(condition: () => boolean, ms: number): Promise<boolean> {
    if (condition()) return Promise.resolve(true)
    return new Promise((resolve) => {
      const check = () => {
        if (!condition()) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve(true)
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        resolve(false)
      }, ms)
      this.#waiters.add(check)
    })
  }
}
