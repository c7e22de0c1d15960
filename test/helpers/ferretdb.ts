import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Proc, ROOT, run } from './processes.ts'

export interface FerretDb {
  uri: string
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as { port: number }
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

/** A real FerretDB (MongoDB wire protocol, SQLite backend) on a free port, built once by scripts/setup-ferretdb.sh. */
export async function startFerretDb(): Promise<FerretDb> {
  const bin = execFileSync('bash', [join(ROOT, 'scripts/setup-ferretdb.sh')], { encoding: 'utf8' }).trim()
  const dir = mkdtempSync(join(tmpdir(), 'natter-ferretdb-'))
  let proc: Proc | undefined
  let port = 0
  // FerretDB cannot report a port it picked itself, so a free one is chosen first; another
  // process could take it in between, hence a retry.
  for (let attempt = 0; attempt < 3; attempt++) {
    port = await freePort()
    proc = run(join(ROOT, bin), [
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--listen-addr=127.0.0.1:${port}`,
      '--debug-addr=-',
      '--telemetry=disable',
      `--state-dir=${dir}`,
      '--log-level=warn',
    ])
    try {
      await waitForPort(port, proc)
      break
    } catch (err) {
      await proc.stop()
      proc = undefined
      if (attempt === 2) throw err
    }
  }
  const p = proc as Proc
  return {
    uri: `mongodb://127.0.0.1:${port}/natter_test`,
    stop: async () => {
      await p.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function waitForPort(port: number, proc: Proc): Promise<void> {
  const { createConnection } = await import('node:net')
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`ferretdb exited:\n${proc.lines.join('\n')}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.destroy()
        resolve(true)
      })
      s.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`ferretdb did not listen on ${port}`)
}
