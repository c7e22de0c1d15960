import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { operations } from '../services/requests/operations.ts'
import { jsonValues, shapeDifferences, shellExamples } from './helpers/doc-examples.ts'
import { logEvent, type Proc, ROOT, run } from './helpers/processes.ts'

/** The admin key docs/admin.md's examples are written for (the page says never to use it). */
const EXAMPLE_ADMIN_KEYS = 'ops:example-admin-key-never-use-it-0123456789'

/**
 * The page's examples are written for `npm start` on this machine's default ports; the test's
 * node listens on free ports, and runs `natter` from the checkout.
 */
function forTestNode(script: string, ports: { mqtt: number; ws: number; http: number }): string {
  return script
    .replaceAll('localhost:8080', `localhost:${ports.http}`)
    .replaceAll('localhost:8083', `localhost:${ports.ws}`)
    .replaceAll('-h localhost', `-h 127.0.0.1 -p ${ports.mqtt}`)
    .replaceAll('npx natter', `sh ${join(ROOT, 'bin/natter')}`)
}

/**
 * Runs a page's shell examples in order in one shell against a fresh node started with nodeEnv,
 * and checks each documented answer's shape; shellEnv is what the reader's shell has too.
 */
function pageExamples(
  PAGE: string,
  o: {
    nodeEnv?: Record<string, string>
    shellEnv?: (ports: { http: number }) => Record<string, string>
  } = {},
) {
  const examples = shellExamples(readFileSync(join(ROOT, PAGE), 'utf8'))
  describe(`${PAGE}: every shell example, run in order in one shell as a reader would`, () => {
    let dataDir: string
    let workDir: string
    let node: Proc
    const outputs = new Map<number, string>()
    let ports: { mqtt: number; ws: number; http: number }
    let stderr = ''

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'natter-doc-'))
      workDir = mkdtempSync(join(tmpdir(), 'natter-doc-work-'))
      const env = {
        NATTER_HOST: '127.0.0.1',
        NATTER_MQTT_PORT: '0',
        NATTER_WS_PORT: '0',
        NATTER_HTTP_PORT: '0',
        NATTER_DATA_DIR: dataDir,
        ...o.nodeEnv,
      }
      node = run('sh', ['bin/natter', 'start'], env)
      ports = JSON.parse(await node.waitFor(logEvent('listening'), 120_000)).ports
      // One shell for the whole page: variables set by one example are there for the next.
      const script = ['set -uo pipefail']
      examples.forEach((ex, i) => {
        script.push(`printf '\\n@@example ${i}@@\\n'`, forTestNode(ex.script, ports), 'wait')
      })
      const shell = spawn('bash', ['-c', script.join('\n')], {
        cwd: workDir,
        env: { ...process.env, NATTER_DATA_DIR: dataDir, ...o.nodeEnv, ...o.shellEnv?.(ports) },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      shell.stdout.on('data', (d: Buffer) => {
        stdout += d.toString('utf8')
      })
      shell.stderr.on('data', (d: Buffer) => {
        stderr += d.toString('utf8')
      })
      const code = await new Promise<number | null>((resolve) => shell.on('exit', resolve))
      assert.equal(code, 0, `the page's examples failed in the shell:\n${stderr}`)
      const parts = stdout.split(/\n@@example (\d+)@@\n/)
      for (let i = 1; i < parts.length; i += 2) outputs.set(Number(parts[i]), parts[i + 1] ?? '')
    })
    after(async () => {
      await node?.stop()
      rmSync(dataDir, { recursive: true, force: true })
      rmSync(workDir, { recursive: true, force: true })
    })

    if (PAGE === 'docs/protocol.md')
      it('calls every operation with curl', () => {
        const called = new Set(
          examples.flatMap((ex) => [...ex.script.matchAll(/\$API\/([\w.]+)/g)].map((m) => m[1])),
        )
        const ops = Object.keys(operations({ maxGroupMembers: 1000, maxPageSize: 200 }))
        assert.deepEqual(
          ops.filter((op) => !called.has(op)),
          [],
          'operations without a curl example',
        )
      })

    if (PAGE === 'docs/protocol.md')
      it('gives every time in every answer as integer ms since the epoch, in a field ending in At', () => {
        const wrong: string[] = []
        const walk = (v: unknown, path: string): void => {
          if (Array.isArray(v)) {
            for (const [i, x] of v.entries()) walk(x, `${path}[${i}]`)
          } else if (v && typeof v === 'object') {
            for (const [k, x] of Object.entries(v)) {
              if (k.endsWith('At') && x !== null && !(Number.isInteger(x) && (x as number) > 1e12)) {
                wrong.push(`${path}.${k} = ${JSON.stringify(x)}`)
              }
              walk(x, `${path}.${k}`)
            }
          } else if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v))
            wrong.push(`${path} = ${v}`)
        }
        let seen = 0
        for (const [i, output] of outputs) {
          for (const v of jsonValues(output.trim().startsWith('{') ? output : '')) {
            seen++
            walk(v, `example ${i}`)
          }
        }
        assert.ok(seen >= 20, `only ${seen} answers`)
        assert.deepEqual(wrong, [])
      })

    for (const [i, ex] of examples.entries()) {
      const title = ex.script.split('\n').find((l) => l.trim() && !l.startsWith('#')) ?? ''
      it(`line ${ex.line}: ${title.slice(0, 90)}`, () => {
        const output = outputs.get(i)
        assert.notEqual(output, undefined, 'the example did not run')
        if (ex.expected === null) return
        const got = jsonValues(output ?? '')
        const want = jsonValues(forTestNode(ex.expected, ports))
        assert.equal(
          got.length,
          want.length,
          `printed ${got.length} JSON values, the page shows ${want.length}:\n${output}`,
        )
        const diffs = want.flatMap((w, k) => shapeDifferences(got[k], w, `$${k}`))
        assert.deepEqual(diffs, [], `printed:\n${output}`)
      })
    }
  })
}

pageExamples('docs/protocol.md')
pageExamples('docs/admin.md', {
  nodeEnv: { NATTER_ADMIN_KEYS: EXAMPLE_ADMIN_KEYS },
  // `natter admin` finds the node where a reader's would: NATTER_HTTP_PORT's default, 8080.
  shellEnv: (ports) => ({ NATTER_ADMIN_URL: `http://127.0.0.1:${ports.http}` }),
})
