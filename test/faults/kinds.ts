import type { FaultDevice } from './devices.ts'
import type { NodeHandle, System } from './system.ts'

/** What a fault function gets: the running system and its devices. */
export interface FaultContext {
  system: System
  /** The persistent devices (clean=false): the members whose delivery is checked. */
  devices: FaultDevice[]
  /** A throw-away device (clean=true) of a user who must end up offline: cut by the fault, never back. */
  gone: FaultDevice
  /** The node the fault hits (the one whose devices it cuts). */
  victim: number
  /** What went wrong with the fault itself (a node that did not exit, a device that did not come back). */
  problems: string[]
  log(line: string): void
}

export interface FaultPlan {
  topology: 'cluster' | 'embedded'
  /** The node the fault hits; the throw-away device lives there. */
  victim: number
  /** The victim node is not running at the end, by the fault's design (not a finding). */
  victimGone: boolean
  /** Messages acked before the fault is injected. */
  before: number
  /** Messages acked after the system has recovered, before the traffic stops. */
  after: number
  /** Injects the fault and returns once the system has recovered from it. */
  inject(ctx: FaultContext): Promise<void>
}

// How long devices cut by a fault may take to get their next CONNACK.
const RECONNECT_MS = 30_000
// How long a node may take to exit by itself after SIGTERM: the shutdown grace (10 s) and its close.
const SIGTERM_EXIT_MS = 40_000

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function nodeAt(ctx: FaultContext, i: number): NodeHandle {
  const node = ctx.system.nodes[i]
  if (!node) throw new Error(`no node ${i}`)
  return node
}

/** The devices connected (through their proxies) to a node right now, with their CONNACK counts. */
function devicesOn(ctx: FaultContext, node: NodeHandle): Map<FaultDevice, number> {
  return new Map(ctx.devices.filter((d) => d.proxy.current === node.mqttPort).map((d) => [d, d.connacks]))
}

/** Waits until each device got a CONNACK after the count it had; a device that does not is a problem. */
async function reconnected(ctx: FaultContext, cut: Map<FaultDevice, number>, what: string): Promise<void> {
  const started = Date.now()
  await Promise.all(
    [...cut].map(async ([d, before]) => {
      if (!(await d.until(() => d.connacks > before, RECONNECT_MS)))
        ctx.problems.push(`${d.label} did not reconnect within ${RECONNECT_MS / 1000} s ${what}`)
    }),
  )
  ctx.log(`${cut.size} devices reconnected ${what} in ${Date.now() - started} ms`)
}

async function killNode(ctx: FaultContext, i: number): Promise<void> {
  const node = nodeAt(ctx, i)
  const cut = devicesOn(ctx, node)
  await node.kill()
  ctx.gone.drop()
  ctx.log(`node ${node.id} killed (SIGKILL) with ${cut.size} persistent devices on it`)
  await reconnected(ctx, cut, `after the SIGKILL of node ${node.id}`)
}

/** SIGKILL of the node the sender is connected to (node 0). */
export function killSenderNode(ctx: FaultContext): Promise<void> {
  return killNode(ctx, ctx.victim)
}

/** SIGKILL of the node most receivers are connected to (node 1), early in the traffic. */
export function killReceiverNodeEarly(ctx: FaultContext): Promise<void> {
  return killNode(ctx, ctx.victim)
}

/** SIGKILL of the node most receivers are connected to (node 1), late in the traffic. */
export function killReceiverNodeLate(ctx: FaultContext): Promise<void> {
  return killNode(ctx, ctx.victim)
}

async function redisDown(ctx: FaultContext, ms: number): Promise<void> {
  const redis = ctx.system.redis
  if (!redis) throw new Error('no Redis in this system')
  await redis.down()
  ctx.gone.drop()
  ctx.log(`redis-server stopped; starting it again in ${ms} ms`)
  // The fault itself: Redis stays away this long.
  await pause(ms)
  await redis.up()
  ctx.log('redis-server started again on the same port and append-only file')
}

/** redis-server stopped, 3 s away, started again on the same port and data (append-only). */
export function redisRestart3s(ctx: FaultContext): Promise<void> {
  return redisDown(ctx, 3000)
}

/** redis-server stopped, 10 s away, started again on the same port and data (append-only). */
export function redisRestart10s(ctx: FaultContext): Promise<void> {
  return redisDown(ctx, 10_000)
}

/** SIGTERM of the sender's node under traffic: it must exit by itself, with code 0. */
export async function sigtermUnderTraffic(ctx: FaultContext): Promise<void> {
  const node = nodeAt(ctx, ctx.victim)
  const cut = devicesOn(ctx, node)
  const started = Date.now()
  node.proc.child.kill('SIGTERM')
  let timer: NodeJS.Timeout | undefined
  const code = await Promise.race([
    node.proc.exited,
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), SIGTERM_EXIT_MS))),
  ])
  clearTimeout(timer)
  ctx.gone.drop()
  if (code === 'timeout') {
    ctx.problems.push(`node ${node.id} did not exit within ${SIGTERM_EXIT_MS / 1000} s of SIGTERM`)
    await node.kill()
  } else if (code !== 0) ctx.problems.push(`node ${node.id} exited with code ${code} after SIGTERM`)
  ctx.log(`node ${node.id} exited ${Date.now() - started} ms after SIGTERM (code ${code})`)
  await reconnected(ctx, cut, `after the SIGTERM of node ${node.id}`)
}

/** FerretDB stopped, 5 s away, started again on the same port and data. */
export async function mongoStop5s(ctx: FaultContext): Promise<void> {
  const ferret = ctx.system.ferret
  if (!ferret) throw new Error('no FerretDB in this system')
  await ferret.down()
  ctx.gone.drop()
  ctx.log('FerretDB stopped; starting it again in 5000 ms')
  // The fault itself: MongoDB stays away this long.
  await pause(5000)
  await ferret.up()
  ctx.log('FerretDB started again on the same port and data')
}

/** The embedded default (one node, SQLite): SIGKILL, then started again on its data dir and ports. */
export async function embeddedKill(ctx: FaultContext): Promise<void> {
  const node = nodeAt(ctx, 0)
  const cut = devicesOn(ctx, node)
  await node.kill()
  ctx.gone.drop()
  const port = node.mqttPort
  await ctx.system.restartEmbedded()
  ctx.log(
    `embedded node killed and started again (${node.mqttPort === port ? 'same ports' : `new MQTT port ${node.mqttPort}`})`,
  )
  await reconnected(ctx, cut, 'after the restart of the embedded node')
}

export const FAULTS = {
  'kill-sender-node': {
    topology: 'cluster',
    victim: 0,
    victimGone: true,
    before: 30,
    after: 30,
    inject: killSenderNode,
  },
  'kill-receiver-node-early': {
    topology: 'cluster',
    victim: 1,
    victimGone: true,
    before: 10,
    after: 60,
    inject: killReceiverNodeEarly,
  },
  'kill-receiver-node-late': {
    topology: 'cluster',
    victim: 1,
    victimGone: true,
    before: 90,
    after: 10,
    inject: killReceiverNodeLate,
  },
  'redis-restart-3s': {
    topology: 'cluster',
    victim: 1,
    victimGone: false,
    before: 30,
    after: 30,
    inject: redisRestart3s,
  },
  'redis-restart-10s': {
    topology: 'cluster',
    victim: 1,
    victimGone: false,
    before: 30,
    after: 30,
    inject: redisRestart10s,
  },
  'sigterm-under-traffic': {
    topology: 'cluster',
    victim: 0,
    victimGone: true,
    before: 30,
    after: 30,
    inject: sigtermUnderTraffic,
  },
  'mongo-stop-5s': {
    topology: 'cluster',
    victim: 1,
    victimGone: false,
    before: 30,
    after: 30,
    inject: mongoStop5s,
  },
  'embedded-kill': {
    topology: 'embedded',
    victim: 0,
    victimGone: false,
    before: 30,
    after: 30,
    inject: embeddedKill,
  },
} satisfies Record<string, FaultPlan>

export type FaultKind = keyof typeof FAULTS

export const FAULT_KINDS = Object.keys(FAULTS) as FaultKind[]

export function isFaultKind(s: string): s is FaultKind {
  return Object.hasOwn(FAULTS, s)
}
