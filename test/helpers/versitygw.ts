import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, run, runOnFreePort } from './processes.ts'

export interface S3Server {
  endpoint: string
  accessKeyId: string
  secretAccessKey: string
  region: string
  /** The server's directory: buckets and objects as plain files under data/, metadata under meta/. */
  dir: string
  stop(): Promise<void>
}

/**
 * A real S3 server: versitygw (it checks SigV4 signatures, expiry and checksums) on a free port
 * over a fresh directory, built once by scripts/setup-versitygw.sh.
 */
export async function startVersitygw(): Promise<S3Server> {
  const bin = execFileSync('bash', [join(ROOT, 'scripts/setup-versitygw.sh')], { encoding: 'utf8' }).trim()
  const dir = mkdtempSync(join(tmpdir(), 'natter-s3-'))
  mkdirSync(join(dir, 'meta'))
  mkdirSync(join(dir, 'data'))
  const accessKeyId = `natter${randomBytes(4).toString('hex')}`
  const secretAccessKey = randomBytes(20).toString('hex')
  const { proc: p, port } = await runOnFreePort(
    (port) =>
      run(
        join(ROOT, bin),
        ['--port', `127.0.0.1:${port}`, 'posix', '--sidecar', join(dir, 'meta'), join(dir, 'data')],
        { ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
      ),
    (line, port) => line.includes(`http://127.0.0.1:${port}`),
  )
  return {
    endpoint: `http://127.0.0.1:${port}`,
    accessKeyId,
    secretAccessKey,
    region: 'us-east-1',
    dir,
    stop: async () => {
      await p.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The settings that put a node's media in a bucket of this server. */
export function s3Env(s3: S3Server, bucket = 'natter-media'): Record<string, string> {
  return {
    NATTER_S3_BUCKET: bucket,
    NATTER_S3_ENDPOINT: s3.endpoint,
    NATTER_S3_FORCE_PATH_STYLE: 'true',
    NATTER_S3_ACCESS_KEY_ID: s3.accessKeyId,
    NATTER_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
  }
}
