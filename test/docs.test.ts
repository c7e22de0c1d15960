import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { renderSchemasDoc } from '../scripts/schemas-doc.ts'
import { errorCodes } from '../services/requests/envelope.ts'
import { operations } from '../services/requests/operations.ts'
import { jsonValues } from './helpers/doc-examples.ts'

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')

describe('docs stay true', () => {
  it('docs/schemas.md is what the code validates with (npm run docs:schemas writes it)', () => {
    assert.equal(read('docs/schemas.md'), renderSchemasDoc())
  })

  it('docs/protocol.md shows only valid JSON in its json examples (shell examples: protocol-examples.e2e)', () => {
    const blocks = [...read('docs/protocol.md').matchAll(/^```json\n([\s\S]*?)^```$/gm)].map(
      (m) => m[1] ?? '',
    )
    assert.ok(blocks.length >= 20, `only ${blocks.length} json examples`)
    for (const block of blocks) {
      assert.doesNotThrow(() => assert.ok(jsonValues(block).length > 0), `not JSON:\n${block}`)
    }
  })

  it('docs/protocol.md names every operation and every error code', () => {
    const protocol = read('docs/protocol.md')
    for (const op of Object.keys(operations({ maxGroupMembers: 1000, maxPageSize: 200 }))) {
      assert.ok(protocol.includes(`\`${op}\``), `protocol.md does not mention ${op}`)
    }
    for (const code of errorCodes)
      assert.ok(protocol.includes(`\`${code}\``), `protocol.md does not list ${code}`)
  })
})
