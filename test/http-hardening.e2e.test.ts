import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import pino from 'pino'
import { Registry } from 'prom-client'
import { createHttpHandler } from '../broker/http.ts'
import { createLogger } from '../broker/log.ts'
import { type MediaServer, startMediaServer } from '../broker/media-server.ts'
import { loadConfig } from '../config/load.ts'
import { type ErrorCode, errorCatalogue } from '../services/requests/envelope.ts'
import { MAX_BODY_BYTES, MAX_JSON_DEPTH } from '../services/requests/http-api.ts'
import { connackCode } from './helpers/clients.ts'
import { type HttpAnswer, httpRequest, rawHttp } from './helpers/http.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { localNodeEnv } from './helpers/processes.ts'

const BAD_USERNAME_OR_PASSWORD = 4
const DEEP = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
const UNLIMITED = { NATTER_LIMIT_HTTP_PER_TOKEN: 'off', NATTER_LIMIT_REQUESTS_PER_USER: 'off' }

/** A token signed with the node's secret whose claims are exactly these (sub of any type). */
const signed = (secret: Uint8Array, claims: Record<string, unknown>) =>
  new SignJWT({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(secret)

/** An error answer: its code is in the catalogue and comes with the catalogue's status. */
function assertCatalogued(a: HttpAnswer, what: string): void {
  const code = (a.json as { error?: { code?: string } } | undefined)?.error?.code
  if (a.status < 400 || code === undefined) return
  assert.ok(code in errorCatalogue, `${what}: code ${code} is not in the error catalogue`)
  const entry = errorCatalogue[code as ErrorCode]
  assert.equal(
    a.status,
    entry.status,
    `${what}: ${code} answered ${a.status}, the catalogue says ${entry.status}`,
  )
  assert.ok(
    (entry.over as readonly string[]).includes('http'),
    `${what}: ${code} is not listed as sent over HTTP`,
  )
}

describe('the HTTP port answers bad input with 4xx, never 500', () => {
  let t: TestNode
  let dev: TestNode
  let media: MediaServer
  let mediaDir: string
  let token: string
  before(async () => {
    // t has a configured secret (no dev tokens); dev is the embedded default (dev tokens on).
    // No per-token limit: the sweep's thousands of calls reach the routes, not a 429.
    ;[t, dev] = await Promise.all([
      startTestNode(UNLIMITED),
      startTestNode({ ...UNLIMITED, NATTER_JWT_SECRET: '' }),
    ])
    token = await t.token('alice')
    mediaDir = mkdtempSync(join(tmpdir(), 'natter-media-'))
    const { settings } = loadConfig({
      env: {
        ...localNodeEnv(mediaDir, Buffer.from(t.secret).toString('utf8')),
        NATTER_LOG_LEVEL: process.env.NATTER_TEST_LOG_LEVEL ?? 'silent',
        ...UNLIMITED,
      },
    })
    media = await startMediaServer(settings, createLogger(settings.logLevel))
  })
  after(async () => {
    await media?.close()
    await Promise.all([t?.close(), dev?.close()])
    if (mediaDir) rmSync(mediaDir, { recursive: true, force: true })
  })

  const api = (op: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    httpRequest(`${t.httpUrl}/v1/${op}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, ...headers },
      body,
    })

  it('refuses a body nested 100,000 deep with 400 bad_request, and one over the size limit with 413', async () => {
    const deep = await api('chat.get', DEEP)
    assert.equal(deep.status, 400)
    assert.deepEqual((deep.json as { error: { code: string } }).error.code, 'bad_request')
    assert.match(deep.text, new RegExp(`over ${MAX_JSON_DEPTH} deep`))
    // Inside a string, brackets are text, not nesting.
    const text = await api('search', JSON.stringify({ chatId: 'g_x', query: '['.repeat(150) }))
    assert.equal(text.status, 404, text.text)
    const nested = { chatId: 'g_x', members: [[[[[[['x']]]]]]] }
    assert.equal((await api('chat.add', JSON.stringify(nested))).status, 400)
    const big = await api('chat.get', Buffer.alloc(MAX_BODY_BYTES + 1, 0x20))
    assert.equal(big.status, 413)
    assert.equal((big.json as { error: { code: string } }).error.code, 'too_large')
    // Without a Content-Length, the reading stops at the limit; the client still gets its 413.
    const chunked = await api('chat.get', Buffer.alloc(2 * MAX_BODY_BYTES, 0x20), {
      'transfer-encoding': 'chunked',
    })
    assert.equal(chunked.status, 413)
    // No body at all is {} (whoami takes no params; chat.get needs a chatId).
    assert.equal((await api('whoami', '')).status, 200)
    assert.equal((await api('chat.get', '')).status, 400)
    // The node is fine, and still answers this user.
    const who = await api('whoami', '{}')
    assert.equal(who.status, 200)
  })

  it('answers a malformed percent-encoding in any path with 4xx', async () => {
    for (const path of [
      '/media/o/%E0%A4%A',
      '/media/o/%',
      '/media/o/%ZZ',
      '/v1/%E0%A4%A',
      '/%E0%A4%A',
      '/%',
    ]) {
      const a = await httpRequest(`${t.httpUrl}${path}`)
      assert.ok(a.status >= 400 && a.status < 500, `${path}: ${a.status}`)
      assertCatalogued(a, path)
    }
    const m = await httpRequest(`http://127.0.0.1:${media.port}/media/o/%E0%A4%A`)
    assert.equal(m.status, 404)
  })

  it('survives request targets that do not parse as URLs, on the HTTP and the WebSocket port', async () => {
    const targets = ['//', '//@', '///x', '//a%20b', '*', 'http://[', 'http://x:99999/', 'x']
    for (const port of [t.node.ports.http, media.port]) {
      for (const target of targets) {
        const status = await rawHttp(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
        assert.ok(status >= 400 && status < 500, `${port} ${target}: ${status}`)
      }
      // The absolute form is a valid target (RFC 9112 §3.2.2).
      assert.equal(
        await rawHttp(port, `GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
        200,
      )
    }
    for (const target of ['//', '//@', 'http://[']) {
      const upgrade = [
        `GET ${target} HTTP/1.1`,
        'Host: 127.0.0.1',
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Protocol: mqtt',
        '',
        '',
      ].join('\r\n')
      const status = await rawHttp(t.node.ports.ws, upgrade)
      assert.ok(status === 0 || (status >= 400 && status < 500), `ws ${target}: ${status}`)
    }
    assert.equal((await fetch(`${t.httpUrl}/healthz`)).status, 200)
    // MQTT over WebSocket still works after them.
    assert.equal(await connackCode(t.wsUrl, { clientId: 'alice/ws', password: token }), 0)
  })

  it('answers broken HTTP framing with 4xx or a closed connection', async () => {
    const port = t.node.ports.http
    const cases: Array<[string, string]> = [
      ['no Host in HTTP/1.1', 'GET /healthz HTTP/1.1\r\n\r\n'],
      [
        'a header of 64 KiB',
        `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: ${'a'.repeat(65_536)}\r\n\r\n`,
      ],
      ['a bad Content-Length', 'POST /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n'],
      [
        'two Content-Lengths',
        'POST /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}',
      ],
      [
        'a broken chunk',
        `POST /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
      ],
      ['a garbage request line', 'HELLO\r\n\r\n'],
      ['a header without a colon', 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nnonsense\r\n\r\n'],
    ]
    for (const [what, bytes] of cases) {
      const status = await rawHttp(port, bytes)
      assert.ok(status === 0 || (status >= 400 && status < 500), `${what}: ${status}`)
    }
    assert.equal((await fetch(`${t.httpUrl}/healthz`)).status, 200)
  })

  it('sweeps methods, bodies, content types and credentials across every route without a 5xx', async () => {
    const numericSub = await signed(t.secret, { sub: 12345 })
    const paths = [
      '/',
      '/index.html',
      '/style.css',
      '/web/config.json',
      '/dev/token',
      '/healthz',
      '/readyz',
      '/metrics',
      '/v1/whoami',
      '/v1/chat.get',
      '/v1/chat.create',
      '/v1/media.begin',
      '/v1/push.register',
      '/v1/no.such.op',
      '/v1/',
      '/v1/CHAT.GET',
      '/media/o/m/x',
      '/media/o/',
      '/media/o/..%2F..%2Fetc%2Fpasswd',
      '/media/o/m/x?sig=%E0%A4%A&exp=1e999&size=-1',
      '/nope',
      '/%00',
      `/${'a'.repeat(4000)}`,
    ]
    const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']
    const bearer = { authorization: `Bearer ${token}` }
    const variants: Array<{ name: string; headers: Record<string, string>; body?: string | Buffer }> = [
      { name: 'nothing', headers: {} },
      { name: 'not JSON', headers: { ...bearer, 'content-type': 'text/plain' }, body: 'not json' },
      { name: 'nested 100,000 deep', headers: { ...bearer, 'content-type': 'application/json' }, body: DEEP },
      {
        name: 'not UTF-8',
        headers: { ...bearer, 'content-type': 'application/json' },
        body: Buffer.from([0xff, 0xfe, 0x7b]),
      },
      { name: 'an array', headers: bearer, body: '[]' },
      { name: 'null', headers: bearer, body: 'null' },
      { name: 'a prototype key', headers: bearer, body: '{"__proto__":{"admin":true},"constructor":{}}' },
      {
        name: 'multipart',
        headers: { ...bearer, 'content-type': 'multipart/form-data; boundary=x' },
        body: '--x--',
      },
      { name: 'a garbage token', headers: { authorization: 'Bearer not.a.jwt' }, body: '{}' },
      { name: 'Basic auth', headers: { authorization: 'Basic YWxpY2U6eA==' }, body: '{}' },
      { name: 'a numeric sub', headers: { authorization: `Bearer ${numericSub}` }, body: '{}' },
      { name: 'a foreign origin', headers: { ...bearer, origin: 'http://evil.example' }, body: '{}' },
      { name: 'a foreign host', headers: { ...bearer, host: 'evil.example' }, body: '{}' },
      {
        name: 'a content type of JSON in latin1',
        headers: { ...bearer, 'content-type': 'application/json; charset=latin1' },
        body: '{}',
      },
    ]
    const servers = [
      { name: 'node', url: t.httpUrl },
      { name: 'embedded default', url: dev.httpUrl },
      { name: 'media service', url: `http://127.0.0.1:${media.port}` },
    ]
    let requests = 0
    const statuses = new Map<number, number>()
    for (const server of servers) {
      for (const path of paths) {
        for (const method of methods) {
          for (const v of variants) {
            if ((method === 'GET' || method === 'HEAD') && v.body !== undefined && v.name !== 'nothing') {
              // Bodies on GET are legal but pointless; their headers are still tried.
              if (v.name !== 'a foreign host' && v.name !== 'a garbage token') continue
            }
            const what = `${server.name} ${method} ${path.slice(0, 40)} with ${v.name}`
            const a = await httpRequest(`${server.url}${path}`, {
              method,
              headers: v.headers,
              ...(method === 'GET' || method === 'HEAD' ? {} : { body: v.body ?? '' }),
            }).catch((err: Error) => {
              throw new Error(`${what}: ${err.message}`)
            })
            requests++
            statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1)
            assert.ok(
              a.status < 500 || (path === '/readyz' && a.status === 503),
              `${what}: ${a.status} ${a.text}`,
            )
            assertCatalogued(a, what)
          }
        }
      }
    }
    assert.ok(requests > 2000, `${requests} requests`)
    assert.equal(statuses.get(429), undefined, 'no rate limit in the way')
    for (const server of servers)
      assert.equal((await fetch(`${server.url}/healthz`)).status, 200, server.name)
  })

  it('answers a route that throws unexpectedly with a logged 500 internal, and keeps serving', async () => {
    const lines: Array<{ msg?: string; path?: string; err?: { message?: string } }> = []
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString('utf8')))
          done()
        },
      }),
    )
    const server: Server = createServer(
      createHttpHandler({
        isReady: () => true,
        api: async () => {
          throw new TypeError('a bug in an operation')
        },
        log,
        metrics: new Registry(),
      }),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const res = await fetch(`${url}/v1/whoami`, { method: 'POST', body: '{}' })
      assert.equal(res.status, 500)
      assert.deepEqual(await res.json(), {
        error: { code: 'internal', message: 'the request failed on the server' },
      })
      const logged = lines.find((l) => l.msg === 'http request failed')
      assert.equal(logged?.path, '/v1/whoami')
      assert.equal(logged?.err?.message, 'a bug in an operation')
      assert.equal((await fetch(`${url}/healthz`)).status, 200)
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})

describe('a token whose sub is not a string is refused everywhere', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode()
  })
  after(() => t.close())

  const subs: unknown[] = [12345, 1, true, null, ['alice'], { id: 'alice' }, '', 'al/ice']

  it('over HTTP: 401 unauthorized, for whoami and chat.create', async () => {
    for (const sub of subs) {
      const token = await signed(t.secret, { sub })
      for (const op of ['whoami', 'chat.create']) {
        const res = await fetch(`${t.httpUrl}/v1/${op}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
          body: op === 'whoami' ? '{}' : '{"name":"x","members":["bob"]}',
        })
        assert.equal(res.status, 401, `${JSON.stringify(sub)} ${op}`)
        const body = (await res.json()) as { error: { code: string } }
        assert.equal(body.error.code, 'unauthorized')
        assert.match(res.headers.get('www-authenticate') ?? '', /invalid_token/)
      }
    }
    // A string sub still works.
    const ok = await fetch(`${t.httpUrl}/v1/whoami`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await signed(t.secret, { sub: '12345' })}` },
    })
    assert.equal(ok.status, 200)
    assert.equal(((await ok.json()) as { result: { userId: unknown } }).result.userId, '12345')
  })

  it('over MQTT (TCP and WebSocket): CONNACK 4', async () => {
    for (const url of [t.mqttUrl, t.wsUrl]) {
      for (const sub of [12345, 1, true]) {
        const password = await signed(t.secret, { sub })
        const code = await connackCode(url, { clientId: `${String(sub)}/phone`, password })
        assert.equal(code, BAD_USERNAME_OR_PASSWORD, `${url} sub ${JSON.stringify(sub)}`)
      }
    }
    const password = await signed(t.secret, { sub: '12345' })
    assert.equal(await connackCode(t.mqttUrl, { clientId: '12345/phone', password }), 0)
  })
})

describe('dev tokens and the web chat check Host and Origin (DNS rebinding)', () => {
  let dev: TestNode
  let pub: TestNode
  let port: number
  before(async () => {
    ;[dev, pub] = await Promise.all([
      startTestNode({ NATTER_JWT_SECRET: '' }),
      startTestNode({ NATTER_JWT_SECRET: '', NATTER_PUBLIC_URL: 'https://chat.example.test' }),
    ])
    port = dev.node.ports.http
  })
  after(() => Promise.all([dev?.close(), pub?.close()]))

  const devToken = (headers: Record<string, string>, url = dev.httpUrl) =>
    httpRequest(`${url}/dev/token`, { method: 'POST', headers, body: '{"userId":"mallory"}' })
  const codeOf = (a: HttpAnswer) => (a.json as { error?: { code?: string } }).error?.code

  it('refuses a rebound host name with 421 and a foreign origin with 403', async () => {
    const rebound = await devToken({ host: `evil.example:${port}`, origin: `http://evil.example:${port}` })
    assert.equal(rebound.status, 421)
    assert.equal(codeOf(rebound), 'host_not_allowed')
    assert.equal((rebound.json as { token?: string }).token, undefined)
    for (const host of [
      'evil.example',
      `localhost.evil.example:${port}`,
      `evil.example@127.0.0.1:${port}`,
      `127.0.0.1:${port}/x`,
    ]) {
      const a = await devToken({ host })
      assert.equal(a.status, 421, JSON.stringify(host))
    }
    for (const origin of [
      'http://evil.example',
      `http://evil.example:${port}`,
      'null',
      `http://localhost:${port + 1}`,
      'file://',
    ]) {
      const a = await devToken({ host: `127.0.0.1:${port}`, origin })
      assert.equal(a.status, 403, origin)
      assert.equal(codeOf(a), 'origin_not_allowed')
    }
    // fetch (which sets Host itself) from a page of another origin.
    const res = await fetch(`${dev.httpUrl}/dev/token`, {
      method: 'POST',
      headers: { origin: 'http://evil.example' },
      body: '{"userId":"mallory"}',
    })
    assert.equal(res.status, 403)
  })

  it('gives tokens to this machine under its own names, same-origin or without Origin', async () => {
    const cases: Array<Record<string, string>> = [
      { host: `127.0.0.1:${port}` },
      { host: `localhost:${port}`, origin: `http://localhost:${port}` },
      { host: `[::1]:${port}`, origin: `http://[::1]:${port}` },
      { host: `LOCALHOST:${port}` },
    ]
    for (const headers of cases) {
      const a = await devToken(headers)
      assert.equal(a.status, 200, JSON.stringify(headers))
      assert.match((a.json as { token: string }).token, /^ey/)
    }
    const res = await fetch(`${dev.httpUrl}/dev/token`, {
      method: 'POST',
      headers: { origin: dev.httpUrl },
      body: '{"userId":"alice"}',
    })
    assert.equal(res.status, 200)
  })

  it('serves the web chat only under its own names', async () => {
    for (const path of ['/', '/index.html', '/style.css', '/web/config.json']) {
      const evil = await httpRequest(`${dev.httpUrl}${path}`, { headers: { host: `evil.example:${port}` } })
      assert.equal(evil.status, 421, path)
      assert.equal(codeOf(evil), 'host_not_allowed')
      const own = await httpRequest(`${dev.httpUrl}${path}`, { headers: { host: `localhost:${port}` } })
      assert.equal(own.status, 200, path)
    }
    const script = await httpRequest(`${dev.httpUrl}/app.js`, { headers: { host: `evil.example:${port}` } })
    assert.equal(script.status, 421)
    const config = await httpRequest(`${dev.httpUrl}/web/config.json`, {
      headers: { host: `localhost:${port}` },
    })
    assert.match((config.json as { wsUrl: string }).wsUrl, /^ws:\/\/localhost:\d+\/mqtt$/)
  })

  it('adds the host of NATTER_PUBLIC_URL', async () => {
    const p = pub.node.ports.http
    const own = await httpRequest(`${pub.httpUrl}/web/config.json`, {
      headers: { host: 'chat.example.test', origin: 'https://chat.example.test' },
    })
    assert.equal(own.status, 200)
    const token = await devToken(
      { host: 'chat.example.test', origin: 'https://chat.example.test' },
      pub.httpUrl,
    )
    assert.equal(token.status, 200)
    const other = await httpRequest(`${pub.httpUrl}/web/config.json`, {
      headers: { host: `chat.example.test.evil:${p}` },
    })
    assert.equal(other.status, 421)
  })
})
