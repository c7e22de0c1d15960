import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { startFerretDb } from './ferretdb.ts'
import { localNodeEnv, logEvent, type Proc, ROOT, run } from './processes.ts'
import { startRedis } from './redis.ts'
import { type S3Server, s3Env, startVersitygw } from './versitygw.ts'

export interface ClusterNode {
  id: string
  proc: Proc
  mqttUrl: string
  httpUrl: string
  /** SIGKILL: the node dies without a goodbye. */
  kill(): Promise<void>
  /** SIGTERM: a graceful stop. */
  stop(): Promise<void>
}

export interface ClusterSetup {
  redisUrl: string
  mongoUri: string
  /** Media of every node, in one bucket. */
  s3: S3Server
  secret: string
}

/** A shared secret for every node of a test cluster, and tokens signed with it. */
export function clusterSecret(): { secret: string; token(userId: string): Promise<string> } {
  const secret = randomBytes(32).toString('hex')
  const key = new TextEncoder().encode(secret)
  return {
    secret,
    token: (userId) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(userId)
        .setExpirationTime('1h')
        .sign(key),
  }
}

/**
 * One node as its own process (the real `natter start`, or `natter media` for the media service
 * alone), on free ports and its own data dir.
 */
export async function startClusterNode(
  id: string,
  c: ClusterSetup,
  env: Record<string, string> = {},
  command: 'start' | 'media' = 'start',
) {
  const dataDir = mkdtempSync(join(tmpdir(), `natter-node-${id}-`))
  const proc = run('sh', [join(ROOT, 'bin/natter'), command], {
    ...localNodeEnv(dataDir, c.secret),
    NATTER_REDIS_URL: c.redisUrl,
    NATTER_MONGODB_URI: c.mongoUri,
    NATTER_NODE_ID: id,
    ...s3Env(c.s3),
    NATTER_LOG_LEVEL: 'info',
    ...env,
  })
  const cleanup = () => rmSync(dataDir, { recursive: true, force: true })
  let up: { ports: { mqtt?: number; http: number } }
  try {
    up = JSON.parse(await proc.waitFor(logEvent('listening'), 60_000))
  } catch (err) {
    // A node that did not come up leaves neither a process nor its data dir behind.
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGKILL')
      await proc.exited
    }
    cleanup()
    throw err
  }
  const node: ClusterNode = {
    id,
    proc,
    mqttUrl: `mqtt://127.0.0.1:${up.ports.mqtt}`,
    httpUrl: `http://127.0.0.1:${up.ports.http}`,
    kill: async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill('SIGKILL')
        await proc.exited
      }
      cleanup()
    },
    stop: async () => {
      await proc.stop()
      cleanup()
    },
  }
  return node
}

/** Two nodes `a` and `b` on one Redis, one FerretDB and one versitygw bucket, and their teardown. */
export interface TwoNodeCluster {
  a: ClusterNode
  b: ClusterNode
  /** The FerretDB both nodes store in (connection string, and its SQLite files' directory). */
  store: { uri: string; dataDir: string }
  /** The S3 server (versitygw) of both nodes' media. */
  s3: S3Server
  /** SIGTERMs both nodes, then stops the servers they share; safe to call after a failed start. */
  stop(): Promise<void>
}

/**
 * Starts the cluster most cluster tests need: Redis, FerretDB (the MongoDB path) and versitygw
 * (S3), then nodes `a` and `b` signing with `secret` (clusterSecret), with `env` added to both
 * (push providers, say). A start that fails part way stops what did come up before it rethrows.
 */
export async function startTwoNodeCluster(
  secret: string,
  env: Record<string, string> = {},
): Promise<TwoNodeCluster> {
  const [redis, ferret, s3] = await Promise.allSettled([startRedis(), startFerretDb(), startVersitygw()])
  const nodes: ClusterNode[] = []
  const stop = async () => {
    for (const n of nodes) await n.stop()
    for (const server of [ferret, s3, redis]) if (server.status === 'fulfilled') await server.value.stop()
  }
  try {
    if (redis.status === 'rejected') throw redis.reason
    if (ferret.status === 'rejected') throw ferret.reason
    if (s3.status === 'rejected') throw s3.reason
    const setup: ClusterSetup = {
      redisUrl: redis.value.url,
      mongoUri: ferret.value.uri,
      s3: s3.value,
      secret,
    }
    const started = await Promise.allSettled([
      startClusterNode('a', setup, env),
      startClusterNode('b', setup, env),
    ])
    for (const n of started) if (n.status === 'fulfilled') nodes.push(n.value)
    for (const n of started) if (n.status === 'rejected') throw n.reason
  } catch (err) {
    await stop()
    throw err
  }
  return {
    a: nodes[0] as ClusterNode,
    b: nodes[1] as ClusterNode,
    store: { uri: ferret.value.uri, dataDir: ferret.value.dataDir },
    s3: s3.value,
    stop,
  }
}
