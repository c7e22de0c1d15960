import mqtt from 'mqtt'
import type { FaultDevice } from './devices.ts'

export interface StoredMessage {
  seq: number
  clientMsgId?: string
  kind?: string
}

// One page of sync; a node that takes longer is taken as not answering.
const SYNC_PAGE_MS = 15_000

/** The whole chat as the store has it: POST /v1/sync from 0, page after page, on a live node. */
export async function syncAll(httpUrl: string, token: string, chatId: string): Promise<StoredMessage[]> {
  const out: StoredMessage[] = []
  let after = 0
  for (let page = 0; page < 1000; page++) {
    const res = await fetch(`${httpUrl}/v1/sync`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ chatId, after, limit: 200 }),
      signal: AbortSignal.timeout(SYNC_PAGE_MS),
    }).catch((err: unknown) => {
      throw new Error(`POST ${httpUrl}/v1/sync after ${after}: ${(err as Error).message}`)
    })
    const body = (await res.json()) as {
      result?: { messages: StoredMessage[]; more: boolean }
      error?: { code: string; message: string }
    }
    if (!res.ok || !body.result) throw new Error(`sync answered ${res.status}: ${JSON.stringify(body.error)}`)
    out.push(...body.result.messages)
    after = body.result.messages.at(-1)?.seq ?? after
    if (!body.result.more) return out
  }
  throw new Error('sync: more than 1000 pages')
}

export interface DeviceReport {
  device: string
  kind: string
  /** The fault cut its connection (its reconnect after that is its first reconnect). */
  cut: boolean
  deliberateReconnects: number
  connacks: number
  /** Reconnects whose CONNACK said the session was not present (mqtt.js devices only). */
  sessionsLost: number
  connected: boolean
  /** Why waiting for its messages ended: all acked ones arrived, a quiet period, or the cap. */
  drained: string
  arrivals: number
  /** Acked messages that never arrived over MQTT (their clientMsgIds). */
  missing: string[]
  /** DUP=0 deliveries of a seq this device had already received. */
  twice: number[]
  /** First deliveries (DUP=0) of a seq lower than one already received. */
  outOfOrder: number[]
  /** Deliveries with DUP=1 (allowed by QoS 1). */
  dupRedeliveries: number
}

/** What one device's arrivals say about the acked messages of one chat. */
export function judgeDevice(
  d: FaultDevice,
  chatId: string,
  acked: Iterable<string>,
  drained: string,
): DeviceReport {
  const seen = new Set<number>()
  const ids = new Set<string>()
  let highest = 0
  const twice: number[] = []
  const outOfOrder: number[] = []
  let dupRedeliveries = 0
  for (const a of d.arrivals) {
    if (a.chatId !== chatId) continue
    if (a.clientMsgId !== undefined) ids.add(a.clientMsgId)
    if (a.dup) dupRedeliveries++
    else if (seen.has(a.seq)) twice.push(a.seq)
    else if (a.seq < highest) outOfOrder.push(a.seq)
    seen.add(a.seq)
    highest = Math.max(highest, a.seq)
  }
  return {
    device: d.clientId,
    kind: d.kind,
    cut: d.cut,
    deliberateReconnects: d.deliberateReconnects,
    connacks: d.connacks,
    sessionsLost: d.sessionPresent.slice(1).filter((present) => !present).length,
    connected: d.connected,
    drained,
    arrivals: d.arrivals.length,
    missing: [...acked].filter((id) => !ids.has(id)),
    twice,
    outOfOrder,
    dupRedeliveries,
  }
}

export interface PresenceReport {
  /** userId → what was expected and what the retained presence said last. */
  users: Record<string, { expected: boolean; seen: boolean | undefined }>
  wrong: string[]
}

/**
 * Reads the retained u/<user>/presence of each user as a user who shares a chat with them (a
 * clean throw-away session), and waits until each says what is expected or until ms is over.
 */
export async function checkPresence(o: {
  mqttPort: number
  observer: string
  token: string
  expected: Record<string, boolean>
  ms: number
}): Promise<PresenceReport> {
  const last = new Map<string, boolean>()
  const users = Object.keys(o.expected)
  const client = mqtt.connect(`mqtt://127.0.0.1:${o.mqttPort}`, {
    clientId: `${o.observer}/observer-${process.pid}`,
    username: o.observer,
    password: o.token,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 500,
    connectTimeout: 5000,
  })
  client.on('error', () => {})
  const matches = () => users.every((u) => last.get(u) === o.expected[u])
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, o.ms)
      function done() {
        clearTimeout(timer)
        client.off('message', onMessage)
        resolve()
      }
      function onMessage(topic: string, payload: Buffer) {
        const user = /^u\/(.+)\/presence$/.exec(topic)?.[1]
        if (!user) return
        try {
          last.set(user, (JSON.parse(payload.toString('utf8')) as { online: boolean }).online === true)
        } catch {
          return
        }
        if (matches()) done()
      }
      client.on('message', onMessage)
      client.on('connect', () => {
        client.subscribe(
          users.map((u) => `u/${u}/presence`),
          { qos: 1 },
        )
      })
    })
  } finally {
    client.end(true)
  }
  const report: PresenceReport = { users: {}, wrong: [] }
  for (const u of users) {
    const expected = o.expected[u] === true
    const seen = last.get(u)
    report.users[u] = { expected, seen }
    if (seen !== expected) report.wrong.push(u)
  }
  return report
}

/** "3, 7-12, 40" for a list of seqs. */
export function ranges(seqs: number[]): string {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return parts.join(', ')
}
