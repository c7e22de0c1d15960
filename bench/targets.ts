import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { freePort } from '../test/helpers/free-port.ts'
import { LOAD_LIMITS } from '../test/helpers/processes.ts'

export interface Target {
  name: 'mosquitto' | 'aedes' | 'natter' | 'natter ×3 on Redis'
  url: string
  httpUrl?: string
  /** Natter's data directory (its SQLite files). */
  dataDir?: string
  pid: number
  /** Every process of the target (a cluster's nodes), for CPU and memory; pid alone otherwise. */
  pids?: number[]
  /** A cluster node's MQTT URLs, one per node. */
  urls?: string[]
  version: string
  /** The inspector's port of a Node target started with one (memory after GC, bench/heap.ts). */
  inspectPort?: number
  stop(): Promise<void>
}

const ROOT = new URL('..', import.meta.url).pathname

/**
 * NODE_OPTIONS with the inspector listening on a free port of 127.0.0.1, for a Node target whose
 * live heap is measured. Nothing attaches to it but the short sessions of bench/heap.ts. Its
 * "Debugger listening" line is not printed (the port is known, the URL is read from /json/list).
 */
async function withInspector(
  nodeOptions: string | undefined,
): Promise<{ NODE_OPTIONS: string; port: number }> {
  const port = await freePort()
  const inspect = `--inspect=127.0.0.1:${port} --inspect-publish-uid=http`
  return { NODE_OPTIONS: nodeOptions ? `${nodeOptions} ${inspect}` : inspect, port }
}

/** Reads JSON lines until one matches; the rest of the output keeps being drained. */
function firstJsonLine(
  child: ChildProcess,
  match: (o: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    let done = false
    rl.on('line', (line) => {
      if (done || !line.startsWith('{')) return
      const o = JSON.parse(line) as Record<string, unknown>
      if (match(o)) {
        done = true
        resolve(o)
      }
    })
    child.once('exit', (code) => !done && reject(new Error(`exited with ${code} before it listened`)))
  })
}

const stopper = (child: ChildProcess, cleanup: () => void) => async () => {
  if (child.exitCode === null) {
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
  cleanup()
}

export async function startMosquitto(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-mosquitto-'))
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'max_queued_messages 1000000',
      'persistence false',
      // TCP_NODELAY on client sockets, as Natter and the benchmark's aedes set it (mosquitto's
      // default is off): Nagle's algorithm would hold small packets back for delayed ACKs.
      'set_tcp_nodelay true',
      '',
    ].join('\n'),
  )
  const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  // mosquitto logs to stderr; its "running" line comes once the listener is open.
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stderr as NodeJS.ReadableStream })
    rl.on('line', (line) => line.includes(' running') && resolve())
    child.once('exit', (code) => reject(new Error(`mosquitto exited with ${code}: is port ${port} taken?`)))
  })
  const version = await new Promise<string>((resolve) => {
    const v = spawn('mosquitto', ['-h'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    v.stdout.on('data', (d) => {
      out += d
    })
    v.on('exit', () => resolve(/version ([\d.]+)/.exec(out)?.[1] ?? 'unknown'))
  })
  return {
    name: 'mosquitto',
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid as number,
    version,
    stop: stopper(child, () => rmSync(dir, { recursive: true, force: true })),
  }
}

export async function startAedes(o: { inspect?: boolean } = {}): Promise<Target> {
  const inspector = o.inspect ? await withInspector(process.env.NODE_OPTIONS) : undefined
  // scripts/node.sh ends in exec: the child's pid is node's.
  const child = spawn('sh', [join(ROOT, 'scripts/node.sh'), join(ROOT, 'bench/aedes-server.ts')], {
    env: inspector ? { ...process.env, NODE_OPTIONS: inspector.NODE_OPTIONS } : process.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const up = await firstJsonLine(child, (o) => o.event === 'listening')
  const { version } = JSON.parse(readFileSync(join(ROOT, 'node_modules/aedes/package.json'), 'utf8')) as {
    version: string
  }
  return {
    name: 'aedes',
    url: `mqtt://127.0.0.1:${up.port}`,
    pid: child.pid as number,
    version,
    inspectPort: inspector?.port,
    stop: stopper(child, () => {}),
  }
}

export async function startNatter(o: {
  secret: string
  env?: Record<string, string>
  inspect?: boolean
}): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-natter-'))
  const inspector = o.inspect
    ? await withInspector(o.env?.NODE_OPTIONS ?? process.env.NODE_OPTIONS)
    : undefined
  // bin/natter and scripts/node.sh end in exec: the child's pid is node's.
  const child = spawn('sh', [join(ROOT, 'bin/natter'), 'start'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NATTER_HOST: '127.0.0.1',
      NATTER_MQTT_PORT: '0',
      NATTER_WS_PORT: '0',
      NATTER_HTTP_PORT: '0',
      NATTER_DATA_DIR: dir,
      NATTER_JWT_SECRET: o.secret,
      NATTER_LOG_LEVEL: 'info',
      // Throughput steps measure the send path with its limiters running, not the limits
      // themselves (one device sends hundreds of messages a second); the flood part sets its own.
      ...LOAD_LIMITS,
      ...o.env,
      ...(inspector ? { NODE_OPTIONS: inspector.NODE_OPTIONS } : {}),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const up = await firstJsonLine(child, (o) => o.event === 'listening')
  const ports = up.ports as { mqtt: number; http: number }
  const { version } = (await import('../package.json', { with: { type: 'json' } })).default as {
    version: string
  }
  return {
    name: 'natter',
    url: `mqtt://127.0.0.1:${ports.mqtt}`,
    httpUrl: `http://127.0.0.1:${ports.http}`,
    dataDir: dir,
    pid: child.pid as number,
    version,
    inspectPort: inspector?.port,
    stop: stopper(child, () => rmSync(dir, { recursive: true, force: true })),
  }
}
