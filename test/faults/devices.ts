import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { type Proc, run } from '../helpers/processes.ts'
import type { FailoverProxy } from './proxy.ts'

/** One chat message as it arrived on a device's inbox, over MQTT. */
export interface Arrival {
  chatId: string
  seq: number
  clientMsgId: string | undefined
  /** The PUBLISH's DUP flag: true for a redelivery the broker marked as one. */
  dup: boolean
  at: number
}

export type DeviceKind = 'mqtt.js' | 'mosquitto_sub'

// A device that does not get its CONNACK within this long is given up for this attempt.
const CONNECT_MS = 15_000

/**
 * What every device of a fault run records: the chat messages that arrived on its inbox, with
 * their DUP flag, and its CONNACKs. Waits resolve on arrivals, not on timers.
 */
export abstract class FaultDevice {
  abstract readonly kind: DeviceKind
  readonly userId: string
  readonly deviceId: string
  readonly proxy: FailoverProxy
  readonly arrivals: Arrival[] = []
  /** CONNACKs (return code 0) this device got, over all its connections. */
  connacks = 0
  /** The session-present flag of each CONNACK, where the client shows it (mqtt.js). */
  readonly sessionPresent: boolean[] = []
  /** Set when the fault cut this device's connection (its node died or closed it). */
  cut = false
  /** Reconnects the harness made on purpose (a clean disconnect, then a connect). */
  deliberateReconnects = 0
  lastArrivalAt = 0
  protected readonly waiters = new Set<() => void>()

  constructor(proxy: FailoverProxy, userId: string, deviceId: string) {
    this.proxy = proxy
    this.userId = userId
    this.deviceId = deviceId
    proxy.onCut = () => {
      this.cut = true
      this.wake()
    }
  }

  get clientId(): string {
    return `${this.userId}/${this.deviceId}`
  }

  get label(): string {
    return `${this.clientId} (${this.kind})`
  }

  abstract get connected(): boolean
  /** Disconnects cleanly (DISCONNECT) and connects once more with the same client id, clean=false. */
  abstract reconnectOnce(): Promise<void>
  /** Cuts the connection without a DISCONNECT and never comes back. */
  abstract drop(): void
  abstract close(): Promise<void>

  protected wake(): void {
    for (const w of [...this.waiters]) w()
  }

  protected record(body: unknown, dup: boolean): void {
    const e = body as { type?: unknown; chatId?: unknown; seq?: unknown; clientMsgId?: unknown }
    if (e?.type !== 'message' || typeof e.chatId !== 'string' || typeof e.seq !== 'number') return
    this.lastArrivalAt = Date.now()
    this.arrivals.push({
      chatId: e.chatId,
      seq: e.seq,
      clientMsgId: typeof e.clientMsgId === 'string' ? e.clientMsgId : undefined,
      dup,
      at: this.lastArrivalAt,
    })
    this.wake()
  }

  protected connacked(): void {
    this.connacks++
    this.wake()
  }

  /** Resolves true when the condition holds (checked now and at each event), false after ms. */
  until(condition: () => boolean, ms: number): Promise<boolean> {
    if (condition()) return Promise.resolve(true)
    return new Promise((resolve) => {
      const check = () => {
        if (!condition()) return
        clearTimeout(timer)
        this.waiters.delete(check)
        resolve(true)
      }
      const timer = setTimeout(() => {
        this.waiters.delete(check)
        resolve(false)
      }, ms)
      this.waiters.add(check)
    })
  }

  /**
   * Waits until every id has arrived, or nothing has arrived for quietMs, or capMs is over:
   * "everything it can get". Resolves with the reason.
   */
  drained(ids: Iterable<string>, quietMs: number, capMs: number): Promise<'all' | 'quiet' | 'cap'> {
    const want = new Set(ids)
    const have = () => {
      for (const a of this.arrivals) if (a.clientMsgId !== undefined) want.delete(a.clientMsgId)
      return want.size === 0
    }
    if (have()) return Promise.resolve('all')
    return new Promise((resolve) => {
      let quiet: NodeJS.Timeout | undefined
      const finish = (why: 'all' | 'quiet' | 'cap') => {
        clearTimeout(quiet)
        clearTimeout(cap)
        this.waiters.delete(check)
        resolve(why)
      }
      const rearm = () => {
        clearTimeout(quiet)
        quiet = setTimeout(() => finish('quiet'), quietMs)
      }
      const check = () => {
        if (have()) finish('all')
        else rearm()
      }
      const cap = setTimeout(() => finish('cap'), capMs)
      rearm()
      this.waiters.add(check)
    })
  }
}

/** An app device on mqtt.js: a persistent session subscribed once to its inbox. */
export class MqttJsDevice extends FaultDevice {
  readonly kind = 'mqtt.js'
  client: MqttClient
  readonly #options: IClientOptions

  private constructor(proxy: FailoverProxy, userId: string, deviceId: string, options: IClientOptions) {
    super(proxy, userId, deviceId)
    this.#options = options
    this.client = this.#open()
  }

  /**
   * Connects through the proxy and subscribes to u/<user>/inbox at QoS 1, once: the client
   * never subscribes again (resubscribe off), as the promise under test is the session's.
   */
  static async open(o: {
    proxy: FailoverProxy
    userId: string
    deviceId: string
    token: string
    /** A throw-away device: clean session, no reconnects. */
    throwaway?: boolean
  }): Promise<MqttJsDevice> {
    const d = new MqttJsDevice(o.proxy, o.userId, o.deviceId, {
      clientId: `${o.userId}/${o.deviceId}`,
      username: o.userId,
      password: o.token,
      protocolVersion: 4,
      clean: o.throwaway === true,
      resubscribe: false,
      reconnectPeriod: o.throwaway ? 0 : 200,
      connectTimeout: 5000,
      keepalive: 30,
    })
    if (!(await d.until(() => d.connacks > 0, CONNECT_MS))) {
      d.client.end(true)
      throw new Error(`${d.clientId}: no CONNACK within ${CONNECT_MS} ms`)
    }
    await d.client.subscribeAsync(`u/${o.userId}/inbox`, { qos: 1 })
    return d
  }

  #open(): MqttClient {
    const client = mqtt.connect(`mqtt://127.0.0.1:${this.proxy.port}`, this.#options)
    // Listening before the CONNACK: a persistent session's queued messages come right behind it.
    client.on('message', (topic, payload, packet) => {
      if (topic !== `u/${this.userId}/inbox`) return
      let body: unknown
      try {
        body = JSON.parse(payload.toString('utf8'))
      } catch {
        return
      }
      this.record(body, packet.dup === true)
    })
    client.on('connect', (connack) => {
      this.sessionPresent.push(connack.sessionPresent === true)
      this.connacked()
    })
    client.on('close', () => this.wake())
    client.on('error', () => {})
    return client
  }

  get connected(): boolean {
    return this.client.connected
  }

  async reconnectOnce(): Promise<void> {
    const old = this.client
    // A clean DISCONNECT; a publish that never got its PUBACK would hold end() forever.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([old.endAsync(), new Promise((resolve) => (timer = setTimeout(resolve, 5000)))])
    clearTimeout(timer)
    old.end(true)
    this.deliberateReconnects++
    const before = this.connacks
    this.client = this.#open()
    if (!(await this.until(() => this.connacks > before, CONNECT_MS)))
      throw new Error(`${this.clientId}: no CONNACK within ${CONNECT_MS} ms of its reconnect`)
  }

  drop(): void {
    this.client.options.reconnectPeriod = 0
    this.client.stream?.destroy()
    this.client.end(true)
  }

  async close(): Promise<void> {
    this.client.end(true)
  }
}

/**
 * A receiver with no client code at all: `mosquitto_sub -c -q 1 -i <user>/<dev> -t u/<user>/inbox`,
 * its output parsed line by line. It reconnects by itself (through the proxy) when its node
 * dies. `-d` prints each PUBLISH header (with its DUP flag) before the payload, so its
 * redeliveries are told from first deliveries as for mqtt.js.
 */
export class MosquittoDevice extends FaultDevice {
  readonly kind = 'mosquitto_sub'
  readonly #token: string
  #proc: Proc
  /** Output of every process this device ran, for a report. */
  readonly lines: string[] = []
  #pendingDup: boolean | undefined
  #connectedNow = false

  private constructor(proxy: FailoverProxy, userId: string, deviceId: string, token: string) {
    super(proxy, userId, deviceId)
    this.#token = token
    proxy.onCut = () => {
      this.cut = true
      this.#connectedNow = false
      this.wake()
    }
    this.#proc = this.#spawn()
  }

  static async open(o: {
    proxy: FailoverProxy
    userId: string
    deviceId: string
    token: string
  }): Promise<MosquittoDevice> {
    const d = new MosquittoDevice(o.proxy, o.userId, o.deviceId, o.token)
    if (!(await d.until(() => d.lines.some((l) => l.includes('received SUBACK')), CONNECT_MS))) {
      d.#proc.child.kill('SIGKILL')
      throw new Error(
        `${d.clientId}: mosquitto_sub not subscribed within ${CONNECT_MS} ms:\n${d.lines.join('\n')}`,
      )
    }
    return d
  }

  #spawn(): Proc {
    // stdbuf: mosquitto_sub's stdout is a pipe here, which stdio would otherwise buffer by blocks.
    const proc = run('stdbuf', [
      '-oL',
      'mosquitto_sub',
      '-d',
      '-c',
      '-q',
      '1',
      '-i',
      this.clientId,
      '-u',
      this.userId,
      '-P',
      this.#token,
      '-h',
      '127.0.0.1',
      '-p',
      String(this.proxy.port),
      '-t',
      `u/${this.userId}/inbox`,
    ])
    proc.onLine((line) => this.#line(line))
    proc.exited.then(() => {
      if (this.#proc === proc) this.#connectedNow = false
      this.wake()
    })
    return proc
  }

  #line(line: string): void {
    this.lines.push(line)
    if (line.startsWith('{')) {
      let body: unknown
      try {
        body = JSON.parse(line)
      } catch {
        return
      }
      const dup = this.#pendingDup ?? false
      this.#pendingDup = undefined
      this.record(body, dup)
      return
    }
    const publish = /received PUBLISH \(d(\d), q\d, r\d, m\d+, '([^']*)'/.exec(line)
    if (publish) {
      this.#pendingDup = publish[1] === '1'
      return
    }
    const connack = /received CONNACK \((\d+)\)/.exec(line)
    if (connack) {
      if (connack[1] === '0') {
        this.#connectedNow = true
        this.connacked()
      } else this.wake()
    }
    // Anything else (SUBACK, PINGRESP, sending ...) matters only to until() conditions on lines.
    if (line.includes('SUBACK')) this.wake()
  }

  get connected(): boolean {
    return this.#connectedNow && this.#proc.child.exitCode === null && this.#proc.child.signalCode === null
  }

  get running(): boolean {
    return this.#proc.child.exitCode === null && this.#proc.child.signalCode === null
  }

  /** SIGTERM (mosquitto_sub sends DISCONNECT and exits), then the same command again. */
  async reconnectOnce(): Promise<void> {
    await this.#end()
    this.deliberateReconnects++
    const before = this.connacks
    this.#proc = this.#spawn()
    if (!(await this.until(() => this.connacks > before, CONNECT_MS)))
      throw new Error(`${this.clientId}: mosquitto_sub got no CONNACK within ${CONNECT_MS} ms of its restart`)
  }

  async #end(): Promise<void> {
    const p = this.#proc
    if (p.child.exitCode !== null || p.child.signalCode !== null) return
    p.child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const exited = await Promise.race([
      p.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 5000))),
    ])
    clearTimeout(timer)
    if (!exited) {
      p.child.kill('SIGKILL')
      await p.exited
    }
    this.#connectedNow = false
  }

  drop(): void {
    this.#proc.child.kill('SIGKILL')
  }

  async close(): Promise<void> {
    const p = this.#proc
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL')
      await p.exited
    }
  }
}
