// The offline-load check (npm run offline-load): persistent devices offline while messages are
// sent; the node's memory must not grow with what they owe, and every device must get every
// message of its chats, each seq once and in order, when it comes back.
//
// One node runs as its own process (`sh bin/natter start`, embedded default: SQLite in a fresh
// data directory, free ports). The users open the direct chats between every two of them; each
// device connects once with clean=false, subscribes to its inbox at QoS 1 and goes away. Senders
// (one clean session per user) then send the messages, spread evenly over the chats, pipelined,
// each counted at its PUBACK. The devices come back in waves and stay connected; what each one
// receives is counted per chat in a bitset (no payload is kept). The node's RSS
// (/proc/<pid>/status VmRSS) is sampled throughout.
//
// Options: --devices=N (1000), --users=N (10), --messages=N (100000), --quick (100 devices, 10
// users, 10,000 messages), --rss-limit-mb=N (the default is DEFAULT_RSS_LIMIT_MB below), --wave=N
// devices reconnecting at once (100), --window=N sends in flight per sender (100), --stall-ms=N
// (60000: a wave that receives nothing for this long is given up), --gc (diagnosis: the node runs
// with its inspector on and a full GC is forced before each memory point, so the heap figures are
// what it keeps), --quiet. Prints a markdown table; exits 1 when a delivery is missing, repeated
// or out of order, a session or device was lost, or the node's RSS reached the limit.
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { SignJWT } from 'jose'
import mqttPacket from 'mqtt-packet'
import WebSocket from 'ws'
import { abortable } from '../test/helpers/abortable.ts'
import { localNodeEnv, logEvent, type Proc, run } from '../test/helpers/processes.ts'

/**
 * The default RSS bound of the full run, MB: 1.5x the highest peak of three full runs on a
 * 2-core machine (582-602 MB, during the catch-up of 100 devices at once; 396-408 MB while every
 * device was offline), rounded up to 50 MB. With a full GC forced (--gc) the node is back at
 * 180-200 MB at every stage: the peaks are garbage V8 had not collected yet, not state kept per
 * message or device.
 */
export const DEFAULT_RSS_LIMIT_MB = 950
/** The quick preset's bound: 1.5x its measured peak (383 MB), rounded up to 50 MB. */
export const QUICK_RSS_LIMIT_MB = 600

export interface OfflineLoadOptions {
  devices: number
  users: number
  messages: number
  /** The node's RSS must stay under this, MB. */
  rssLimitMb: number
  /** Devices reconnecting at once. */
  wave: number
  /** Sends in flight per sender. */
  window: number
  /** A wave that receives nothing for this long is given up (its devices' shortfall is missing). */
  stallMs: number
  /**
   * Diagnosis: the node runs with its inspector on, and a full GC is forced in it before each
   * memory point, so the V8 heap figures are what it keeps, not garbage. Off by default.
   */
  gc: boolean
  log: (line: string) => void
  /** Ends the run early, with its cleanup. */
  signal?: AbortSignal
}

export const DEFAULTS: Omit<OfflineLoadOptions, 'log'> = {
  devices: 1000,
  users: 10,
  messages: 100_000,
  rssLimitMb: DEFAULT_RSS_LIMIT_MB,
  wave: 100,
  window: 100,
  stallMs: 60_000,
  gc: false,
}
export const QUICK: Partial<OfflineLoadOptions> = {
  devices: 100,
  users: 10,
  messages: 10_000,
  rssLimitMb: QUICK_RSS_LIMIT_MB,
}

/** The node's memory at one moment, MB: VmRSS, its anonymous and file-backed parts, V8 heap used. */
export interface MemPoint {
  rss: number
  anon: number
  file: number
  /** The main thread's V8 heap in use (from /metrics), garbage not yet collected included. */
  heapUsed: number
  /** The main thread's V8 heap as allocated, and memory outside it held by JS objects (Buffers). */
  heapTotal: number
  external: number
  /** natter_undelivered_messages: deliveries to users with a device connected not yet acknowledged. */
  undelivered: number
}

/** The node's memory at points of the run, and RSS peaks of its phases (MB). */
export interface RssReport {
  /** Right after the node said it listens. */
  started: MemPoint
  /** Every device connected for the first time (nothing owed). */
  firstConnected: MemPoint
  /** Every device offline, before the sends: the baseline. */
  baseline: MemPoint
  /** After the last PUBACK, the devices still offline. */
  afterSends: MemPoint
  /** Every device connected again and caught up. */
  allConnected: MemPoint
  /** Every device offline again at the end. */
  offlineAgain: MemPoint
  /** Peak RSS from the baseline to the first reconnect (the sends, every device offline). */
  peakOffline: number
  /** Peak RSS while the devices came back and caught up. */
  peakCatchUp: number
  /** Highest RSS sample of the run. */
  peak: number
  samples: number
}

export interface OfflineLoadResult {
  options: Omit<OfflineLoadOptions, 'log' | 'signal'>
  chats: number
  sent: number
  /** Messages the chats gained while the devices were away (from chat.get lastSeq). */
  stored: number
  /** Sends refused with a notice on the sender's error topic. */
  refused: number
  expected: number
  /** Distinct (chat, seq) deliveries, summed over devices. */
  received: number
  missing: number
  /** A seq received again by the same device (DUP or not). */
  repeated: number
  /** A first delivery of a seq lower than one the device already had of that chat. */
  outOfOrder: number
  /** Deliveries flagged DUP=1 (information; each one is also counted as received or repeated). */
  dupFlagged: number
  /** Inbox messages outside the range sent (another seq, another chat); information. */
  extra: number
  /** Other inbox events (delivered receipts), information. */
  otherEvents: number
  /** Reconnects whose CONNACK said the session was not present. */
  sessionsLost: number
  /** Devices whose connection closed before the end. */
  dropped: number
  /** Devices that did not have everything when their wave ended. */
  devicesShort: number
  rss: RssReport
  rssLimitMb: number
  times: {
    setupMs: number
    sendMs: number
    catchUpMs: number
    totalMs: number
    /** CPU time of the node process during the sends and during the catch-up. */
    nodeCpuSendMs: number
    nodeCpuCatchUpMs: number
    /** CPU time of this process (the devices) during the catch-up. */
    clientCpuCatchUpMs: number
  }
  /** Warnings and errors the node logged (the first ones). */
  nodeProblems: string[]
  nodeProblemCount: number
  ok: boolean
  failures: string[]
}

// ---------------------------------------------------------------------------------------------
// A minimal MQTT 3.1.1 client on mqtt-packet: a thousand of them in one process, acknowledging
// every QoS 1 PUBLISH of a chunk with one write, and keeping nothing of what arrives.

interface Connack {
  sessionPresent: boolean
}

class RawClient {
  readonly clientId: string
  readonly socket: Socket
  readonly #parser = mqttPacket.parser({ protocolVersion: 4 })
  readonly #waiting = new Map<number, (p: mqttPacket.Packet) => void>()
  #connack: ((p: mqttPacket.IConnackPacket) => void) | undefined
  #nextId = 1
  #acks: number[] = []
  #ending = false
  /** Resolves when the socket closed. */
  readonly closed: Promise<void>
  /** Called when the socket closed without end(). */
  onDrop: (() => void) | undefined
  onMessage: ((topic: string, payload: Buffer, dup: boolean) => void) | undefined

  private constructor(port: number, clientId: string) {
    this.clientId = clientId
    this.socket = createConnection({ host: '127.0.0.1', port, noDelay: true })
    this.closed = once(this.socket, 'close').then(() => {
      if (!this.#ending) this.onDrop?.()
    })
    this.#parser.on('packet', (p) => this.#packet(p))
    this.#parser.on('error', (err) => this.socket.destroy(err))
    this.socket.on('error', () => {})
    this.socket.on('data', (chunk: Buffer) => {
      this.#parser.parse(chunk)
      if (this.#acks.length === 0) return
      // After our DISCONNECT nothing more is acknowledged (the session keeps it unacknowledged).
      if (!this.socket.writable) {
        this.#acks = []
        return
      }
      const out = Buffer.allocUnsafe(4 * this.#acks.length)
      for (const [i, id] of this.#acks.entries()) {
        out[4 * i] = 0x40
        out[4 * i + 1] = 2
        out.writeUInt16BE(id, 4 * i + 2)
      }
      this.#acks = []
      this.socket.write(out)
    })
  }

  static async connect(
    port: number,
    clientId: string,
    token: string,
    clean: boolean,
    onMessage?: RawClient['onMessage'],
  ): Promise<{ client: RawClient; connack: Connack }> {
    const c = new RawClient(port, clientId)
    c.onMessage = onMessage
    const got = new Promise<mqttPacket.IConnackPacket>((resolve, reject) => {
      c.#connack = resolve
      c.closed.then(() => reject(new Error(`${clientId}: connection closed before the CONNACK`)))
    })
    got.catch(() => {})
    await once(c.socket, 'connect')
    c.socket.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId,
        clean,
        // No keepalive: a device that waits for its wave must not be closed for silence.
        keepalive: 0,
        username: clientId.slice(0, clientId.indexOf('/')),
        password: Buffer.from(token),
      }),
    )
    const p = await got
    if (p.returnCode !== 0) {
      c.socket.destroy()
      throw new Error(`${clientId}: CONNACK ${p.returnCode}`)
    }
    return { client: c, connack: { sessionPresent: p.sessionPresent } }
  }

  #packet(p: mqttPacket.Packet): void {
    if (p.cmd === 'publish') {
      if (p.qos === 1 && p.messageId !== undefined) this.#acks.push(p.messageId)
      this.onMessage?.(p.topic, p.payload as Buffer, p.dup)
    } else if (p.cmd === 'connack') {
      this.#connack?.(p)
      this.#connack = undefined
    } else if ((p.cmd === 'puback' || p.cmd === 'suback') && p.messageId !== undefined) {
      const w = this.#waiting.get(p.messageId)
      this.#waiting.delete(p.messageId)
      w?.(p)
    }
  }

  #id(): number {
    for (;;) {
      const id = this.#nextId
      this.#nextId = id >= 65535 ? 1 : id + 1
      if (!this.#waiting.has(id)) return id
    }
  }

  /** SUBACK granted QoS per filter (128 = refused). */
  subscribe(topics: string[]): Promise<number[]> {
    const messageId = this.#id()
    const gone = this.closed.then(() => {
      throw new Error(`${this.clientId}: connection closed before the SUBACK`)
    })
    const granted = new Promise<number[]>((resolve) => {
      this.#waiting.set(messageId, (p) => resolve((p as mqttPacket.ISubackPacket).granted as number[]))
      this.socket.write(
        mqttPacket.generate({
          cmd: 'subscribe',
          messageId,
          subscriptions: topics.map((topic) => ({ topic, qos: 1 as const })),
        }),
      )
    })
    return Promise.race([granted, gone])
  }

  /** A QoS 1 PUBLISH; `done` is called at its PUBACK. */
  publish(topic: string, payload: string, done: () => void): void {
    const messageId = this.#id()
    this.#waiting.set(messageId, done)
    this.socket.write(
      mqttPacket.generate({
        cmd: 'publish',
        topic,
        payload: Buffer.from(payload),
        qos: 1,
        messageId,
        dup: false,
        retain: false,
      }),
    )
  }

  /** DISCONNECT, then waits for the socket to close. */
  async end(): Promise<void> {
    this.#ending = true
    if (!this.socket.destroyed) {
      this.socket.end(mqttPacket.generate({ cmd: 'disconnect' }))
      // The server closes on DISCONNECT; a socket it leaves open is closed here after a while.
      const timer = setTimeout(() => this.socket.destroy(), 10_000)
      await this.closed
      clearTimeout(timer)
    }
  }
}

// ---------------------------------------------------------------------------------------------

interface Chat {
  id: string
  a: number
  b: number
  /** First and last seq of the messages sent while the devices were away. */
  first: number
  last: number
  acked: number
}

interface DeviceState {
  user: number
  clientId: string
  client: RawClient | undefined
  expected: number
  received: number
  repeated: number
  outOfOrder: number
  dupFlagged: number
  extra: number
  other: number
  /** One bit per seq of each of the user's chats, slot after slot. */
  bits: Uint8Array | undefined
  /** Highest seq received per chat slot. */
  maxSeen: Int32Array | undefined
  dropped: boolean
  done: (() => void) | undefined
}

const MB = 1024 * 1024

/**
 * What a run must undo if this process dies without reaching its `finally` (an uncaught
 * exception): the node process and the data directory. main() runs it synchronously then.
 */
const emergency = new Set<() => void>()

/** The node's memory (bytes) and CPU time (ms, user + system), from /proc. */
function procOf(pid: number): { rss: number; anon: number; file: number; cpuMs: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name may hold spaces; fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // USER_HZ is 100 on Linux.
  const cpuMs = (Number(fields[11]) + Number(fields[12])) * 10
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), cpuMs }
}

/**
 * The node process behind `sh bin/natter`: bin/natter and scripts/node.sh exec into node, so it
 * is normally the spawned pid itself; otherwise the first node among its descendants.
 */
function nodePid(pid: number): number {
  for (let p = pid, depth = 0; depth < 5; depth++) {
    // Node names its main thread "MainThread": the executable tells.
    if (basename(readlinkSync(`/proc/${p}/exe`)).startsWith('node')) return p
    const children = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/)
    const next = Number(children[0])
    if (!next) break
    p = next
  }
  throw new Error(`no node process under pid ${pid}`)
}

/** Runs fn over items, at most `limit` at once. */
async function pool<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T
      await fn(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Reads the node's log: `disconnected` lines per client id (with a wait on them), warnings and errors. */
class LogWatch {
  readonly #disconnects = new Map<string, number>()
  readonly #waiters = new Set<() => void>()
  readonly problems: string[] = []
  problemCount = 0

  constructor(proc: Proc) {
    proc.onLine((line) => {
      if (!line.startsWith('{')) return
      let o: { event?: string; clientId?: string; level?: number }
      try {
        o = JSON.parse(line)
      } catch {
        return
      }
      if ((o.level ?? 0) >= 40) {
        this.problemCount++
        if (this.problems.length < 20) this.problems.push(line)
      }
      if (o.event === 'disconnected' && o.clientId) {
        this.#disconnects.set(o.clientId, (this.#disconnects.get(o.clientId) ?? 0) + 1)
        for (const w of this.#waiters) w()
      }
    })
  }

  disconnects(clientId: string): number {
    return this.#disconnects.get(clientId) ?? 0
  }

  /** Resolves when every client id was logged as disconnected as many times as given. */
  allDisconnected(times: Map<string, number>, ms = 60_000): Promise<void> {
    const ids = [...times.keys()]
    const short = (id: string) => this.disconnects(id) < (times.get(id) ?? 0)
    const ok = () => !ids.some(short)
    if (ok()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!ok()) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        const left = ids.filter(short)
        reject(new Error(`the node did not log ${left.length} disconnects within ${ms} ms (${left[0]}, …)`))
      }, ms)
      this.#waiters.add(check)
    })
  }
}

/** The node's inspector (the gc option): forces a full garbage collection. */
class Inspector {
  readonly #ws: WebSocket
  #id = 0

  private constructor(ws: WebSocket) {
    this.#ws = ws
  }

  static async open(url: string): Promise<Inspector> {
    const ws = new WebSocket(url)
    await once(ws, 'open')
    return new Inspector(ws)
  }

  async gc(): Promise<void> {
    const id = ++this.#id
    const reply = new Promise<void>((resolve) => {
      const on = (data: Buffer) => {
        if ((JSON.parse(data.toString('utf8')) as { id?: number }).id !== id) return
        this.#ws.off('message', on)
        resolve()
      }
      this.#ws.on('message', on)
    })
    this.#ws.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }))
    await reply
  }

  close(): void {
    this.#ws.terminate()
  }
}

/** The node's RSS, sampled every 100 ms, with the peak of the current phase. */
class RssSampler {
  readonly #pid: number
  readonly #timer: NodeJS.Timeout
  #phasePeak = 0
  peak = 0
  samples = 0

  constructor(pid: number) {
    this.#pid = pid
    this.#timer = setInterval(() => this.sample(), 100)
  }

  sample(): ReturnType<typeof procOf> | undefined {
    let p: ReturnType<typeof procOf>
    try {
      p = procOf(this.#pid)
    } catch {
      return undefined
    }
    this.samples++
    if (p.rss > this.#phasePeak) this.#phasePeak = p.rss
    if (p.rss > this.peak) this.peak = p.rss
    return p
  }

  /** Ends a phase: its peak RSS (including a sample now); a new phase starts. */
  phase(): number {
    this.sample()
    const p = this.#phasePeak
    this.#phasePeak = 0
    return p
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}

export async function offlineLoad(
  given: Partial<OfflineLoadOptions> & Pick<OfflineLoadOptions, 'log'>,
): Promise<OfflineLoadResult> {
  const o: OfflineLoadOptions = { ...DEFAULTS, ...given }
  if (o.users < 2) throw new Error('--users must be at least 2 (the chats are direct chats)')
  if (o.devices < o.users) throw new Error('--devices must be at least --users')
  const { log, signal } = o
  const step = <T>(p: Promise<T>) => abortable(p, signal)
  const t0 = Date.now()
  const dataDir = mkdtempSync(join(tmpdir(), 'natter-offline-load-'))
  const secretText = randomBytes(32).toString('hex')
  const secret = new TextEncoder().encode(secretText)
  let node: Proc | undefined
  let sampler: RssSampler | undefined
  let inspector: Inspector | undefined
  const clients = new Set<RawClient>()
  const abandon = () => {
    node?.child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
  emergency.add(abandon)
  try {
    node = run('sh', ['bin/natter', 'start'], {
      ...localNodeEnv(dataDir, secretText),
      NATTER_LOG_LEVEL: 'info',
      ...(o.gc ? { NODE_OPTIONS: '--inspect=127.0.0.1:0' } : {}),
    })
    const watch = new LogWatch(node)
    const listening = JSON.parse(await step(node.waitFor(logEvent('listening'), 120_000))) as {
      ports: { mqtt: number; http: number }
    }
    const pid = nodePid(node.child.pid ?? 0)
    if (o.gc) {
      const line = await step(node.waitFor((l) => l.startsWith('Debugger listening on ws://')))
      inspector = await Inspector.open(line.slice('Debugger listening on '.length).trim())
    }
    const port = listening.ports.mqtt
    const http = `http://127.0.0.1:${listening.ports.http}`
    sampler = new RssSampler(pid)
    const s0 = sampler
    const point = async (): Promise<MemPoint> => {
      await inspector?.gc()
      const p = s0.sample()
      const metrics = await (await fetch(`${http}/metrics`)).text()
      const metric = (name: string) =>
        mb(Number(new RegExp(`^natter_nodejs_${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0))
      return {
        rss: mb(p?.rss ?? 0),
        anon: mb(p?.anon ?? 0),
        file: mb(p?.file ?? 0),
        heapUsed: metric('heap_size_used_bytes'),
        heapTotal: metric('heap_size_total_bytes'),
        external: metric('external_memory_bytes'),
        undelivered: Number(/^natter_undelivered_messages (\S+)$/m.exec(metrics)?.[1] ?? 0),
      }
    }
    const cpu = () => s0.sample()?.cpuMs ?? 0
    const none: MemPoint = {
      rss: 0,
      anon: 0,
      file: 0,
      heapUsed: 0,
      heapTotal: 0,
      external: 0,
      undelivered: 0,
    }
    const rss: RssReport = {
      started: await point(),
      firstConnected: none,
      baseline: none,
      afterSends: none,
      allConnected: none,
      offlineAgain: none,
      peakOffline: 0,
      peakCatchUp: 0,
      peak: 0,
      samples: 0,
    }
    log(`node pid ${pid} on mqtt ${port}, http ${listening.ports.http}; ${memText(rss.started)}`)

    const userIds = Array.from({ length: o.users }, (_, u) => `user${u}`)
    const tokens = await Promise.all(
      userIds.map((u) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject(u)
          .setIssuedAt()
          .setExpirationTime('12h')
          .sign(secret),
      ),
    )
    const token = (u: number) => tokens[u] as string
    const api = async <T>(u: number, op: string, params: Record<string, unknown>): Promise<T> => {
      const res = await fetch(`${http}/v1/${op}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token(u)}`, 'content-type': 'application/json' },
        body: JSON.stringify(params),
      })
      const body = (await res.json()) as { result?: T; error?: { code: string; message: string } }
      if (!res.ok || body.result === undefined)
        throw new Error(`${op} as ${userIds[u]}: ${res.status} ${JSON.stringify(body.error)}`)
      return body.result
    }

    // The chats: the direct chat of every two users.
    const chats: Chat[] = []
    for (let a = 0; a < o.users; a++) {
      for (let b = a + 1; b < o.users; b++) {
        const { id } = await step(api<{ id: string }>(a, 'chat.direct', { with: userIds[b] }))
        chats.push({ id, a, b, first: 0, last: 0, acked: 0 })
      }
    }
    const chatIndex = new Map(chats.map((c, i) => [c.id, i]))
    // Per user: its chats, in slot order, and chat index -> slot.
    const slotsOf = userIds.map((_, u) => chats.flatMap((c, i) => (c.a === u || c.b === u ? [i] : [])))
    const slotOf = slotsOf.map((list) => {
      const m = new Int32Array(chats.length).fill(-1)
      for (const [slot, i] of list.entries()) m[i] = slot
      return m
    })
    log(`${chats.length} direct chats between ${o.users} users`)

    // The devices: device i belongs to user i % users, so every wave holds some of every user.
    const devices: DeviceState[] = Array.from({ length: o.devices }, (_, i) => ({
      user: i % o.users,
      clientId: `${userIds[i % o.users]}/d${Math.floor(i / o.users)}`,
      client: undefined,
      expected: 0,
      received: 0,
      repeated: 0,
      outOfOrder: 0,
      dupFlagged: 0,
      extra: 0,
      other: 0,
      bits: undefined,
      maxSeen: undefined,
      dropped: false,
      done: undefined,
    }))
    let bytesPerSlot = 0
    let progress = 0
    const onInbox = (d: DeviceState) => (_topic: string, payload: Buffer, dup: boolean) => {
      const e = JSON.parse(payload.toString('utf8')) as { type?: string; chatId?: string; seq?: number }
      if (e.type !== 'message') {
        d.other++
        return
      }
      progress++
      if (dup) d.dupFlagged++
      const i = chatIndex.get(e.chatId ?? '')
      const slot = i === undefined ? -1 : (slotOf[d.user]?.[i] ?? -1)
      const c = i === undefined ? undefined : chats[i]
      const seq = e.seq ?? 0
      if (!c || slot < 0 || !d.bits || !d.maxSeen || seq < c.first || seq > c.last) {
        d.extra++
        return
      }
      const bit = slot * bytesPerSlot * 8 + (seq - c.first)
      const byte = bit >> 3
      const mask = 1 << (bit & 7)
      if ((d.bits[byte] as number) & mask) {
        d.repeated++
        return
      }
      d.bits[byte] = (d.bits[byte] as number) | mask
      d.received++
      if (seq < (d.maxSeen[slot] as number)) d.outOfOrder++
      else d.maxSeen[slot] = seq
      if (d.received === d.expected) d.done?.()
    }
    const connectDevice = async (d: DeviceState, subscribe: boolean): Promise<Connack> => {
      const { client, connack } = await RawClient.connect(port, d.clientId, token(d.user), false, onInbox(d))
      clients.add(client)
      d.client = client
      d.dropped = false
      client.onDrop = () => {
        d.dropped = true
        progress++ // wakes the stall check, which reports the device
      }
      if (subscribe) {
        const granted = await client.subscribe([`u/${userIds[d.user]}/inbox`])
        if (granted[0] !== 1) throw new Error(`${d.clientId}: inbox subscription refused (${granted[0]})`)
      }
      return connack
    }
    const disconnectAll = async (what: string) => {
      const connected = devices.filter((d) => d.client)
      const want = new Map(connected.map((d) => [d.clientId, watch.disconnects(d.clientId) + 1]))
      await pool(devices, o.wave, async (d) => {
        const c = d.client
        d.client = undefined
        if (!c) return
        await c.end()
        clients.delete(c)
      })
      // The node has run its disconnect handling for each one.
      await step(watch.allDisconnected(want))
      log(`${what}: ${want.size} devices disconnected`)
    }

    // Every device connects once, subscribes to its inbox, and goes away.
    await step(pool(devices, o.wave, async (d) => void (await connectDevice(d, true))))
    rss.firstConnected = await point()
    log(`${o.devices} devices connected and subscribed; ${memText(rss.firstConnected)}`)
    await disconnectAll('first connection')
    sampler.phase()
    rss.baseline = await point()
    const setupMs = Date.now() - t0
    log(`baseline (devices offline): ${memText(rss.baseline)}`)

    // Where each chat stands before the sends.
    for (const c of chats) {
      const chat = await step(api<{ lastSeq: number }>(c.a, 'chat.get', { chatId: c.id }))
      c.first = chat.lastSeq + 1
    }

    // The sends: message k goes to chat k % chats, from one of its two members in turn, each
    // member's sender keeping `window` in flight.
    const senders: RawClient[] = []
    const refusals: string[] = []
    for (let u = 0; u < o.users; u++) {
      const id = `${userIds[u]}/sender`
      const { client } = await step(
        RawClient.connect(port, id, token(u), true, (topic, payload) => {
          if (topic === `d/${id}/err`) refusals.push(payload.toString('utf8'))
        }),
      )
      clients.add(client)
      senders.push(client)
      await client.subscribe([`d/${id}/err`])
    }
    const queues: number[][] = userIds.map(() => [])
    for (let k = 0; k < o.messages; k++) {
      const c = chats[k % chats.length] as Chat
      const from = Math.floor(k / chats.length) % 2 === 0 ? c.a : c.b
      queues[from]?.push(k)
    }
    let acked = 0
    const sendStart = Date.now()
    const cpuSendStart = cpu()
    let lastReport = sendStart
    await step(
      new Promise<void>((resolve, reject) => {
        if (o.messages === 0) resolve()
        for (const [u, queue] of queues.entries()) {
          const sender = senders[u] as RawClient
          sender.onDrop = () => reject(new Error(`sender ${sender.clientId} was disconnected`))
          let next = 0
          let done = 0
          const pump = () => {
            while (next < queue.length && next - done < o.window) {
              const k = queue[next++] as number
              const c = chats[k % chats.length] as Chat
              const text = `offline-load message ${k} `.padEnd(64, '.')
              sender.publish(`c/${c.id}/send`, JSON.stringify({ clientMsgId: `k${k}`, text }), () => {
                done++
                c.acked++
                acked++
                if (acked === o.messages) resolve()
                else pump()
                const now = Date.now()
                if (now - lastReport >= 5000) {
                  lastReport = now
                  log(`  sent ${acked} of ${o.messages}; RSS ${mb(s0.sample()?.rss ?? 0)} MB`)
                }
              })
            }
          }
          pump()
        }
      }),
    )
    const sendMs = Date.now() - sendStart
    const nodeCpuSendMs = cpu() - cpuSendStart
    rss.afterSends = await point()
    log(
      `${acked} messages acknowledged in ${(sendMs / 1000).toFixed(1)} s (${Math.round((acked * 1000) / sendMs)}/s); ${memText(rss.afterSends)}`,
    )
    await Promise.all(senders.map((s) => s.end()))
    for (const s of senders) clients.delete(s)

    // Where each chat stands after them: the range every member device is owed.
    let stored = 0
    for (const c of chats) {
      const chat = await step(api<{ lastSeq: number }>(c.a, 'chat.get', { chatId: c.id }))
      c.last = chat.lastSeq
      stored += c.last - c.first + 1
    }
    bytesPerSlot = Math.ceil(Math.max(1, ...chats.map((c) => c.last - c.first + 1)) / 8)
    for (const d of devices) {
      const slots = slotsOf[d.user] ?? []
      d.expected = slots.reduce((n, i) => n + ((chats[i] as Chat).last - (chats[i] as Chat).first + 1), 0)
      d.bits = new Uint8Array(slots.length * bytesPerSlot)
      d.maxSeen = new Int32Array(slots.length)
    }
    const expected = devices.reduce((n, d) => n + d.expected, 0)
    rss.peakOffline = mb(sampler.phase())
    log(`offline peak RSS ${rss.peakOffline} MB; ${expected} deliveries owed`)

    // The devices come back in waves, and stay connected.
    const catchUpStart = Date.now()
    const cpuCatchUpStart = cpu()
    const clientCpuStart = process.cpuUsage()
    let sessionsLost = 0
    let devicesShort = 0
    for (let w = 0; w < devices.length; w += o.wave) {
      const wave = devices.slice(w, w + o.wave)
      const waveStart = Date.now()
      const finished = Promise.all(
        wave.map(
          (d) =>
            new Promise<void>((resolve) => {
              d.done = resolve
              if (d.received >= d.expected) resolve()
            }),
        ),
      )
      await step(
        Promise.all(
          wave.map(async (d) => {
            // No SUBSCRIBE: the session has the inbox subscription.
            const { sessionPresent } = await connectDevice(d, false)
            if (!sessionPresent) sessionsLost++
          }),
        ),
      )
      // Waits for the wave to have everything, or to stop receiving for stallMs.
      await step(
        new Promise<void>((resolve) => {
          let seen = progress
          let quietSince = Date.now()
          const timer = setInterval(() => {
            if (progress !== seen) {
              seen = progress
              quietSince = Date.now()
            }
            const stalled = Date.now() - quietSince >= o.stallMs
            const allDropped = wave.every((d) => d.dropped || d.received >= d.expected)
            if (stalled || allDropped) {
              clearInterval(timer)
              resolve()
            }
          }, 250)
          finished.then(() => {
            clearInterval(timer)
            resolve()
          })
        }),
      )
      const short = wave.filter((d) => d.received < d.expected)
      devicesShort += short.length
      const got = wave.reduce((n, d) => n + d.received, 0)
      const owed = wave.reduce((n, d) => n + d.expected, 0)
      log(
        `  wave ${w / o.wave + 1}: ${wave.length} devices, ${got} of ${owed} in ${((Date.now() - waveStart) / 1000).toFixed(1)} s` +
          `${short.length ? `, ${short.length} short (${short[0]?.clientId}: ${short[0]?.received} of ${short[0]?.expected})` : ''}; RSS ${mb(sampler.sample()?.rss ?? 0)} MB`,
      )
    }
    const catchUpMs = Date.now() - catchUpStart
    const nodeCpuCatchUpMs = cpu() - cpuCatchUpStart
    const clientCpu = process.cpuUsage(clientCpuStart)
    const clientCpuCatchUpMs = Math.round((clientCpu.user + clientCpu.system) / 1000)
    rss.peakCatchUp = mb(sampler.phase())
    rss.allConnected = await point()
    log(
      `caught up in ${(catchUpMs / 1000).toFixed(1)} s; every device connected: ${memText(rss.allConnected)}`,
    )
    const dropped = devices.filter((d) => d.dropped).length
    await disconnectAll('end')
    rss.offlineAgain = await point()
    log(`every device offline again: ${memText(rss.offlineAgain)}`)
    sampler.stop()
    rss.peak = mb(sampler.peak)
    rss.samples = sampler.samples

    const sum = (f: (d: DeviceState) => number) => devices.reduce((n, d) => n + f(d), 0)
    const received = sum((d) => d.received)
    const r: OfflineLoadResult = {
      options: {
        devices: o.devices,
        users: o.users,
        messages: o.messages,
        rssLimitMb: o.rssLimitMb,
        wave: o.wave,
        window: o.window,
        stallMs: o.stallMs,
        gc: o.gc,
      },
      chats: chats.length,
      sent: acked,
      stored,
      refused: refusals.length,
      expected,
      received,
      missing: expected - received,
      repeated: sum((d) => d.repeated),
      outOfOrder: sum((d) => d.outOfOrder),
      dupFlagged: sum((d) => d.dupFlagged),
      extra: sum((d) => d.extra),
      otherEvents: sum((d) => d.other),
      sessionsLost,
      dropped,
      devicesShort,
      rss,
      rssLimitMb: o.rssLimitMb,
      times: {
        setupMs,
        sendMs,
        catchUpMs,
        totalMs: Date.now() - t0,
        nodeCpuSendMs,
        nodeCpuCatchUpMs,
        clientCpuCatchUpMs,
      },
      nodeProblems: watch.problems,
      nodeProblemCount: watch.problemCount,
      ok: false,
      failures: [],
    }
    const uneven = chats.filter((c) => c.last - c.first + 1 !== c.acked)
    if (uneven.length)
      r.failures.push(
        `${uneven.length} chats gained another number of messages than were acknowledged in them (${uneven[0]?.id})`,
      )
    if (r.stored !== r.sent)
      r.failures.push(`the chats gained ${r.stored} messages for ${r.sent} acknowledged`)
    if (r.refused) r.failures.push(`${r.refused} sends refused: ${refusals[0]}`)
    if (r.missing) r.failures.push(`${r.missing} deliveries missing (${r.devicesShort} devices short)`)
    if (r.repeated) r.failures.push(`${r.repeated} deliveries repeated`)
    if (r.outOfOrder) r.failures.push(`${r.outOfOrder} deliveries out of order`)
    if (r.sessionsLost) r.failures.push(`${r.sessionsLost} reconnects found no session`)
    if (r.dropped) r.failures.push(`${r.dropped} devices were disconnected by the node`)
    if (rss.peak >= o.rssLimitMb)
      r.failures.push(`the node's RSS reached ${rss.peak} MB, limit ${o.rssLimitMb} MB`)
    r.ok = r.failures.length === 0
    return r
  } finally {
    sampler?.stop()
    inspector?.close()
    for (const c of clients) c.socket.destroy()
    if (node) {
      const exited = node.exited
      const kill = setTimeout(() => node?.child.kill('SIGKILL'), 30_000)
      await node.stop()
      await exited
      clearTimeout(kill)
    }
    rmSync(dataDir, { recursive: true, force: true })
    emergency.delete(abandon)
  }
}

const mb = (bytes: number) => Math.round((bytes / MB) * 10) / 10
const memText = (p: MemPoint) =>
  `RSS ${p.rss} MB (anon ${p.anon}, file ${p.file}; V8 heap ${p.heapUsed} used of ${p.heapTotal}, external ${p.external}; undelivered tracked ${n(p.undelivered)})`
const n = (x: number) => x.toLocaleString('en-US')
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** The result as a markdown table. */
export function offlineLoadTable(r: OfflineLoadResult): string {
  const perUser = r.options.devices / r.options.users
  const rows: Array<[string, string]> = [
    ['devices (persistent, clean=false)', `${n(r.options.devices)} (${r.options.users} users × ${perUser})`],
    ['chats', `${r.chats} direct chats (every message reaches both members' devices)`],
    ['messages sent (acknowledged at PUBACK)', `${n(r.sent)} (stored ${n(r.stored)}, refused ${r.refused})`],
    ['deliveries expected', n(r.expected)],
    ['deliveries received (distinct seqs)', n(r.received)],
    ['missing', n(r.missing)],
    ['repeated', n(r.repeated)],
    ['out of order', n(r.outOfOrder)],
    ['sessions not present on reconnect / devices dropped', `${r.sessionsLost} / ${r.dropped}`],
    [
      'DUP-flagged deliveries / other inbox events (receipts) / extra',
      `${n(r.dupFlagged)} / ${n(r.otherEvents)} / ${n(r.extra)}`,
    ],
    ['RSS at start', memText(r.rss.started)],
    [`RSS, all ${n(r.options.devices)} devices connected, nothing owed`, memText(r.rss.firstConnected)],
    ['RSS baseline: devices offline, before the sends', memText(r.rss.baseline)],
    ['RSS peak while offline (during the sends)', `${r.rss.peakOffline} MB`],
    ['RSS after the sends, devices offline', memText(r.rss.afterSends)],
    [`RSS peak during catch-up (${r.options.wave} devices at a time)`, `${r.rss.peakCatchUp} MB`],
    ['RSS, all devices connected, caught up', memText(r.rss.allConnected)],
    ['RSS, all devices offline again', memText(r.rss.offlineAgain)],
    ['memory points taken after a forced full GC (--gc)', r.options.gc ? 'yes' : 'no'],
    ['RSS peak of the run / limit', `${r.rss.peak} MB / ${r.rssLimitMb} MB (${r.rss.samples} samples)`],
    ['setup (node, chats, first connections)', s(r.times.setupMs)],
    [
      'sends',
      `${s(r.times.sendMs)} (${n(Math.round((r.sent * 1000) / Math.max(1, r.times.sendMs)))} messages/s, ${r.options.window} in flight per sender; node CPU ${s(r.times.nodeCpuSendMs)})`,
    ],
    [
      'catch-up',
      `${s(r.times.catchUpMs)} (${n(Math.round((r.received * 1000) / Math.max(1, r.times.catchUpMs)))} deliveries/s; CPU: node ${s(r.times.nodeCpuCatchUpMs)}, devices ${s(r.times.clientCpuCatchUpMs)})`,
    ],
    ['total', s(r.times.totalMs)],
    ['node warnings/errors logged', String(r.nodeProblemCount)],
    ['result', r.ok ? 'PASS' : `FAIL: ${r.failures.join('; ')}`],
  ]
  const w = Math.max(...rows.map(([k]) => k.length))
  return [
    `| ${'what'.padEnd(w)} | value |`,
    `| ${'-'.repeat(w)} | ----- |`,
    ...rows.map(([k, v]) => `| ${k.padEnd(w)} | ${v} |`),
  ].join('\n')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string' },
      users: { type: 'string' },
      messages: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'rss-limit-mb': { type: 'string' },
      wave: { type: 'string' },
      window: { type: 'string' },
      'stall-ms': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      gc: { type: 'boolean', default: false },
    },
  })
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined
    const x = Number(v)
    if (!Number.isInteger(x) || x < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`)
    return x
  }
  const given: Partial<OfflineLoadOptions> = { ...(values.quick ? QUICK : {}), gc: values.gc }
  const set = <K extends keyof OfflineLoadOptions>(k: K, v: OfflineLoadOptions[K] | undefined) => {
    if (v !== undefined) given[k] = v
  }
  set('devices', int('devices', values.devices, 1))
  set('users', int('users', values.users, 2))
  set('messages', int('messages', values.messages, 0))
  set('rssLimitMb', int('rss-limit-mb', values['rss-limit-mb'], 1))
  set('wave', int('wave', values.wave, 1))
  set('window', int('window', values.window, 1))
  set('stallMs', int('stall-ms', values['stall-ms'], 1000))
  const started = Date.now()
  const log = (line: string) => {
    if (!values.quiet)
      process.stderr.write(`${new Date().toISOString().slice(11, 19)} +${s(Date.now() - started)} ${line}\n`)
  }
  const stop = new AbortController()
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort(sig))
  process.on('uncaughtException', (err) => {
    console.error(err)
    for (const undo of emergency) undo()
    process.exit(1)
  })
  const r = await offlineLoad({ ...given, log, signal: stop.signal })
  process.stdout.write(`${offlineLoadTable(r)}\n`)
  if (r.nodeProblems.length) process.stdout.write(`\nnode warnings/errors:\n${r.nodeProblems.join('\n')}\n`)
  // Timers of sockets or the child must not keep a finished run alive.
  process.exit(r.ok ? 0 : 1)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err)
    process.exit(1)
  })
}
