import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { type ClusterNode, clusterSecret, startClusterNode } from '../helpers/cluster.ts'
import { type FerretDb, startFerretDb } from '../helpers/ferretdb.ts'
import { LOAD_LIMITS, logEvent, type Proc, run } from '../helpers/processes.ts'
import { type RedisServer, startRedis } from '../helpers/redis.ts'
import { type S3Server, startVersitygw } from '../helpers/versitygw.ts'

// A node process (Node with type stripping) takes a few seconds to start on a loaded machine.
const NODE_START_MS = 90_000

/** One natter process of the system under test. */
export interface NodeHandle {
  id: string
  proc: Proc
  mqttPort: number
  httpUrl: string
  alive(): boolean
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<void>
  /** Removes what the node left behind (its data dir), after it is dead. */
  dispose(): Promise<void>
}

export interface System {
  topology: 'cluster' | 'embedded'
  nodes: NodeHandle[]
  redis: RedisServer | undefined
  ferret: FerretDb | undefined
  token(userId: string): Promise<string>
  /** MQTT ports of the live nodes, starting with node `home` and going round. */
  portsFrom(home: number): number[]
  /** The HTTP address of a live node. */
  httpUrl(): string
  /** Embedded only: starts the (dead) node again on its data dir, on the same ports if it can. */
  restartEmbedded(): Promise<void>
  /** Every output line of every process, per process, for a report. */
  logs(): Record<string, string[]>
  close(): Promise<void>
}

const alive = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null

function rotate<T>(list: T[], from: number): T[] {
  return list.map((_, i) => list[(from + i) % list.length] as T)
}

/**
 * A cluster as docs/cluster.md runs it: `n` real node processes on one redis-server with an
 * append-only file, one FerretDB and one versitygw (media; a cluster refuses to start without S3).
 */
export async function startCluster(n: number, tag: string): Promise<System> {
  const { secret, token } = clusterSecret()
  let redis: RedisServer | undefined
  let ferret: FerretDb | undefined
  let s3: S3Server | undefined
  const nodes: NodeHandle[] = []
  const logs: Record<string, string[]> = {}
  const close = async () => {
    for (const node of nodes) await node.kill().catch(() => {})
    for (const node of nodes) await node.dispose().catch(() => {})
    await ferret?.stop().catch(() => {})
    await s3?.stop().catch(() => {})
    await redis?.stop().catch(() => {})
  }
  try {
    ;[redis, ferret, s3] = await Promise.all([
      startRedis({ persistent: true }),
      startFerretDb(),
      startVersitygw(),
    ])
    const setup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    const ids = Array.from({ length: n }, (_, i) => `${tag}-${String.fromCharCode(97 + i)}`)
    // The first node alone: nodes starting at the same moment race to create the media bucket,
    // and the loser exits ("you already own it"). The others then start together.
    const [first, ...rest] = ids as [string, ...string[]]
    nodes.push(clusterHandle(await startClusterNode(first, setup)))
    const started = await Promise.allSettled(rest.map((id) => startClusterNode(id, setup)))
    for (const s of started) if (s.status === 'fulfilled') nodes.push(clusterHandle(s.value))
    const failed = started.find((s) => s.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
    for (const node of nodes) logs[`node-${node.id}`] = node.proc.lines
  } catch (err) {
    await close()
    throw err
  }
  const r = redis
  const f = ferret
  return {
    topology: 'cluster',
    nodes,
    redis: r,
    ferret: f,
    token,
    portsFrom: (home) =>
      rotate(nodes, home)
        .filter((x) => x.alive())
        .map((x) => x.mqttPort),
    httpUrl: () => {
      const live = nodes.find((x) => x.alive())
      if (!live) throw new Error('no live node')
      return live.httpUrl
    },
    restartEmbedded: () => Promise.reject(new Error('a cluster has no embedded node')),
    logs: () => logs,
    close,
  }
}

function clusterHandle(n: ClusterNode): NodeHandle {
  return {
    id: n.id,
    proc: n.proc,
    mqttPort: Number(new URL(n.mqttUrl).port),
    httpUrl: n.httpUrl,
    alive: () => alive(n.proc),
    kill: async () => {
      if (alive(n.proc)) {
        n.proc.child.kill('SIGKILL')
        await n.proc.exited
      }
    },
    // ClusterNode.kill() kills if need be and removes the data dir.
    dispose: () => n.kill(),
  }
}

/**
 * The embedded default: one `natter start` with SQLite in its data dir and no Redis or MongoDB.
 * restartEmbedded() starts it again on the same data dir and the same ports, or on new ports
 * when one of them was taken meanwhile (the devices' proxies follow: portsFrom reads the node).
 */
export async function startEmbedded(tag: string): Promise<System> {
  const dataDir = mkdtempSync(join(tmpdir(), `natter-faults-${tag}-`))
  const secret = randomBytes(32).toString('hex')
  const token = tokensFor(secret)
  const logs: Record<string, string[]> = {}
  let life = 0
  let closed = false
  const launch = async (ports: { mqtt: number; ws: number; http: number }) => {
    const proc = run('sh', ['bin/natter', 'start'], {
      NATTER_HOST: '127.0.0.1',
      NATTER_MQTT_PORT: String(ports.mqtt),
      NATTER_WS_PORT: String(ports.ws),
      NATTER_HTTP_PORT: String(ports.http),
      NATTER_DATA_DIR: dataDir,
      NATTER_JWT_SECRET: secret,
      NATTER_LOG_LEVEL: 'info',
      ...LOAD_LIMITS,
    })
    logs[`node-${tag}-life${++life}`] = proc.lines
    try {
      const up = JSON.parse(await proc.waitFor(logEvent('listening'), NODE_START_MS)) as {
        ports: { mqtt: number; ws: number; http: number }
      }
      if (closed) throw new Error('the system was closed while its node started')
      return { proc, ports: up.ports }
    } catch (err) {
      if (alive(proc)) {
        proc.child.kill('SIGKILL')
        await proc.exited
      }
      throw err
    }
  }
  let current: { proc: Proc; ports: { mqtt: number; ws: number; http: number } }
  try {
    current = await launch({ mqtt: 0, ws: 0, http: 0 })
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true })
    throw err
  }
  const handle: NodeHandle = {
    id: tag,
    get proc() {
      return current.proc
    },
    get mqttPort() {
      return current.ports.mqtt
    },
    get httpUrl() {
      return `http://127.0.0.1:${current.ports.http}`
    },
    alive: () => alive(current.proc),
    kill: async () => {
      if (alive(current.proc)) {
        current.proc.child.kill('SIGKILL')
        await current.proc.exited
      }
    },
    dispose: async () => rmSync(dataDir, { recursive: true, force: true }),
  }
  return {
    topology: 'embedded',
    nodes: [handle],
    redis: undefined,
    ferret: undefined,
    token,
    portsFrom: () => (handle.alive() ? [handle.mqttPort] : []),
    httpUrl: () => handle.httpUrl,
    restartEmbedded: async () => {
      if (closed) throw new Error('the system was closed')
      if (handle.alive()) throw new Error('the embedded node is still running')
      try {
        current = await launch(current.ports)
      } catch {
        // A port was taken between the death and the restart: any free ports, and the devices'
        // proxies send them there.
        current = await launch({ mqtt: 0, ws: 0, http: 0 })
      }
    },
    logs: () => logs,
    close: async () => {
      closed = true
      await handle.kill()
      await handle.dispose()
    },
  }
}

/** Tokens signed with a given shared secret (the embedded node is started with it). */
function tokensFor(secret: string): (userId: string) => Promise<string> {
  const key = new TextEncoder().encode(secret)
  return (userId) =>
    new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setExpirationTime('1h').sign(key)
}
