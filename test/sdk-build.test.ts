import assert from 'node:assert/strict'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { buildSdk, describeBuild } from '../scripts/build-sdk.ts'
import { ROOT } from './helpers/processes.ts'

describe('the client SDK builds', () => {
  it('for browsers without Node built-ins, and for Node, and reports its size', async () => {
    // Inside the project, so that the Node build finds mqtt.js in node_modules as an app would.
    const out = join(ROOT, 'test-output', `sdk-build-${process.pid}`)
    try {
      const b = await buildSdk(out)
      process.stdout.write(`${describeBuild(b)}\n`)
      assert.deepEqual(b.nodeBuiltins, [])
      assert.ok(b.browserBytes > 0 && b.gzipBytes < b.browserBytes)
      assert.doesNotMatch(readFileSync(b.browserFile, 'utf8'), /\brequire\(["']node:/)
      const sdk = (await import(b.nodeFile)) as { createClient?: unknown; uploadMedia?: unknown }
      assert.equal(typeof sdk.createClient, 'function')
      assert.equal(typeof sdk.uploadMedia, 'function')
      assert.match(readFileSync(join(out, 'types/index.d.ts'), 'utf8'), /createClient/)
    } finally {
      rmSync(out, { recursive: true, force: true })
    }
  })
})
