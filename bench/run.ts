import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { envName, settingKeys, settingsShape } from '../config/schema.ts'
import { startFerretDb } from '../test/helpers/ferretdb.ts'
import { startRedis } from '../test/helpers/redis.ts'
import { s3Env, startVersitygw } from '../test/helpers/versitygw.ts'
import { renderChart } from './chart.ts'
import { type MemoryUsage, memoryAfterGc } from './heap.ts'
import { seedHistory } from './history-seed.ts'
import type { ClientSpec, Job, Pair } from './load-worker.ts'
import { percentiles } from './percentiles.ts'
import { machineBusyUs, machineQuiet, mainThreadCpuUs, procStats } from './proc-stats.ts'
import { anchors, fmt, type Row, table } from './report.ts'
import { startAedes, startMosquitto, startNatter, type Target } from './targets.ts'
import { Workers } from './workers.ts'

/**
 * npm run bench (quick) and npm run bench:full (more pairs, rates and history requests): the same
 * scenarios against mosquitto, plain aedes and Natter in one run, targets interleaved at every
 * step, results in bench/results/ as Markdown, JSON and a PNG chart. Options: --only=idle,relay,…
 * (some parts, into partial.*), --seconds=N (measured part of a step), --idle=N (idle
 * connections), --rates=1000,0 (relay steps; 0 is "max"), --chat-rates=…, --cpu-prof=DIR,
 * --natter-node-options='…' (V8 or Node flags for Natter's node only, for experiments).
 */

const full = process.argv.includes('--full')
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7)
// --cpu-prof=DIR: Natter's node writes a V8 CPU profile there when it stops.
// A run of some parts (--only) must not replace the whole run the README shows.
const OUT = only === undefined ? 'latest' : 'partial'
const cpuProf = process.argv.find((a) => a.startsWith('--cpu-prof='))?.slice(11)
const natterNodeOptions = process.argv.find((a) => a.startsWith('--natter-node-options='))?.slice(22)
const P = full
  ? {
      pairs: 40,
      seconds: 10,
      warmup: 3,
      rates: [1000, 5000, 10000, 20000],
      chatRates: [1000, 2000, 5000],
      mongoChatRates: [50, 100, 200],
      clusterRates: [1000, 5000, 10000],
      idle: 10_000,
      groups: [100, 1000],
      history: { chats: 100, perChat: 10_000, requests: 5000 },
    }
  : {
      pairs: 20,
      seconds: 10,
      warmup: 2,
      rates: [1000, 5000, 10000],
      chatRates: [1000, 5000],
      mongoChatRates: [50, 100],
      clusterRates: [],
      idle: 10_000,
      groups: [100, 1000],
      history: { chats: 100, perChat: 10_000, requests: 1000 },
    }
// --chat-rates=1000,5000: only these chat steps (with --only=chat, to look at one rate).
const chatRates = process.argv
  .find((a) => a.startsWith('--chat-rates='))
  ?.slice(13)
  .split(',')
  .map(Number)
if (chatRates) P.chatRates = chatRates
// --rates=1000,0: only these relay steps (0 is "max").
const rates = process.argv
  .find((a) => a.startsWith('--rates='))
  ?.slice(8)
  .split(',')
  .map(Number)
// --seconds=N: the measured part of each step (after the warm-up).
const seconds = process.argv.find((a) => a.startsWith('--seconds='))?.slice(10)
if (seconds) P.seconds = Number(seconds)
// --idle=N: how many idle connections the idle part opens.
const idleArg = process.argv.find((a) => a.startsWith('--idle='))?.slice(7)
if (idleArg) P.idle = Number(idleArg)
const want = (part: string) => only === undefined || only.split(',').includes(part)
// Tells this run's users and devices apart from an earlier run's, should a target outlive one.
const RUN = Date.now().toString(36)
const WORKERS = 2
const redisVersion = () =>
  /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? 'unknown'
const FERRETDB_VERSION = 'v1.24.2'
const secret = randomBytes(32).toString('hex')
const key = new TextEncoder().encode(secret)
const tokens = new Map<string, string>()
async function token(user: string): Promise<string> {
  let t = tokens.get(user)
  if (!t) {
    t = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setExpirationTime('2h')
      .sign(key)
    tokens.set(user, t)
  }
  return t
}

interface StreamResult {
  sent: number
  received: number
  /** Arrivals after the warm-up. */
  measured: number
  latencies: number[]
  sendMs: number
  spanMs: number
  cpuUs: number
}

/** CPU and memory of all of a target's processes. */
function targetStats(target: Target): { cpuUs: number; mainUs: number; rssBytes: number } {
  const pids = target.pids ?? [target.pid]
  const all = pids.map(procStats)
  return {
    cpuUs: all.reduce((a, s) => a + s.cpuUs, 0),
    mainUs: pids.reduce((a, pid) => a + mainThreadCpuUs(pid), 0),
    rssBytes: all.reduce((a, s) => a + s.rssBytes, 0),
  }
}

const split = <T>(items: T[], n: number): T[][] =>
  Array.from({ length: n }, (_, w) => items.filter((_, i) => i % n === w))

async function stream(
  workers: Workers,
  target: Target,
  jobs: Job[],
  scenario: string,
  offered: string,
): Promise<Row> {
  await workers.run(jobs, 'ready')
  const results = workers.procs.map(
    (p) =>
      new Promise<StreamResult>((resolve, reject) => {
        const on = (m: { event?: string; result?: StreamResult; message?: string }) => {
          if (m.event === 'result') {
            p.off('message', on)
            resolve(m.result as StreamResult)
          } else if (m.event === 'error') reject(new Error(m.message))
        }
        p.on('message', on)
      }),
  )
  // Every step starts on a settled machine: not while the previous step's backlog drains.
  if (!(await machineQuiet()))
    process.stderr.write(`the machine was still busy 30 s before ${scenario} ${offered}\n`)
  const wall = performance.now()
  workers.go()
  // The broker's CPU counts from the end of the warm-up, as the generators' figures do.
  const before = await new Promise<{ cpuUs: number; mainUs: number; machineUs: number }>((resolve) =>
    setTimeout(() => resolve({ ...targetStats(target), machineUs: machineBusyUs() }), P.warmup * 1000),
  )
  const rs = await Promise.all(results)
  const after = { ...targetStats(target), machineUs: machineBusyUs() }
  const seconds = Math.max(...rs.map((r) => r.spanMs)) / 1000
  const sent = rs.reduce((a, r) => a + r.sent, 0)
  const received = rs.reduce((a, r) => a + r.received, 0)
  const measured = rs.reduce((a, r) => a + r.measured, 0)
  const [p50, p99, p999] = percentiles(
    rs.flatMap((r) => r.latencies),
    [50, 99, 99.9],
  )
  const wallS = (performance.now() - wall) / 1000 - P.warmup
  return {
    scenario,
    target: target.name,
    offered,
    delivered: Math.round(measured / seconds),
    loss: sent ? (sent - received) / sent : 0,
    p50: p50 as number,
    p99: p99 as number,
    p999: p999 as number,
    cpuUsPerMsg: measured ? (after.cpuUs - before.cpuUs) / measured : 0,
    rssMb: after.rssBytes / 2 ** 20,
    generatorCpu: rs.reduce((a, r) => a + r.cpuUs, 0) / 1e6 / wallS,
    brokerCores: (after.cpuUs - before.cpuUs) / 1e6 / seconds,
    mainThreadCores: (after.mainUs - before.mainUs) / 1e6 / seconds,
    machineCores: (after.machineUs - before.machineUs) / 1e6 / seconds,
  }
}

async function relayPairs(target: Target, n: number): Promise<Pair[]> {
  const pairs: Pair[] = []
  for (let i = 0; i < n; i++) {
    if (target.name === 'natter') {
      const user = `r${i}`
      const password = await token(user)
      const spec = (d: string): ClientSpec => ({
        url: target.url,
        clientId: `${user}/${d}`,
        username: user,
        password,
      })
      pairs.push({
        pub: spec('pub'),
        sub: spec('sub'),
        pubTopic: `u/${user}/self`,
        subTopic: `u/${user}/self`,
      })
    } else {
      const spec = (d: string): ClientSpec => ({ url: target.url, clientId: `${d}${i}` })
      pairs.push({ pub: spec('pub'), sub: spec('sub'), pubTopic: `bench/${i}`, subTopic: `bench/${i}` })
    }
  }
  return pairs
}

/** Publisher on one node, subscriber on the next: every message crosses Redis. */
async function crossNodePairs(cluster: Target, n: number): Promise<Pair[]> {
  const urls = cluster.urls as string[]
  const pairs: Pair[] = []
  for (let i = 0; i < n; i++) {
    const user = `x${i}`
    const password = await token(user)
    const spec = (d: string, url: string): ClientSpec => ({
      url,
      clientId: `${user}/${d}`,
      username: user,
      password,
    })
    pairs.push({
      pub: spec('pub', urls[i % urls.length] as string),
      sub: spec('sub', urls[(i + 1) % urls.length] as string),
      pubTopic: `u/${user}/self`,
      subTopic: `u/${user}/self`,
    })
  }
  return pairs
}

async function api<T>(target: Target, user: string, op: string, params: unknown): Promise<T> {
  const res = await fetch(`${target.httpUrl}/v1/${op}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token(user)}` },
    body: JSON.stringify(params),
  })
  const body = (await res.json()) as { result?: T; error?: { message: string } }
  if (!res.ok) throw new Error(`${op}: ${body.error?.message}`)
  return body.result as T
}

let chatStep = 0
async function chatPairs(target: Target, n: number): Promise<Pair[]> {
  const pairs: Pair[] = []
  // Users of this step only: a backlog one step leaves on a persistent session is not delivered in the next.
  chatStep++
  for (let i = 0; i < n; i++) {
    const [a, b] = [`c${chatStep}a${i}`, `c${chatStep}b${i}`]
    const chat = await api<{ id: string }>(target, a, 'chat.direct', { with: b })
    pairs.push({
      pub: { url: target.url, clientId: `${a}/phone`, username: a, password: await token(a) },
      sub: { url: target.url, clientId: `${b}/phone`, username: b, password: await token(b) },
      pubTopic: `c/${chat.id}/send`,
      subTopic: `u/${b}/inbox`,
      pubSubscribe: `u/${a}/inbox`,
    })
  }
  return pairs
}

function streamJobs(pairs: Pair[], o: { qos: 0 | 1; rate: number; format: 'raw' | 'chat' }): Job[] {
  return split(pairs, WORKERS).map((share) => ({
    kind: 'stream',
    pairs: share,
    qos: o.qos,
    rate: o.rate / WORKERS,
    warmupMs: P.warmup * 1000,
    durationMs: P.seconds * 1000,
    payloadBytes: 100,
    format: o.format,
    window: 2000,
  }))
}

/**
 * One message to a group of `size` members, each on one device with a persistent session
 * subscribed to its inbox at QoS 1, as apps are: the median and the last member's arrival after
 * the send. The members are users of this run only, so no session of an earlier run (offline,
 * with its inbox subscription) is delivered to or counted.
 */
async function fanout(workers: Workers, target: Target, size: number): Promise<Row> {
  const members = Array.from({ length: size }, (_, i) => `g${size}-${RUN}-${i}`)
  const [owner, ...rest] = members as [string, ...string[]]
  const group = await api<{ id: string }>(target, owner, 'chat.create', {
    name: `fanout ${size}`,
    members: rest,
  })
  const specs = await Promise.all(
    members.map(async (u) => ({
      url: target.url,
      clientId: `${u}/phone`,
      username: u,
      password: await token(u),
      topic: `u/${u}/inbox`,
    })),
  )
  const text = `fanout ${size} ${RUN}`
  await workers.run(
    split(specs, WORKERS).map((clients) => ({ kind: 'listen', clients, text })),
    'ready',
  )
  const sender: ClientSpec = {
    url: target.url,
    clientId: `${owner}/sender`,
    username: owner,
    password: await token(owner),
  }
  const everyone = workers.all('arrived')
  const [sent] = await workers.run<{ at: number }>(
    [{ kind: 'send-once', client: sender, topic: `c/${group.id}/send`, text }],
    'sent',
  )
  // Every member has it, or 10 s have passed (then the missing ones count as not delivered).
  let timer: NodeJS.Timeout | undefined
  await Promise.race([everyone, new Promise((resolve) => (timer = setTimeout(resolve, 10_000)))])
  clearTimeout(timer)
  const closed = await workers.run<{ arrivals: number[] }>(
    workers.procs.map(() => ({ kind: 'close' })),
    'closed',
  )
  // Arrival times are each worker's clock (performance.timeOrigin + now: the wall clock at its
  // start, then the monotonic clock), the send time the sending worker's.
  const arrivals = closed.flatMap((c) => c.arrivals).map((a) => a - (sent?.at ?? 0))
  const last = arrivals.length ? Math.max(...arrivals) : Number.NaN
  const [p50] = percentiles(arrivals, [50])
  return {
    scenario: `group fan-out, ${size} members`,
    target: target.name,
    offered: '1 message',
    delivered: arrivals.length,
    loss: (size - arrivals.length) / size,
    p50: p50 as number,
    p99: last,
    p999: last,
    cpuUsPerMsg: 0,
    rssMb: procStats(target.pid).rssBytes / 2 ** 20,
    generatorCpu: 0,
  }
}

/**
 * n idle connections, opened while the broker is fresh: persistent sessions, each subscribed to
 * one topic at QoS 1 (a Natter device, with its own JWT, to its inbox, as an app is). Memory per
 * connection is the growth from before they open to after, divided by n: for the Node targets the
 * live memory after two full GCs (heapUsed + external; external holds every Buffer, arrayBuffers
 * is part of it), read through the inspector, and the RSS at the same moments; for mosquitto the
 * RSS only.
 */
async function idle(workers: Workers, target: Target, n: number): Promise<Row> {
  const specs = await Promise.all(
    Array.from({ length: n }, async (_, i): Promise<ClientSpec & { topic: string }> => {
      if (target.name !== 'natter') return { url: target.url, clientId: `idle${i}`, topic: `idle/${i}` }
      const u = `i${i}`
      return {
        url: target.url,
        clientId: `${u}/phone`,
        username: u,
        password: await token(u),
        topic: `u/${u}/inbox`,
      }
    }),
  )
  // Without the inspector (its port taken by another process since it was found free), RSS only.
  const heap = (port: number | undefined) =>
    port === undefined
      ? undefined
      : memoryAfterGc(port).catch((err: Error) => {
          process.stderr.write(`${target.name}: no live heap reading: ${err.message}\n`)
          return undefined
        })
  // One connection first, so that what a broker builds once on its first packets (mqtt-packet's
  // cache of 65,536 packet identifiers, about 7 MB) is in the "before" reading, not counted per
  // connection.
  const [first] = specs.splice(0, 1)
  await workers.run([{ kind: 'connect', clients: [first as ClientSpec & { topic: string }] }], 'connected')
  const heapBefore = await heap(target.inspectPort)
  const before = procStats(target.pid)
  const answers = await workers.run<{ ms: number }>(
    split(specs, WORKERS).map((clients) => ({ kind: 'connect', clients })),
    'connected',
  )
  const ms = Math.max(...answers.map((a) => a.ms))
  // What a connection starts after its SUBACK (session and delivery state) settles first.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const heapAfter = heapBefore && (await heap(target.inspectPort))
  const after = procStats(target.pid)
  await workers.run(
    workers.procs.map(() => ({ kind: 'close' })),
    'closed',
  )
  const live = (m: MemoryUsage) => m.heapUsed + m.external
  return {
    scenario: `${n} idle connections`,
    target: target.name,
    offered: `${n}`,
    delivered: Math.round(n / (ms / 1000)),
    loss: 0,
    p50: Number.NaN,
    p99: Number.NaN,
    p999: Number.NaN,
    cpuUsPerMsg: 0,
    rssMb: after.rssBytes / 2 ** 20,
    generatorCpu: 0,
    rssKbPerConn: (after.rssBytes - before.rssBytes) / specs.length / 1024,
    ...(heapBefore && heapAfter
      ? {
          heapKbPerConn: (live(heapAfter) - live(heapBefore)) / specs.length / 1024,
          memory: { before: heapBefore, after: heapAfter },
        }
      : {}),
  }
}

/**
 * A million stored messages (100 chats of 10,000), then history pages and syncs at random
 * places in random chats, 16 requests in flight over the HTTP API: what a device scrolling back
 * or catching up waits for.
 */
async function history(
  target: Target,
  o: { chats: number; perChat: number; requests: number },
): Promise<Row[]> {
  const chats: Array<{ id: string; members: [string, string] }> = []
  for (let i = 0; i < o.chats; i++) {
    const members: [string, string] = [`ha${i}`, `hb${i}`]
    const chat = await api<{ id: string }>(target, members[0], 'chat.direct', { with: members[1] })
    chats.push({ id: chat.id, members })
  }
  const seeding = performance.now()
  seedHistory(join(target.dataDir as string, 'messages.db'), chats, o.perChat)
  process.stderr.write(
    `history: ${o.chats * o.perChat} messages stored in ${((performance.now() - seeding) / 1000).toFixed(1)} s\n`,
  )
  const total = `${((o.chats * o.perChat) / 1e6).toFixed(1)}M messages`
  const kinds: Array<{ name: string; op: string; params: (last: number) => Record<string, unknown> }> = [
    { name: `history, newest page of 50 (${total})`, op: 'history', params: () => ({ limit: 50 }) },
    {
      name: `history, a page of 50 anywhere (${total})`,
      op: 'history',
      // Before 2 at least: seq 1 is the oldest, and a page before it is empty.
      params: (last) => ({ before: 2 + Math.floor(Math.random() * last), limit: 50 }),
    },
    {
      name: `sync, 200 after a random seq (${total})`,
      op: 'sync',
      params: (last) => ({ after: Math.floor(Math.random() * (last - 200)), limit: 200 }),
    },
  ]
  const rows: Row[] = []
  for (const kind of kinds) {
    const latencies: number[] = []
    let next = 0
    const before = procStats(target.pid)
    const started = performance.now()
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < o.requests) {
          next++
          const chat = chats[Math.floor(Math.random() * chats.length)] as (typeof chats)[number]
          const t = performance.now()
          const page = await api<{ messages: unknown[] }>(target, chat.members[0], kind.op, {
            chatId: chat.id,
            ...kind.params(o.perChat),
          })
          if (page.messages.length === 0) throw new Error(`${kind.op} returned an empty page`)
          latencies.push(performance.now() - t)
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    const after = procStats(target.pid)
    const [p50, p99, p999] = percentiles(latencies, [50, 99, 99.9])
    rows.push({
      scenario: kind.name,
      target: target.name,
      offered: '16 in flight',
      unit: 'requests',
      delivered: Math.round(latencies.length / seconds),
      loss: 0,
      p50: p50 as number,
      p99: p99 as number,
      p999: p999 as number,
      cpuUsPerMsg: (after.cpuUs - before.cpuUs) / latencies.length,
      rssMb: after.rssBytes / 2 ** 20,
      generatorCpu: 0,
    })
  }
  return rows
}

/**
 * --only=flood: one device floods chat sends (up to 5,000 unacknowledged, sent as fast as they are
 * acknowledged) while 50 users chat at 200 msg/s in all, each waiting for nothing but its own
 * schedule; the same chat step without the flood first, on the same node, for the p99 to compare.
 * The node runs the default rate limits, except CONNECTs per IP: every client of the benchmark
 * connects from 127.0.0.1. The node and the load generators are this part's own.
 */
async function floodPart(): Promise<{ rows: Row[]; note: string }> {
  const defaults = Object.fromEntries(
    settingKeys
      .filter((k) => k.startsWith('limit'))
      .map((k) => [envName(k), String(settingsShape[k].parse(undefined))]),
  )
  const target = await startNatter({
    secret,
    env: { ...defaults, NATTER_LIMIT_CONNECTS_PER_IP: '10000/10s' },
  })
  const flooder = await Workers.start(1)
  // Generators of this part's own, as the flooder's: the ones the earlier parts used carry heaps
  // the relay steps' backlogs grew, and their collections would time the 50 users' p99.
  const workers = await Workers.start(WORKERS)
  try {
    const scenario = 'chat 1:1, 50 users, default limits'
    const quiet = await stream(
      workers,
      target,
      streamJobs(await chatPairs(target, 50), { qos: 1, rate: 200, format: 'chat' }),
      scenario,
      '200',
    )
    const user = `flooder-${RUN}`
    const chat = await api<{ id: string }>(target, user, 'chat.direct', { with: `${user}-peer` })
    const client: ClientSpec = {
      url: target.url,
      clientId: `${user}/bot`,
      username: user,
      password: await token(user),
    }
    await flooder.run(
      [{ kind: 'flood', client, topic: `c/${chat.id}/send`, errTopic: `d/${user}/bot/err`, window: 5000 }],
      'ready',
    )
    const result = flooder.all<{ sent: number; acked: number; ms: number; notices: Record<string, number> }>(
      'result',
    )
    flooder.go()
    const flooded = await stream(
      workers,
      target,
      streamJobs(await chatPairs(target, 50), { qos: 1, rate: 200, format: 'chat' }),
      `${scenario}, one device flooding`,
      '200',
    )
    for (const p of flooder.procs) p.send({ kind: 'stop' })
    const [f] = await result
    // The chat's first seq is its creation event.
    const stored = (await api<{ lastSeq: number }>(target, user, 'chat.get', { chatId: chat.id })).lastSeq - 1
    const told = f?.notices.rate_limited ?? 0
    // The node's own count of refused sends, per limit.
    const metrics = await (await fetch(`${target.httpUrl}/metrics`)).text()
    const refusedBy = [
      ...metrics.matchAll(/^natter_rate_limit_refused_total\{limit="(sends_per_\w+)"\} (\d+)/gm),
    ]
      .filter((m) => m[2] !== '0')
      .map((m) => `${m[2]} by ${m[1]}`)
      .join(', ')
    const note = `Flood part: in ${fmt((f?.ms ?? 0) / 1000, 0)} s the flooding device sent ${f?.sent} chat messages, ${f?.acked} were acknowledged, ${stored} stored, and it was told rate_limited ${told} times (the node counted ${refusedBy || 'none'}). The 50 users' p99: ${fmt(quiet.p99, 2)} ms without the flood, ${fmt(flooded.p99, 2)} ms with it (${fmt(flooded.p99 / quiet.p99, 2)}×; the goal is at most 1.5×).`
    process.stderr.write(`${note}\n`)
    return { rows: [quiet, flooded], note }
  } finally {
    await workers.stop()
    await flooder.stop()
    await target.stop()
  }
}

async function main() {
  const started = Date.now()
  const nodeOptions = [cpuProf ? `--cpu-prof --cpu-prof-dir=${cpuProf}` : '', natterNodeOptions ?? '']
    .filter(Boolean)
    .join(' ')
  const natterEnv: Record<string, string> = nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}
  // The Node targets' inspector listens for the idle part's memory readings only; no session
  // stays attached (bench/heap.ts).
  const inspect = want('idle')
  const targets = [
    await startMosquitto(),
    await startAedes({ inspect }),
    await startNatter({ secret, env: natterEnv, inspect }),
  ]
  const natter = targets[2] as Target
  const workers = await Workers.start(WORKERS)
  const rows: Row[] = []
  const notes: string[] = []
  const extraVersions: string[] = []
  const log = (r: Row) => {
    rows.push(r)
    process.stderr.write(`${r.scenario} ${r.target} ${r.offered}: ${r.delivered}/s p99 ${fmt(r.p99, 2)} ms\n`)
  }
  try {
    // First, while every broker is fresh: memory per connection is then not hidden in a heap
    // that earlier load has already grown.
    for (const target of want('idle') ? targets : []) log(await idle(workers, target, P.idle))
    for (const qos of want('relay') ? ([0, 1] as const) : []) {
      for (const rate of rates ?? [...P.rates, 0]) {
        // Targets in turn at every step, so a drift of the machine hits all of them alike.
        for (const target of targets) {
          const pairs = await relayPairs(target, P.pairs)
          log(
            await stream(
              workers,
              target,
              streamJobs(pairs, { qos, rate, format: 'raw' }),
              `relay QoS ${qos}`,
              rate ? `${rate}` : 'max',
            ),
          )
        }
      }
    }
    for (const rate of want('chat') ? (chatRates ?? [...P.chatRates, 0]) : []) {
      const pairs = await chatPairs(natter, P.pairs)
      log(
        await stream(
          workers,
          natter,
          streamJobs(pairs, { qos: 1, rate, format: 'chat' }),
          'chat 1:1 (SQLite)',
          rate ? `${rate}` : 'max',
        ),
      )
    }
    if (want('chat')) {
      // Natter's own view of the chat steps, for where the time went (store write, delivery).
      const metrics = await (await fetch(`${natter.httpUrl}/metrics`)).text()
      writeFileSync(new URL(`./results/${OUT}-natter-metrics.txt`, import.meta.url), metrics)
    }
    if (want('flood')) {
      const flood = await floodPart()
      for (const row of flood.rows) log(row)
      notes.push(flood.note, '')
    }
    for (const size of want('fanout') ? P.groups : []) log(await fanout(workers, natter, size))
    if (want('history')) for (const row of await history(natter, P.history)) log(row)
    if (want('cluster')) {
      // Three Natter nodes on one Redis (and FerretDB, which relaying does not touch), each
      // message published on one node and delivered from another; next to the single node.
      const [redis, ferret, s3] = await Promise.all([startRedis(), startFerretDb(), startVersitygw()])
      const nodes: Target[] = []
      try {
        for (const id of ['n1', 'n2', 'n3']) {
          nodes.push(
            await startNatter({
              secret,
              env: {
                NATTER_REDIS_URL: redis.url,
                NATTER_MONGODB_URI: ferret.uri,
                NATTER_NODE_ID: id,
                ...s3Env(s3),
              },
            }),
          )
        }
        const cluster: Target = {
          ...(nodes[0] as Target),
          name: 'natter ×3 on Redis',
          pids: nodes.map((n) => n.pid),
          urls: nodes.map((n) => n.url),
        }
        for (const rate of [...P.clusterRates, 0]) {
          for (const [target, pairs] of [
            [natter, await relayPairs(natter, P.pairs)],
            [cluster, await crossNodePairs(cluster, P.pairs)],
          ] as const) {
            log(
              await stream(
                workers,
                target,
                streamJobs(pairs, { qos: 1, rate, format: 'raw' }),
                'relay QoS 1, cluster',
                rate ? `${rate}` : 'max',
              ),
            )
          }
        }
      } finally {
        for (const n of nodes) await n.stop()
        await ferret.stop()
        await s3.stop()
        await redis.stop()
      }
      extraVersions.push(`Redis ${redisVersion()}`)
    }
    if (want('mongo')) {
      // The same chat pipeline on the MongoDB store: FerretDB (SQLite backend) on this machine.
      const ferret = await startFerretDb()
      const onMongo = await startNatter({ secret, env: { NATTER_MONGODB_URI: ferret.uri } })
      try {
        // Fixed rates only: FerretDB v1 on SQLite reads a whole collection for most queries
        // (docs/decisions.md), so "as fast as it goes" would measure how long the step ran.
        for (const rate of P.mongoChatRates) {
          const pairs = await chatPairs(onMongo, P.pairs)
          log(
            await stream(
              workers,
              onMongo,
              streamJobs(pairs, { qos: 1, rate, format: 'chat' }),
              'chat 1:1 (MongoDB: FerretDB)',
              rate ? `${rate}` : 'max',
            ),
          )
        }
      } finally {
        await onMongo.stop()
        await ferret.stop()
      }
      extraVersions.push(`FerretDB ${FERRETDB_VERSION} (SQLite backend)`)
    }
  } finally {
    await workers.stop()
    for (const t of targets) await t.stop()
  }

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`
  const versions = [...targets.map((t) => `${t.name} ${t.version}`), ...extraVersions].join(', ')
  const against = anchors(rows)
  const md = [
    `# Natter benchmark (${full ? 'full' : 'quick'} profile)`,
    '',
    `Run ${new Date().toISOString()} in ${((Date.now() - started) / 1000).toFixed(0)} s on ${machine}. ${versions}.`,
    `${P.pairs} publisher/subscriber pairs in ${WORKERS} load-generator processes on the same machine; 100-byte payloads; targets in turn at every step. Every stream step starts once the whole machine has been under 0.3 cores busy for 0.5 s (at most 30 s after its clients are ready), so that no step measures the previous one's backlog draining; it sends for ${P.warmup} s of warm-up, then for ${P.seconds} s that are measured: the warm-up counts in no figure but "not delivered at the end". Latency runs from each message's scheduled send time (corrected for coordinated omission) to its arrival, for the messages sent after the warm-up. "max" sends as fast as a window of 2,000 unacknowledged messages per generator allows (at QoS 0 nothing is acknowledged: the window holds only what waits for a full socket, so "max" offers more than a broker takes and its latency is the backlog that grows over the step); delivered msg/s counts the arrivals from the end of the warm-up to the last one, over that time; broker and generator CPU count from the end of the warm-up too. "Not delivered at the end" is what had not arrived, of all that was sent, 3 s after arrivals stopped. Broker CPU is the broker process's user + system time per delivered message; generator CPU is the load generator's, in cores (above 100% the generator shares the 2 cores with the broker). The table after this one gives the "max" steps' CPU in cores too: the broker's, its main thread's (where a Node broker's JavaScript runs, and all of mosquitto), and the whole machine's (every process, this run's or not: the machine is shared; near ${cpus().length} it is the machine that is full). Plain aedes (in memory, no hooks) is configured as Natter configures its aedes: no cap on deliveries in flight (concurrency 0), no drain timeout; every broker sets TCP_NODELAY on its clients' sockets, as Natter does (set_tcp_nodelay for mosquitto). Relay clients have clean sessions. The chat rows go through Natter's whole send path: auth, validation, a durable store write before the PUBACK (SQLite, or MongoDB on FerretDB), and fan-out to the recipient's device and the sender's own inbox; the chat devices keep persistent sessions (clean=false), as apps do, and acknowledge every delivery, which the server turns into delivered receipts. The fan-out rows send one chat message to a group whose members (users of this run only) are each connected on a persistent session subscribed to their inbox at QoS 1: the median and the last member's arrival after the send. The idle rows open ${P.idle} connections on a fresh broker, persistent sessions each subscribed to one topic at QoS 1 (a Natter device with its own JWT, to its inbox u/<userId>/inbox); conn/s counts connecting and subscribing. Their memory is the growth from before they open (one connection was opened first, so that what a broker builds once on its first packets is not counted per connection) to after, per connection: for Natter and aedes the live memory (V8 heapUsed + external, which holds the Buffers) after two full garbage collections, read through the Node inspector (a DevTools Protocol session opened for the reading and closed after it; none is attached during any other step), and the RSS read at the same moments; for mosquitto the RSS only. The cluster rows relay QoS 1 from a publisher on one of three Natter nodes to a subscriber on another, through one Redis, all on the same 2 cores (their CPU and memory are the three nodes' sum, Redis not included), next to the single node in the same part. The history rows ask for pages of a store holding ${((P.history.chats * P.history.perChat) / 1e6).toFixed(1)} million messages, 16 requests in flight over the HTTP API; their CPU is the broker's per request.`,
    '',
    table(rows),
    '',
    ...notes,
    ...(against.md ? ['## Natter against the anchors', '', against.md, ''] : []),
    `![latency against offered load](${OUT}.png)`,
    '',
  ].join('\n')
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL(`./results/${OUT}.md`, import.meta.url), md)
  writeFileSync(
    new URL(`./results/${OUT}.json`, import.meta.url),
    JSON.stringify({ machine, versions, rows, notes, anchors: against.json }, null, 2),
  )
  await renderChart(rows, new URL(`./results/${OUT}.png`, import.meta.url).pathname)
  process.stdout.write(`${md}\n`)
}

await main()
