import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import type { NatterErrorCode } from '../client-sdk/src/request.ts'
import {
  type ErrorCode,
  errorCatalogue,
  errorCodes,
  errorNoticeSchema,
  httpErrorCodes,
  httpErrorSchema,
  type MqttErrorCode,
  mqttErrorCodes,
  replySchema,
} from '../services/requests/envelope.ts'

const ROOT = new URL('../', import.meta.url)
const read = (path: string) => readFileSync(new URL(path, ROOT), 'utf8')

/** Every TypeScript source file the server runs (tests and the SDK excluded). */
const serverSources = () =>
  ['broker', 'services', 'cli', 'config'].flatMap((dir) =>
    readdirSync(new URL(dir, ROOT), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `${dir}/${f}`),
  )

// Where a literal error code is written: an object's `code`, and the constructors and helpers
// that take one (NatterError, HttpError, the disk store's UrlError, sendError).
const EMITTED = [
  /\bcode:\s*'([a-z_]+)'/g,
  /\bnew (?:NatterError|HttpError)\(\s*'([a-z_]+)'/g,
  /\bnew UrlError\(\s*\d+,\s*'([a-z_]+)'/g,
  /\bsendError\([^,()]+,\s*'([a-z_]+)'/g,
]

/** `code` values that never reach a client, with where they stay. */
const INTERNAL: Record<string, string> = {
  // broker/node.ts: a send refused while the node stops; the client gets no PUBACK, no code.
  shutting_down: 'internal marker',
  // config/schema.ts: zod issue codes of settings validation.
  custom: 'zod issue code',
}

// The SDK's error type names every code that can reach it over MQTT (a compile-time check: tsc
// fails here when the catalogue gains an MQTT code the SDK does not know).
const sdkKnows = (code: MqttErrorCode): NatterErrorCode => code
void sdkKnows

describe('the error catalogue', () => {
  it('lists every error code a server source file emits', () => {
    const emitted = new Map<string, string>()
    for (const file of serverSources()) {
      const text = read(file)
      for (const pattern of EMITTED) {
        for (const m of text.matchAll(pattern)) if (m[1]) emitted.set(m[1], file)
      }
    }
    assert.ok(emitted.size > 10, `only ${emitted.size} codes found: the scan is broken`)
    for (const [code, file] of emitted) {
      if (code in INTERNAL) continue
      assert.ok(code in errorCatalogue, `${file} emits ${code}, which the error catalogue lacks`)
    }
  })

  it('lists no code that nothing can emit', () => {
    const sources = serverSources()
      .filter((f) => f !== 'services/requests/envelope.ts')
      .map(read)
      .join('\n')
    for (const code of errorCodes) {
      assert.ok(sources.includes(`'${code}'`), `${code} is in the catalogue but no source file names it`)
    }
  })

  it('is the table of docs/protocol.md#errors, with the same HTTP statuses and transports', () => {
    const protocol = read('docs/protocol.md')
    const section = protocol.slice(
      protocol.indexOf('\n## Errors\n'),
      protocol.indexOf('\n## Limits and safety'),
    )
    const rows = [...section.matchAll(/^\| `([a-z_]+)` +\| (\d{3}) +\| ([A-Z, ]+?) +\|/gm)].map((m) => ({
      code: m[1] as string,
      status: Number(m[2]),
      over: (m[3] as string).split(', ').map((t) => t.toLowerCase()),
    }))
    assert.deepEqual(
      rows.map((r) => r.code),
      errorCodes,
      'the table lists the catalogue, in its order',
    )
    for (const row of rows) {
      const entry = errorCatalogue[row.code as ErrorCode]
      assert.equal(row.status, entry.status, `${row.code}: HTTP status`)
      assert.deepEqual(row.over, [...entry.over], `${row.code}: transports`)
    }
  })

  it('is what the schemas accept: MQTT codes in replies and notices, HTTP codes in HTTP error bodies', () => {
    for (const code of errorCodes) {
      const overMqtt = (mqttErrorCodes as string[]).includes(code)
      const overHttp = (httpErrorCodes as string[]).includes(code)
      assert.ok(overMqtt || overHttp, `${code} goes nowhere`)
      assert.equal(errorNoticeSchema.safeParse({ code, message: 'm' }).success, overMqtt, `notice ${code}`)
      assert.equal(
        replySchema.safeParse({ id: 'r', ok: false, error: { code, message: 'm' } }).success,
        overMqtt,
        `reply ${code}`,
      )
      assert.equal(
        httpErrorSchema.safeParse({ error: { code, message: 'm' } }).success,
        overHttp,
        `HTTP ${code}`,
      )
    }
    const schemas = read('docs/schemas.md')
    for (const code of errorCodes) assert.ok(schemas.includes(`"${code}"`), `docs/schemas.md lacks ${code}`)
  })

  it('is known to the client SDK, for every code that reaches it over MQTT', () => {
    const sdk = read('client-sdk/src/request.ts')
    for (const code of mqttErrorCodes) assert.ok(sdk.includes(`| '${code}'`), `NatterErrorCode lacks ${code}`)
  })
})
