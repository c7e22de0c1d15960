import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { parseCorsOrigins } from '../broker/cors.ts'
import { ConfigError, loadConfig } from '../config/load.ts'

/** corsOrigins in a JSON config file: the comma-separated text, or an array of origins. */
describe('corsOrigins from a JSON config file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-cors-config-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0
  const fromFile = (corsOrigins: unknown, env: Record<string, string> = {}) => {
    const file = join(dir, `config-${n++}.json`)
    writeFileSync(file, JSON.stringify({ corsOrigins }))
    return loadConfig({ file, env })
  }

  it('takes an array of origins as the comma-separated text would be', () => {
    const { settings } = fromFile(['https://App.Example.com', ' http://localhost:5173 '])
    assert.equal(settings.corsOrigins, 'https://App.Example.com, http://localhost:5173 ')
    assert.deepEqual(parseCorsOrigins(settings.corsOrigins), {
      any: false,
      origins: new Set(['https://app.example.com', 'http://localhost:5173']),
    })
    assert.equal(
      fromFile('https://a.example.com,https://b.example.com').settings.corsOrigins,
      'https://a.example.com,https://b.example.com',
    )
    assert.equal(fromFile(['*']).settings.corsOrigins, '*')
    assert.equal(fromFile([]).settings.corsOrigins, undefined)
    // The environment variable still wins over the file.
    assert.equal(
      fromFile(['https://a.example.com'], { NATTER_CORS_ORIGINS: 'https://env.example.com' }).settings
        .corsOrigins,
      'https://env.example.com',
    )
  })

  for (const [value, message] of [
    [
      ['https://a.example.com', 42],
      /corsOrigins in .*: entry 1 of the array, 42, is not an origin: expected one origin per entry/,
    ],
    [
      ['https://a.example.com,https://b.example.com'],
      /entry 0 of the array, "https:\/\/a.example.com,https:\/\/b.example.com", is not an origin/,
    ],
    [[''], /entry 0 of the array, "", is not an origin/],
    [
      ['https://a.example.com/app'],
      /"https:\/\/a.example.com\/app" is not an origin: expected scheme:\/\/host\[:port\] with no path/,
    ],
    [['*', 'https://a.example.com'], /\* \(any origin\) stands alone/],
    [
      { origin: 'https://a.example.com' },
      /expected origins separated by commas, or in a config file an array of origins/,
    ],
  ] as const) {
    it(`refuses ${JSON.stringify(value)} with a line naming the setting and the entry`, () => {
      assert.throws(
        () => fromFile(value),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError)
          assert.match(err.message, /^invalid setting corsOrigins in /)
          assert.match(err.message, message)
          assert.doesNotMatch(err.message, /\n/)
          return true
        },
      )
    })
  }
})
