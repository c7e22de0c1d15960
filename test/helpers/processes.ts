import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { freePort } from './free-port.ts'

export const ROOT = new URL('../..', import.meta.url).pathname

export interface Proc {
  child: ChildProcess
  lines: string[]
  /** Resolves with the first output line (past or future) that matches. */
  waitFor(match: (line: string) => boolean, ms?: number): Promise<string>
  /** Resolves with the exit code. */
  exited: Promise<number | null>
  stop(): Promise<void>
  /** Calls listener with every output line from now on, as it is read. */
  onLine(listener: (line: string) => void): void
}

/** Runs a command with its stdout and stderr read as lines, and kills it at stop(). */
export function run(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const waiters = new Set<{ match: (l: string) => boolean; resolve: (l: string) => void }>()
  const listeners: Array<(line: string) => void> = []
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line)
      for (const l of listeners) l(line)
      for (const w of waiters) {
        if (w.match(line)) {
          waiters.delete(w)
          w.resolve(line)
        }
      }
    })
  }
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  return {
    child,
    lines,
    exited,
    onLine: (listener) => {
      listeners.push(listener)
    },
    waitFor(match, ms = 30_000) {
      const seen = lines.find(match)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const w = { match, resolve }
        waiters.add(w)
        const timer = setTimeout(() => {
          waiters.delete(w)
          reject(
            new Error(
              `${cmd} ${args.join(' ')}: no matching line within ${ms} ms; output:\n${lines.join('\n')}`,
            ),
          )
        }, ms)
        exited.then(() =>
          setImmediate(() => {
            if (waiters.delete(w)) {
              clearTimeout(timer)
              reject(new Error(`${cmd} exited before a matching line; output:\n${lines.join('\n')}`))
            }
          }),
        )
        const done = w.resolve
        w.resolve = (l) => {
          clearTimeout(timer)
          done(l)
        }
      })
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await exited
      }
    },
  }
}

/** Runs a command to its end and returns its exit code and output. */
export async function runToEnd(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const [code] = await once(child, 'exit')
  return { code: code as number | null, stdout, stderr }
}

/** A line of the natter JSON log with the given event (and client id, if given). */
export function logEvent(event: string, clientId?: string) {
  return (line: string) => {
    if (!line.startsWith('{')) return false
    try {
      const o = JSON.parse(line) as { event?: string; clientId?: string }
      return o.event === event && (clientId === undefined || o.clientId === clientId)
    } catch {
      return false
    }
  }
}

/**
 * Starts a server that cannot report a port it picked itself (FerretDB, versitygw): a free port
 * is chosen first, and as another process could take it in between, it is tried up to 3 times.
 */
export async function runOnFreePort(
  launch: (port: number) => Proc,
  ready: (line: string, port: number) => boolean,
  ms = 30_000,
): Promise<{ proc: Proc; port: number }> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const proc = launch(port)
    try {
      await proc.waitFor((line) => ready(line, port), ms)
      return { proc, port }
    } catch (err) {
      await proc.stop()
      if (attempt === 2) throw err
    }
  }
}

/**
 * The settings of a node for tests: loopback only, every port 0 (free ports, read from the
 * "listening" log line), its own data directory, and a shared JWT secret.
 */
export function localNodeEnv(dataDir: string, secret: string): Record<string, string> {
  return {
    NATTER_HOST: '127.0.0.1',
    NATTER_MQTT_PORT: '0',
    NATTER_WS_PORT: '0',
    NATTER_HTTP_PORT: '0',
    NATTER_DATA_DIR: dataDir,
    NATTER_JWT_SECRET: secret,
    ...LOAD_LIMITS,
  }
}

/**
 * Rate limits (and a cap on devices per user) far above anything a test sends, for nodes under test load: a device sending
 * thousands of messages, a thousand devices connecting from 127.0.0.1. The limiters still run
 * on every send, request, typing indicator, CONNECT and HTTP call; test/rate-limits*.test.ts
 * sets the limits it tests.
 */
export const LOAD_LIMITS: Record<string, string> = {
  NATTER_LIMIT_SENDS_PER_DEVICE: '1000000/1s',
  NATTER_LIMIT_SENDS_PER_USER: '1000000/1s',
  NATTER_LIMIT_REQUESTS_PER_DEVICE: '1000000/1s',
  NATTER_LIMIT_REQUESTS_PER_USER: '1000000/1s',
  NATTER_LIMIT_TYPING_PER_DEVICE: '1000000/1s',
  NATTER_LIMIT_TYPING_PER_USER: '1000000/1s',
  NATTER_LIMIT_UPLOADS_PER_DEVICE: '1000000/1s',
  NATTER_LIMIT_UPLOADS_PER_USER: '1000000/1s',
  NATTER_LIMIT_CONNECTS_PER_IP: '1000000/1s',
  NATTER_LIMIT_CONNECTS_PER_USER: '1000000/1s',
  NATTER_LIMIT_HTTP_PER_TOKEN: '1000000/1s',
  // The load tests open up to 100 devices per user; test/devices.e2e.test.ts tests the cap.
  NATTER_MAX_DEVICES_PER_USER: '1000',
}
