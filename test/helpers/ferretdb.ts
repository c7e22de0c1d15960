import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, run, runOnFreePort } from './processes.ts'

export interface FerretDb {
  uri: string
  stop(): Promise<void>
}

/** A real FerretDB (MongoDB wire protocol, SQLite backend) on a free port, built once by scripts/setup-ferretdb.sh. */
export async function startFerretDb(): Promise<FerretDb> {
  const bin = execFileSync('bash', [join(ROOT, 'scripts/setup-ferretdb.sh')], { encoding: 'utf8' }).trim()
  const dir = mkdtempSync(join(tmpdir(), 'natter-ferretdb-'))
  const { proc: p, port } = await runOnFreePort(
    (port) =>
      run(join(ROOT, bin), [
        '--handler=sqlite',
        `--sqlite-url=file:${dir}/`,
        `--listen-addr=127.0.0.1:${port}`,
        '--debug-addr=-',
        '--telemetry=disable',
        `--state-dir=${dir}`,
        '--log-level=info',
      ]),
    (line, port) => line.includes(`Listening on TCP 127.0.0.1:${port}`),
  )
  return {
    uri: `mongodb://127.0.0.1:${port}/natter_test`,
    stop: async () => {
      await p.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
