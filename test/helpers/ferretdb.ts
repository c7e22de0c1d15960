import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './free-port.ts'
import { type Proc, ROOT, run } from './processes.ts'

export interface FerretDb {
  uri: string
  stop(): Promise<void>
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
      '--log-level=info',
    ])
    try {
      await proc.waitFor((l) => l.includes(`Listening on TCP 127.0.0.1:${port}`), 30_000)
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
