import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

export type InKind = 'chat' | 'typing' | 'request' | 'self' | 'refused'
export type OutKind = 'inbox' | 'typing' | 'presence' | 'reply' | 'error' | 'self'

/** What the services report; the Prometheus registry behind it is served on /metrics. */
export interface Telemetry {
  connected(delta: 1 | -1): void
  connack(returnCode: number): void
  messageIn(kind: InKind): void
  messageOut(kind: OutKind): void
  storeWrite(seconds: number): void
  delivered(seconds: number): void
}

export interface Gauges {
  /** Age in seconds of the oldest message a connected device has not acknowledged; 0 when none. */
  oldestUndeliveredSeconds(): number
  /** Bytes waiting in clients' outgoing buffers, summed. */
  bufferedBytes(): number
  /** Messages fanned out to connected users that none of their devices has acknowledged. */
  undeliveredCount(): number
}

const CONNACK = [
  'accepted',
  'bad_protocol',
  'identifier_rejected',
  'unavailable',
  'bad_credentials',
  'not_authorized',
]

export function createMetrics(gauges: Gauges): { registry: Registry; telemetry: Telemetry } {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'natter_' })
  const connections = new Gauge({
    name: 'natter_connections',
    help: 'MQTT clients connected now',
    registers: [registry],
  })
  const connacks = new Counter({
    name: 'natter_connects_total',
    help: 'CONNECT answers by result',
    labelNames: ['result'],
    registers: [registry],
  })
  // Counted for every packet: a plain tally, handed to the counter when /metrics is read
  // (prom-client hashes the labels on every inc, about 1% of a chat message's CPU).
  const inCounts = new Map<InKind, number>()
  const outCounts = new Map<OutKind, number>()
  new Counter({
    name: 'natter_messages_in_total',
    help: 'PUBLISH packets from clients by kind (refused: acknowledged and dropped)',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      for (const [kind, n] of inCounts) this.inc({ kind }, n)
      inCounts.clear()
    },
  })
  new Counter({
    name: 'natter_messages_out_total',
    help: 'Deliveries to clients by kind',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      for (const [kind, n] of outCounts) this.inc({ kind }, n)
      outCounts.clear()
    },
  })
  const storeWrite = new Histogram({
    name: 'natter_store_write_seconds',
    help: 'Time to store a chat message durably (before its PUBACK)',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  })
  const delivery = new Histogram({
    name: 'natter_delivery_seconds',
    help: "From a message's acceptance to the first PUBACK of it by each recipient",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers: [registry],
  })
  new Gauge({
    name: 'natter_oldest_undelivered_seconds',
    help: 'Age of the oldest message that a connected recipient has not acknowledged',
    registers: [registry],
    collect() {
      this.set(gauges.oldestUndeliveredSeconds())
    },
  })
  new Gauge({
    name: 'natter_client_buffered_bytes',
    help: "Bytes waiting in clients' outgoing buffers",
    registers: [registry],
    collect() {
      this.set(gauges.bufferedBytes())
    },
  })
  new Gauge({
    name: 'natter_undelivered_messages',
    help: 'Messages fanned out to connected users that none of their devices has acknowledged yet',
    registers: [registry],
    collect() {
      this.set(gauges.undeliveredCount())
    },
  })
  const telemetry: Telemetry = {
    connected: (delta) => connections.inc(delta),
    connack: (code) => connacks.inc({ result: CONNACK[code] ?? `code_${code}` }),
    messageIn: (kind) => inCounts.set(kind, (inCounts.get(kind) ?? 0) + 1),
    messageOut: (kind) => outCounts.set(kind, (outCounts.get(kind) ?? 0) + 1),
    storeWrite: (s) => storeWrite.observe(s),
    delivered: (s) => delivery.observe(s),
  }
  return { registry, telemetry }
}

/** The kind of a delivery, by its topic. */
export function outKind(topic: string): OutKind | null {
  if (topic.startsWith('c/')) return 'typing'
  if (topic.startsWith('u/')) {
    if (topic.endsWith('/inbox')) return 'inbox'
    if (topic.endsWith('/presence')) return 'presence'
    if (topic.endsWith('/self')) return 'self'
  }
  if (topic.startsWith('d/')) return topic.endsWith('/res') ? 'reply' : 'error'
  return null
}
