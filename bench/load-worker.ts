import mqtt, { type MqttClient } from 'mqtt'

/**
 * One load-generator process: it opens its share of clients, sends on a fixed schedule (or as
 * fast as the window allows), and measures each message from its intended send time to its
 * arrival, so a stalled broker shows as latency rather than as a slower schedule (coordinated
 * omission). The parent sends jobs over IPC and gets results back.
 */

export interface ClientSpec {
  url: string
  clientId: string
  username?: string
  password?: string
}

export interface Pair {
  pub: ClientSpec
  sub: ClientSpec
  pubTopic: string
  subTopic: string
  /** A topic the publishing device subscribes to as well (a chat sender's own inbox). */
  pubSubscribe?: string
}

export type Job =
  | {
      kind: 'stream'
      pairs: Pair[]
      qos: 0 | 1
      /** Messages per second from this worker; 0 sends as fast as the window allows. */
      rate: number
      /** Sent before the measured part and left out of every figure (JIT, first queries). */
      warmupMs: number
      /** The measured part, after the warm-up. */
      durationMs: number
      payloadBytes: number
      /** chat: JSON chat messages in, inbox events out; raw: bytes relayed as they are. */
      format: 'raw' | 'chat'
      window: number
    }
  | {
      kind: 'listen'
      /** Persistent sessions (clean=false), as apps keep; ids unique to the run. */
      clients: Array<ClientSpec & { topic: string }>
      /** The text of the chat message waited for. */
      text: string
    }
  | { kind: 'send-once'; client: ClientSpec; topic: string; text: string }
  | {
      kind: 'connect'
      /** Persistent sessions, each subscribed to its topic at QoS 1 (a device's inbox). */
      clients: Array<ClientSpec & { topic: string }>
    }
  | { kind: 'close' }
  | {
      kind: 'flood'
      /** One device sending chat messages as fast as `window` unacknowledged ones allow, until told to stop. */
      client: ClientSpec
      topic: string
      /** Its error topic: the rate_limited notices are counted there. */
      errTopic: string
      window: number
    }

const now = () => performance.timeOrigin + performance.now()
let RUN = ''
const open: MqttClient[] = []

function connect(spec: ClientSpec, clean = true): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(spec.url, {
      clientId: spec.clientId,
      username: spec.username,
      password: spec.password,
      clean,
      reconnectPeriod: 0,
      connectTimeout: 60_000,
      keepalive: 300,
      protocolVersion: 4,
    })
    client.once('connect', () => {
      // As Natter's client SDK, mosquitto's clients and Paho do: without it mqtt.js waits for
      // delayed TCP ACKs, and every target would be measured with up to 40 ms added.
      ;(client.stream as { setNoDelay?: (on: boolean) => unknown }).setNoDelay?.(true)
      open.push(client)
      resolve(client)
    })
    client.once('error', reject)
  })
}

async function inBatches<T, R>(items: T[], size: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))))
  return out
}

function payload(format: 'raw' | 'chat', bytes: number, intended: number, n: number): Buffer | string {
  if (format === 'raw') {
    const b = Buffer.alloc(bytes)
    b.writeDoubleLE(intended, 0)
    return b
  }
  const text = `${intended} ${'x'.repeat(Math.max(0, bytes - 20))}`
  // Unique across steps too: a repeated clientMsgId is a retry, stored once and not fanned out.
  return JSON.stringify({ clientMsgId: `${RUN}-${n}`, text })
}

function sentAt(format: 'raw' | 'chat', body: Buffer): number | null {
  if (format === 'raw') return body.length >= 8 ? body.readDoubleLE(0) : null
  try {
    const e = JSON.parse(body.toString('utf8')) as { type?: string; text?: string }
    if (e.type !== 'message' || typeof e.text !== 'string') return null
    return Number(e.text.slice(0, e.text.indexOf(' ')))
  } catch {
    return null
  }
}

async function stream(job: Extract<Job, { kind: 'stream' }>) {
  RUN = `${process.pid}-${Date.now().toString(36)}`
  const latencies: number[] = []
  let received = 0
  let measured = 0
  let lastArrival = 0
  // Set when the warm-up ends: only what arrives after it counts towards rates and latencies.
  let measureFrom = Number.POSITIVE_INFINITY
  // Chat devices keep persistent sessions, as apps do: their inbox is delivered from the store
  // with delivered receipts from every PUBACK.
  const persistent = job.format === 'chat'
  const subs = await inBatches(job.pairs, 50, async (p) => {
    const c = await connect(p.sub, !persistent)
    await c.subscribeAsync(p.subTopic, { qos: job.qos })
    c.on('message', (_t, body) => {
      const t = sentAt(job.format, body)
      if (t === null) return
      received++
      lastArrival = now()
      if (lastArrival >= measureFrom) measured++
      if (t >= measureFrom) latencies.push(lastArrival - t)
    })
    return c
  })
  const pubs = await inBatches(job.pairs, 50, async (p) => {
    const c = await connect(p.pub, !persistent)
    if (p.pubSubscribe) await c.subscribeAsync(p.pubSubscribe, { qos: job.qos })
    return c
  })
  process.send?.({ event: 'ready' })
  await new Promise<void>((resolve) => process.once('message', () => resolve()))

  const start = now()
  let cpuStart = process.cpuUsage()
  const warmup = setTimeout(() => {
    measureFrom = now()
    cpuStart = process.cpuUsage()
  }, job.warmupMs)
  let sent = 0
  let acked = 0
  let inflight = 0
  const end = start + job.warmupMs + job.durationMs
  await new Promise<void>((resolve) => {
    // Sleeps between sends instead of spinning: a generator that busy-waits takes the CPU the
    // broker under test needs on a small machine, and its latency would be the generator's.
    let done = false
    let waitingForAck = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(endTimer)
      resolve()
    }
    const endTimer = setTimeout(finish, job.warmupMs + job.durationMs)
    const tick = () => {
      if (done) return
      const t = now()
      if (t >= end) return finish()
      const due = job.rate > 0 ? Math.floor(((t - start) / 1000) * job.rate) : Number.POSITIVE_INFINITY
      let burst = 0
      while (sent < due && inflight < job.window && burst < 500) {
        const intended = job.rate > 0 ? start + (sent / job.rate) * 1000 : now()
        const i = sent % job.pairs.length
        const pair = job.pairs[i] as Pair
        inflight++
        ;(pubs[i] as MqttClient).publish(
          pair.pubTopic,
          payload(job.format, job.payloadBytes, intended, sent),
          { qos: job.qos },
          () => {
            inflight--
            acked++
            if (waitingForAck) {
              waitingForAck = false
              setImmediate(tick)
            }
          },
        )
        sent++
        burst++
      }
      if (inflight >= job.window) waitingForAck = true
      else if (burst >= 500 || job.rate === 0) setImmediate(tick)
      else setTimeout(tick, Math.max(0, start + ((sent + 1) / job.rate) * 1000 - now()))
    }
    tick()
  })
  const sendEnd = now()
  // Wait for the tail: until everything sent has arrived, or 3 s without progress.
  await new Promise<void>((resolve) => {
    let last = received
    let still = 0
    const check = () => {
      if (received >= sent) return resolve()
      still = received === last ? still + 1 : 0
      last = received
      if (still >= 30) return resolve()
      setTimeout(check, 100)
    }
    check()
  })
  clearTimeout(warmup)
  const cpu = process.cpuUsage(cpuStart)
  for (const c of [...pubs, ...subs]) c.end(true)
  const from = Number.isFinite(measureFrom) ? measureFrom : start
  return {
    sent,
    acked,
    received,
    measured,
    latencies,
    sendMs: sendEnd - from,
    // Until the last arrival: a broker that falls behind delivers over a longer time than it took to send.
    spanMs: Math.max(sendEnd, lastArrival) - from,
    cpuUs: cpu.user + cpu.system,
  }
}

/**
 * The flooding device of the flood part: QoS 1 chat sends with up to `window` unacknowledged,
 * from "go" until "stop"; counts what it sent, what was acknowledged, and the rate_limited
 * notices it got.
 */
async function flood(job: Extract<Job, { kind: 'flood' }>) {
  const c = await connect(job.client)
  const notices = new Map<string, number>()
  c.on('message', (topic, body) => {
    if (topic !== job.errTopic) return
    try {
      const code = (JSON.parse(body.toString('utf8')) as { code?: string }).code ?? 'none'
      notices.set(code, (notices.get(code) ?? 0) + 1)
    } catch {}
  })
  await c.subscribeAsync(job.errTopic, { qos: 1 })
  process.send?.({ event: 'ready' })
  await new Promise<void>((resolve) => process.once('message', () => resolve()))
  let sent = 0
  let acked = 0
  let stopped = false
  const run = `${process.pid}-${Date.now().toString(36)}`
  const pump = () => {
    while (!stopped && sent - acked < job.window) {
      const n = sent++
      c.publish(
        job.topic,
        JSON.stringify({ clientMsgId: `${run}-${n}`, text: `flood ${n}` }),
        { qos: 1 },
        (err) => {
          // Called with an error for what is still unacknowledged when the client ends.
          if (err) return
          acked++
          if (sent - acked === job.window - 1) setImmediate(pump)
        },
      )
    }
  }
  const started = performance.now()
  pump()
  await new Promise<void>((resolve) => {
    const onStop = (m: { kind?: string }) => {
      if (m.kind !== 'stop') return
      process.off('message', onStop)
      resolve()
    }
    process.on('message', onStop)
  })
  stopped = true
  const ms = performance.now() - started
  // The notices of the last refusals come after their PUBACKs: counted until 500 ms pass without one.
  let seen = -1
  for (let total = 0; total !== seen; ) {
    seen = total
    await new Promise((resolve) => setTimeout(resolve, 500))
    total = [...notices.values()].reduce((a, n) => a + n, 0)
  }
  const result = { sent, acked, ms, notices: Object.fromEntries(notices) }
  c.end(true)
  return result
}

const listeners: MqttClient[] = []
const arrivals: number[] = []

process.on('message', async (job: Job) => {
  try {
    if (job.kind === 'stream') process.send?.({ event: 'result', result: await stream(job) })
    else if (job.kind === 'flood') process.send?.({ event: 'result', result: await flood(job) })
    else if (job.kind === 'listen') {
      arrivals.length = 0
      const clients = await inBatches(job.clients, 50, async (spec) => {
        const c = await connect(spec, false)
        await c.subscribeAsync(spec.topic, { qos: 1 })
        // The first arrival of this message only: not the group's other events, not a redelivery.
        let arrived = false
        c.on('message', (_t, body) => {
          if (arrived) return
          try {
            const e = JSON.parse(body.toString('utf8')) as { type?: string; text?: string }
            if (e.type !== 'message' || e.text !== job.text) return
          } catch {
            return
          }
          arrived = true
          arrivals.push(now())
          if (arrivals.length === job.clients.length) process.send?.({ event: 'arrived' })
        })
        return c
      })
      listeners.push(...clients)
      process.send?.({ event: 'ready' })
    } else if (job.kind === 'send-once') {
      const c = await connect(job.client)
      const at = now()
      await c.publishAsync(job.topic, JSON.stringify({ clientMsgId: `f${at}`, text: job.text }), { qos: 1 })
      process.send?.({ event: 'sent', at })
    } else if (job.kind === 'connect') {
      const started = now()
      await inBatches(job.clients, 200, async (spec) => {
        const c = await connect(spec, false)
        await c.subscribeAsync(spec.topic, { qos: 1 })
      })
      process.send?.({ event: 'connected', ms: now() - started })
    } else if (job.kind === 'close') {
      for (const c of open) c.end(true)
      open.length = 0
      process.send?.({ event: 'closed', arrivals: [...arrivals] })
    }
  } catch (err) {
    process.send?.({ event: 'error', message: (err as Error).message })
  }
})
process.send?.({ event: 'up' })
