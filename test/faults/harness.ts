import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { abortable } from '../helpers/abortable.ts'
import {
  checkPresence,
  type DeviceReport,
  judgeDevice,
  type PresenceReport,
  ranges,
  type StoredMessage,
  syncAll,
} from './checks.ts'
import { type FaultDevice, MosquittoDevice, MqttJsDevice } from './devices.ts'
import { FAULTS, type FaultContext, type FaultKind, type FaultPlan } from './kinds.ts'
import { FailoverProxy } from './proxy.ts'
import { type System, startCluster, startEmbedded } from './system.ts'
import { Traffic } from './traffic.ts'

export { FAULT_KINDS, type FaultKind, isFaultKind } from './kinds.ts'

export interface RunOptions {
  /** Messages per second from the sender (20). */
  perSecond?: number
  /** A device that received nothing for this long has everything it will get (3000 ms). */
  quietMs?: number
  /** Progress lines. */
  log?: (line: string) => void
  /** Where to write the processes' output of a run with findings (one directory per run). */
  logDir?: string
  /**
   * Ends the run early (it is then not completed) and cleans up: a test's own signal, or a
   * deadline that leaves time for the cleanup before the test's timeout.
   */
  signal?: AbortSignal
}

/** One row: what one run of one fault showed. */
export interface FaultResult {
  fault: FaultKind
  /** The run's tag: a prefix of its user ids, node ids and client message ids. */
  tag: string
  /** False when the harness could not finish the run (setup failed, a step threw). */
  completed: boolean
  error?: string
  sent: number
  acked: number
  /** Publishes mqtt.js gave up on with an error (never acked; an app would send them again). */
  failed: number
  /** Messages acked before a sync from 0 began that it does not return. */
  missingInStore: number
  /** Acked messages missing at member devices after their first reconnect, summed over devices. */
  missingAtDevices: number
  /** Seqs delivered again with DUP=0, summed over devices. */
  twice: number
  /** First deliveries (DUP=0) of a seq lower than one already received, summed over devices. */
  outOfOrder: number
  /** DUP=1 deliveries, summed over devices (allowed by QoS 1). */
  dupRedeliveries: number
  presenceWrong: boolean
  /** The fault's own failures: a node that did not exit, a device that did not come back. */
  problems: string[]
  /** What went wrong, readable: which device missed which seqs, whose presence was wrong. */
  samples: string[]
  devices: DeviceReport[]
  presence: PresenceReport | undefined
  ms: number
}

// Bounds of the waits that depend on the system under test. None is a fixed sleep.
const TRAFFIC_WAIT_MS = 60_000
const SETTLE_MS = 30_000
const CONNECTED_MS = 30_000
const DRAIN_CAP_MS = 30_000
// A dead node is counted out within about 8 s (docs/protocol.md); aedes' wills come at 15 s.
const PRESENCE_MS = 25_000
const CHAT_CREATED_MS = 15_000
// Before its deliberate reconnect, a device that has not got every acked message waits this long
// after its last arrival for more.
const PRE_DRAIN_QUIET_MS = 1000

interface Layout {
  userId: string
  deviceId: string
  kind: 'mqtt.js' | 'mosquitto_sub'
  /** Index of the node this device prefers (its proxy tries it first). */
  home: number
}

/**
 * Runs one fault: starts the system (real processes), connects the devices, creates a group
 * chat, runs QoS 1 traffic, injects the fault and lets the system recover, stops the traffic,
 * gives each device its first reconnect, waits for what it can receive, and checks everything.
 * Everything it started is stopped and removed before it returns, whatever happened.
 */
export async function runFault(fault: FaultKind, o: RunOptions = {}): Promise<FaultResult> {
  const plan: FaultPlan = FAULTS[fault]
  const started = Date.now()
  const tag = `f${randomBytes(3).toString('hex')}`
  const say = (line: string) => o.log?.(`[${fault} ${tag}] ${line}`)
  const result: FaultResult = {
    fault,
    tag,
    completed: false,
    sent: 0,
    acked: 0,
    failed: 0,
    missingInStore: 0,
    missingAtDevices: 0,
    twice: 0,
    outOfOrder: 0,
    dupRedeliveries: 0,
    presenceWrong: false,
    problems: [],
    samples: [],
    devices: [],
    presence: undefined,
    ms: 0,
  }
  let system: System | undefined
  const proxies: FailoverProxy[] = []
  const devices: FaultDevice[] = []
  let gone: FaultDevice | undefined
  let traffic: Traffic | undefined
  const step = <T>(p: Promise<T>): Promise<T> => abortable(p, o.signal)
  // A step that starts something: when the run is aborted under it, what it starts later is
  // stopped as soon as it is there.
  const own = <T>(p: Promise<T>, dispose: (v: T) => Promise<unknown>): Promise<T> =>
    step(p).catch((err: unknown) => {
      p.then(dispose, () => {}).catch(() => {})
      throw err
    })
  try {
    system = await own(plan.topology === 'cluster' ? startCluster(3, tag) : startEmbedded(tag), (late) =>
      late.close(),
    )
    const sys = system
    say(`${plan.topology} up: ${sys.nodes.map((n) => `${n.id} on ${n.mqttPort}`).join(', ')}`)
    const user = (name: string) => `${tag}-${name}`
    const [s, r1, r2, g, observer] = ['s', 'r1', 'r2', 'g', 'o'].map(user) as [
      string,
      string,
      string,
      string,
      string,
    ]
    const cluster = plan.topology === 'cluster'
    const layout: Layout[] = [
      { userId: s, deviceId: 'phone', kind: 'mqtt.js', home: 0 },
      { userId: s, deviceId: 'tablet', kind: 'mqtt.js', home: cluster ? 1 : 0 },
      { userId: r1, deviceId: 'phone', kind: 'mqtt.js', home: cluster ? 1 : 0 },
      { userId: r1, deviceId: 'desk', kind: 'mosquitto_sub', home: cluster ? 1 : 0 },
      { userId: r2, deviceId: 'phone', kind: 'mqtt.js', home: cluster ? 2 : 0 },
      { userId: r2, deviceId: 'desk', kind: 'mosquitto_sub', home: 0 },
    ]
    const proxyFrom = async (home: number) => {
      const p = await FailoverProxy.start(() => sys.portsFrom(home))
      proxies.push(p)
      return p
    }
    for (const l of layout) {
      const proxy = await proxyFrom(l.home)
      const token = await sys.token(l.userId)
      const open = l.kind === 'mqtt.js' ? MqttJsDevice.open : MosquittoDevice.open
      devices.push(
        await own<FaultDevice>(open({ proxy, userId: l.userId, deviceId: l.deviceId, token }), (late) =>
          late.close(),
        ),
      )
    }
    gone = await own(
      MqttJsDevice.open({
        proxy: await proxyFrom(plan.victim),
        userId: g,
        deviceId: 'phone',
        token: await sys.token(g),
        throwaway: true,
      }),
      (late) => late.close(),
    )
    const sender = devices[0] as MqttJsDevice

    const sToken = await sys.token(s)
    const created = await step(
      fetch(`${sys.httpUrl()}/v1/chat.create`, {
        method: 'POST',
        headers: { authorization: `Bearer ${sToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: `faults ${tag}`, members: [r1, r2, g, observer] }),
        signal: AbortSignal.timeout(30_000),
      }),
    )
    const chat = (await step(created.json())) as { result?: { id: string } }
    if (!chat.result) throw new Error(`chat.create answered ${created.status}: ${JSON.stringify(chat)}`)
    const chatId = chat.result.id
    await step(
      Promise.all(
        [...devices, gone].map(async (d) => {
          if (!(await d.until(() => d.arrivals.some((a) => a.chatId === chatId), CHAT_CREATED_MS)))
            result.problems.push(
              `${d.label} did not receive the chat's creation within ${CHAT_CREATED_MS / 1000} s`,
            )
        }),
      ),
    )
    say(`chat ${chatId}: ${devices.length} persistent devices and one throw-away, all subscribed`)

    traffic = new Traffic(sender, chatId, tag)
    traffic.start(o.perSecond ?? 20)
    if (!(await step(traffic.ackedAtLeast(plan.before, TRAFFIC_WAIT_MS))))
      result.problems.push(`only ${traffic.acked.size} of ${plan.before} messages acked before the fault`)
    const ctx: FaultContext = {
      system: sys,
      devices,
      gone,
      victim: plan.victim,
      problems: result.problems,
      log: say,
    }
    say(`fault at ${traffic.acked.size} acked (${traffic.sent.length} sent)`)
    await step(plan.inject(ctx))
    const recoveredAt = traffic.acked.size
    const recoveredTime = Date.now()
    const left = () => Math.max(0, recoveredTime + TRAFFIC_WAIT_MS - Date.now())
    if (await step(traffic.ackedAtLeast(recoveredAt + 1, left())))
      say(`first PUBACK ${Date.now() - recoveredTime} ms after the recovery`)
    if (!(await step(traffic.ackedAtLeast(recoveredAt + plan.after, left()))))
      result.problems.push(
        `only ${traffic.acked.size - recoveredAt} of ${plan.after} messages acked within ${TRAFFIC_WAIT_MS / 1000} s after the recovery`,
      )
    traffic.stop()
    if (!(await step(traffic.settled(SETTLE_MS)))) {
      const open = traffic.sent.length - traffic.acked.size - traffic.failed.size
      result.problems.push(
        `${open} messages still had no PUBACK ${SETTLE_MS / 1000} s after the traffic stopped`,
      )
    }
    say(`traffic stopped: ${traffic.sent.length} sent, ${traffic.acked.size} acked`)

    // Every device is connected again; those the fault did not cut now disconnect cleanly and
    // connect once more: their first reconnect after the fault (for the others it was the one
    // after the cut).
    await step(
      Promise.all(
        devices.map(async (d) => {
          if (!(await d.until(() => d.connected, CONNECTED_MS)))
            result.problems.push(
              `${d.label} was not connected ${CONNECTED_MS / 1000} s after the traffic stopped`,
            )
        }),
      ),
    )
    // What is on its way to a connected device arrives before it disconnects: its reconnect is
    // then about what it did not get, not about a delivery cut short by the harness.
    const ackedBefore = [...traffic.acked.keys()]
    await step(
      Promise.all(
        devices.filter((d) => !d.cut).map((d) => d.drained(ackedBefore, PRE_DRAIN_QUIET_MS, 10_000)),
      ),
    )
    for (const d of devices) {
      if (d.cut) continue
      try {
        await step(d.reconnectOnce())
      } catch (err) {
        result.problems.push((err as Error).message)
      }
    }
    const ackedIds = [...traffic.acked.keys()]
    const quiet = o.quietMs ?? 3000
    // A node may still be working through the sender's backlog while the store is read: a
    // message stored after the sync passed its place, then acked, is not missing. Each read is
    // judged on what was acked before it began; when messages were acked after the first read
    // began, the store is read once more for them.
    const firstReadFrom = Date.now()
    let firstReadMs = 0
    const [drained, firstRead, presence] = await step(
      Promise.all([
        Promise.all(devices.map((d) => d.drained(ackedIds, quiet, DRAIN_CAP_MS))),
        storeOnAnyNode(sys, sToken, chatId, result.problems).finally(() => {
          firstReadMs = Date.now() - firstReadFrom
        }),
        (async () => {
          const port = sys.portsFrom(0)[0]
          if (port === undefined) throw new Error('no live node for the presence check')
          const online = (u: string) => devices.some((d) => d.userId === u && d.connected)
          return checkPresence({
            mqttPort: port,
            observer,
            token: await sys.token(observer),
            expected: { [s]: online(s), [r1]: online(r1), [r2]: online(r2), [g]: false },
            ms: PRESENCE_MS,
          })
        })(),
      ]),
    )
    const reads: StoreRead[] = firstRead ? [{ messages: firstRead, from: firstReadFrom }] : []
    const ackedSince = [...traffic.acked].filter(([, at]) => at >= firstReadFrom).map(([id]) => id)
    if (firstRead && ackedSince.length > 0) {
      const inFirst = new Set(firstRead.map((m) => m.clientMsgId))
      say(
        `${ackedSince.length} messages acked after the store's read began, ${ackedSince.filter((id) => !inFirst.has(id)).length} of them not in that read (it took ${firstReadMs} ms): reading it again`,
      )
      const from = Date.now()
      const again = await step(storeOnAnyNode(sys, sToken, chatId, result.problems))
      if (again) reads.push({ messages: again, from })
    }
    judge(result, { devices, drained, reads, presence, traffic, chatId })
    for (const n of sys.nodes) {
      if (n.alive() || (plan.victimGone && sys.nodes.indexOf(n) === plan.victim)) continue
      const last = n.proc.lines.filter((l) => l.includes('"level":50') || l.includes('"level":60')).at(-1)
      result.problems.push(`node ${n.id} died during the run${last ? `: ${last.slice(0, 300)}` : ''}`)
    }
    result.completed = true
  } catch (err) {
    result.error = (err as Error).stack ?? String(err)
    say(`run failed: ${(err as Error).message}`)
  } finally {
    traffic?.stop()
    if (traffic) {
      result.sent = traffic.sent.length
      result.acked = traffic.acked.size
      result.failed = traffic.failed.size
    }
    // services/storage/mongo.ts's watchdog: a run it rescued is worth knowing about.
    const rescued = system
      ? Object.values(system.logs())
          .flat()
          .filter((l) => l.includes('"mongo_monitor_stuck"')).length
      : 0
    if (rescued > 0) say(`the MongoDB monitor watchdog reconnected a client ${rescued} times`)
    if (o.logDir && system && (findings(result) || !result.completed))
      writeLogs(join(o.logDir, `${fault}-${tag}`), system, devices, result)
    for (const d of [...devices, ...(gone ? [gone] : [])]) await d.close().catch(() => {})
    for (const p of proxies) await p.close().catch(() => {})
    await system?.close().catch(() => {})
    result.ms = Date.now() - started
  }
  say(
    `done in ${Math.round(result.ms / 1000)} s: acked ${result.acked}, missing in store ${result.missingInStore}, at devices ${result.missingAtDevices}, twice ${result.twice}, out of order ${result.outOfOrder}, DUP=1 ${result.dupRedeliveries}, presence ${result.presenceWrong ? 'wrong' : 'right'}`,
  )
  return result
}

/**
 * The chat as the store has it, read through the first live node that answers (one node's
 * store client may be stuck after a fault; the question is what the store holds). Undefined,
 * and a problem, when none does.
 */
async function storeOnAnyNode(
  sys: System,
  token: string,
  chatId: string,
  problems: string[],
): Promise<StoredMessage[] | undefined> {
  const failures: string[] = []
  for (const node of sys.nodes) {
    if (!node.alive()) continue
    try {
      return await syncAll(node.httpUrl, token, chatId)
    } catch (err) {
      failures.push(`node ${node.id}: ${(err as Error).message}`)
    }
  }
  problems.push(`the store could not be read: sync failed on every live node (${failures.join('; ')})`)
  return undefined
}

/** True when a run found anything wrong (what the CI test asserts to be zero). */
export function findings(r: FaultResult): boolean {
  return (
    r.missingInStore + r.missingAtDevices + r.twice + r.outOfOrder > 0 ||
    r.presenceWrong ||
    r.problems.length > 0
  )
}

/** One paged sync of the chat from 0, and when (epoch ms) it began. */
interface StoreRead {
  messages: StoredMessage[]
  from: number
}

function judge(
  result: FaultResult,
  o: {
    devices: FaultDevice[]
    drained: string[]
    /** The store's reads, oldest first; none when no node could read it (a problem is recorded). */
    reads: StoreRead[]
    presence: PresenceReport
    traffic: Traffic
    chatId: string
  },
): void {
  const acked = [...o.traffic.acked.keys()]
  const seqOf = new Map<string, number>()
  // A message one read lacks although it was acked before that read began is missing, even when
  // a later read has it.
  const notStored = new Set<string>()
  for (const read of o.reads) {
    const inRead = new Set<string>()
    for (const m of read.messages) {
      if (m.clientMsgId === undefined) continue
      inRead.add(m.clientMsgId)
      seqOf.set(m.clientMsgId, m.seq)
    }
    for (const [id, at] of o.traffic.acked) if (at < read.from && !inRead.has(id)) notStored.add(id)
    const seqs = read.messages.map((m) => m.seq)
    const gaps = seqs.filter((seq, i) => seq !== i + 1)
    if (gaps.length > 0) result.samples.push(`store: the chat's seqs have gaps (${ranges(seqs)})`)
  }
  result.missingInStore = notStored.size
  if (notStored.size > 0)
    result.samples.push(
      `store: ${notStored.size} acked messages missing, e.g. ${[...notStored].slice(0, 5).join(', ')}`,
    )
  for (const [i, d] of o.devices.entries()) {
    const r = judgeDevice(d, o.chatId, acked, o.drained[i] ?? 'unknown')
    result.devices.push(r)
    result.missingAtDevices += r.missing.length
    result.twice += r.twice.length
    result.outOfOrder += r.outOfOrder.length
    result.dupRedeliveries += r.dupRedeliveries
    const how = `${d.label}${r.cut ? ', cut by the fault' : ', reconnected on purpose'}`
    if (r.missing.length > 0) {
      const known = r.missing.map((id) => seqOf.get(id)).filter((x) => x !== undefined)
      result.samples.push(
        `${how}: missing ${r.missing.length} of ${acked.length} acked, seqs ${ranges(known)}${known.length < r.missing.length ? ` and ${r.missing.length - known.length} not in the store` : ''} (wait ended: ${r.drained}${r.sessionsLost > 0 ? `; a reconnect's CONNACK said session present = false` : ''})`,
      )
    }
    if (r.twice.length > 0) result.samples.push(`${how}: seq twice with DUP=0: ${ranges(r.twice)}`)
    if (r.outOfOrder.length > 0)
      result.samples.push(`${how}: out of order (DUP=0 below a seq already seen): ${ranges(r.outOfOrder)}`)
  }
  result.presence = o.presence
  result.presenceWrong = o.presence.wrong.length > 0
  for (const u of o.presence.wrong) {
    const p = o.presence.users[u]
    const said = p?.seen === undefined ? 'nothing retained' : p.seen ? 'online' : 'offline'
    result.samples.push(
      `presence: ${u} should be ${p?.expected ? 'online' : 'offline'}, retained says ${said}`,
    )
  }
}

function writeLogs(dir: string, system: System, devices: FaultDevice[], result: FaultResult): void {
  try {
    mkdirSync(dir, { recursive: true })
    for (const [name, lines] of Object.entries(system.logs()))
      writeFileSync(join(dir, `${name}.log`), lines.join('\n'))
    for (const d of devices) {
      const name = d.clientId.replace('/', '_')
      if (d instanceof MosquittoDevice)
        writeFileSync(join(dir, `mosquitto_sub-${name}.log`), d.lines.join('\n'))
      writeFileSync(join(dir, `arrivals-${name}.json`), JSON.stringify(d.arrivals))
    }
    writeFileSync(join(dir, 'result.json'), JSON.stringify(result, null, 2))
  } catch {
    // Logs are a convenience; the result row is what counts.
  }
}
