import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.ts'
import { type Proc, run } from './processes.ts'

export interface RedisServer {
  url: string
  port: number
  /** Stops the server (SIGKILL when hard) and starts it again on the same port. */
  restart(o?: { hard?: boolean }): Promise<void>
  /** Stops the server (SIGKILL when hard), keeping its port and data for up(). */
  down(o?: { hard?: boolean }): Promise<void>
  /** Starts a server that is down again, on the same port and data directory. */
  up(): Promise<void>
  stop(): Promise<void>
}

/**
 * A real redis-server (installed by scripts/setup-test-deps.sh) on a free port: in memory only,
 * or with an append-only file synced on every write (persistent), as an operator would run it.
 */
export async function startRedis(o: { persistent?: boolean } = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'natter-redis-'))
  let port = 0
  let proc: Proc | undefined
  let removed = false
  const start = async () => {
    const p = run('redis-server', [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      o.persistent ? 'yes' : 'no',
      '--appendfsync',
      'always',
      '--dir',
      dir,
    ])
    await p.waitFor((l) => l.includes('Ready to accept connections'), 15_000)
    proc = p
  }
  for (let attempt = 0; ; attempt++) {
    port = await freePort()
    try {
      await start()
      break
    } catch (err) {
      // Another process took the port between the check and the listen.
      if (attempt === 2) throw err
    }
  }
  const stop = async (hard = false) => {
    if (!proc) return
    if (hard) {
      proc.child.kill('SIGKILL')
      await proc.exited
    } else await proc.stop()
    proc = undefined
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    restart: async (o = {}) => {
      await stop(o.hard)
      await start()
    },
    down: (o = {}) => stop(o.hard),
    up: async () => {
      // Up after stop() (a fault still under way when its run was cleaned up) starts nothing.
      if (!proc && !removed) await start()
    },
    stop: async () => {
      removed = true
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface RedisSentinel {
  /** NATTER_REDIS_URL for the monitored master. */
  url: string
  stop(): Promise<void>
}

/** A real Redis Sentinel (redis-server --sentinel) watching a Redis as master "natter". */
export async function startSentinel(master: RedisServer): Promise<RedisSentinel> {
  const dir = mkdtempSync(join(tmpdir(), 'natter-sentinel-'))
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const conf = join(dir, 'sentinel.conf')
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor natter 127.0.0.1 ${master.port} 1`,
        'sentinel down-after-milliseconds natter 2000',
      ].join('\n'),
    )
    const proc = run('redis-server', [conf, '--sentinel'])
    try {
      await proc.waitFor((l) => l.includes('+monitor master natter'), 15_000)
      return {
        url: `redis-sentinel://127.0.0.1:${port}/natter`,
        stop: async () => {
          await proc.stop()
          rmSync(dir, { recursive: true, force: true })
        },
      }
    } catch (err) {
      await proc.stop()
      if (attempt === 2) throw err
    }
  }
}
