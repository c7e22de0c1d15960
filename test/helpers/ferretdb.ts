import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Proc, ROOT, run, runOnFreePort } from './processes.ts'

export interface FerretDb {
  uri: string
  /** Where the server keeps its SQLite files: the store's bytes on disk. */
  dataDir: string
  stop(): Promise<void>
  /** Stops the server, keeping its port and data for up(). */
  down(): Promise<void>
  /** Starts a server that is down again, on the same port and data. */
  up(): Promise<void>
}

/** A real FerretDB (MongoDB wire protocol, SQLite backend) on a free port, built once by scripts/setup-ferretdb.sh. */
export async function startFerretDb(): Promise<FerretDb> {
  const bin = execFileSync('bash', [join(ROOT, 'scripts/setup-ferretdb.sh')], { encoding: 'utf8' }).trim()
  const dir = mkdtempSync(join(tmpdir(), 'natter-ferretdb-'))
  const launch = (port: number) =>
    run(join(ROOT, bin), [
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--listen-addr=127.0.0.1:${port}`,
      '--debug-addr=-',
      '--telemetry=disable',
      `--state-dir=${dir}`,
      '--log-level=info',
    ])
  const ready = (line: string, port: number) => line.includes(`Listening on TCP 127.0.0.1:${port}`)
  const first = await runOnFreePort(launch, ready)
  const port = first.port
  let p: Proc | undefined = first.proc
  let removed = false
  const down = async () => {
    await p?.stop()
    p = undefined
  }
  return {
    uri: `mongodb://127.0.0.1:${port}/natter_test`,
    dataDir: dir,
    stop: async () => {
      removed = true
      await down()
      rmSync(dir, { recursive: true, force: true })
    },
    down,
    up: async () => {
      // Up after stop() (a fault still under way when its run was cleaned up) starts nothing.
      if (p || removed) return
      const next = launch(port)
      try {
        await next.waitFor((line) => ready(line, port), 30_000)
      } catch (err) {
        await next.stop()
        throw err
      }
      p = next
    },
  }
}
