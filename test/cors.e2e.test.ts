import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { normalizeOrigin, parseCorsOrigins } from '../broker/cors.ts'
import { ConfigError, loadConfig } from '../config/load.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const APP = 'http://app.test:5173'
const OTHER = 'https://evil.test'
const OPS_KEY = 'k'.repeat(40)

/** The Access-Control-* headers of an answer, by lowercase name. */
const corsHeaders = (res: Response): Record<string, string> =>
  Object.fromEntries([...res.headers].filter(([name]) => name.startsWith('access-control-')))

const preflight = (url: string, origin: string, method = 'POST') =>
  fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': 'authorization,content-type',
    },
  })

const post = (url: string, o: { origin?: string; token?: string; body?: string } = {}) =>
  fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(o.origin ? { origin: o.origin } : {}),
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
    },
    body: o.body ?? '{}',
  })

/** A dev token from the node's /dev/token, asked as curl would (no Origin). */
async function devToken(t: TestNode, userId: string): Promise<string> {
  const res = await post(`${t.httpUrl}/dev/token`, { body: JSON.stringify({ userId }) })
  assert.equal(res.status, 200)
  return ((await res.json()) as { token: string }).token
}

describe('NATTER_CORS_ORIGINS at load', () => {
  const load = (value: string) => loadConfig({ env: { NATTER_CORS_ORIGINS: value } })

  it('takes exact origins, normalized as browsers write them, or * alone', () => {
    assert.deepEqual(
      parseCorsOrigins(' https://App.Example.com:443, http://localhost:5173,,capacitor://localhost '),
      {
        any: false,
        origins: new Set(['https://app.example.com', 'http://localhost:5173', 'capacitor://localhost']),
      },
    )
    assert.deepEqual(parseCorsOrigins('*'), { any: true, origins: new Set() })
    assert.deepEqual(parseCorsOrigins(undefined), { any: false, origins: new Set() })
    assert.equal(normalizeOrigin('http://[::1]:80'), 'http://[::1]')
    assert.equal(
      load('https://app.example.com,http://localhost:5173').settings.corsOrigins,
      'https://app.example.com,http://localhost:5173',
    )
  })

  for (const [value, message] of [
    [
      'https://app.example.com/',
      /"https:\/\/app.example.com\/" is not an origin: expected scheme:\/\/host\[:port\] with no path/,
    ],
    ['https://app.example.com/chat', /is not an origin/],
    ['app.example.com', /"app.example.com" is not an origin/],
    ['https://user@app.example.com', /is not an origin/],
    ['https://app.example.com?x=1', /is not an origin/],
    ['null', /"null" is not an origin/],
    ['http://localhost:0', /is not an origin/],
    ['http://localhost:65536', /is not an origin/],
    ['https://app.example.com,*', /\* \(any origin\) stands alone/],
  ] as const) {
    it(`refuses ${value} with a ConfigError naming the variable`, () => {
      assert.throws(
        () => load(value),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.message.startsWith(`invalid setting NATTER_CORS_ORIGINS=${JSON.stringify(value)}: `) &&
          message.test(err.message),
      )
    })
  }
})

describe('CORS on the HTTP port, origins listed', () => {
  let t: TestNode
  before(async () => {
    // No JWT secret: the embedded default, whose /dev/token exists.
    t = await startTestNode({
      NATTER_JWT_SECRET: '',
      NATTER_CORS_ORIGINS: `${APP},https://second.test`,
      NATTER_ADMIN_KEYS: `ops:${OPS_KEY}`,
      NATTER_LIMIT_HTTP_PER_TOKEN: '3/1m',
    })
  })
  after(() => t?.close())

  it('answers a preflight of /v1/<op> and /dev/token from an allowed origin with 204 and the CORS headers', async () => {
    for (const path of ['/v1/chat.list', '/dev/token']) {
      const res = await preflight(`${t.httpUrl}${path}`, APP)
      assert.equal(res.status, 204, path)
      assert.deepEqual(corsHeaders(res), {
        'access-control-allow-origin': APP,
        'access-control-allow-methods': 'POST',
        'access-control-allow-headers': 'authorization, content-type',
        'access-control-max-age': '600',
      })
      assert.equal(res.headers.get('vary'), 'Origin')
      assert.equal(await res.text(), '')
    }
    // Chromium's Private Network Access preflight gets its answer too.
    const pna = await fetch(`${t.httpUrl}/v1/send`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://second.test',
        'access-control-request-method': 'POST',
        'access-control-request-private-network': 'true',
      },
    })
    assert.equal(pna.status, 204)
    assert.equal(pna.headers.get('access-control-allow-origin'), 'https://second.test')
    assert.equal(pna.headers.get('access-control-allow-private-network'), 'true')
  })

  it('gives an origin not listed no CORS headers: the preflight is answered as any OPTIONS', async () => {
    // 405 from the API, 403 origin_not_allowed from /dev/token's own Origin check.
    for (const [path, status] of [
      ['/v1/chat.list', 405],
      ['/dev/token', 403],
    ] as const) {
      const res = await preflight(`${t.httpUrl}${path}`, OTHER)
      assert.equal(res.status, status, path)
      if (status === 405) assert.equal(res.headers.get('allow'), 'POST')
      assert.deepEqual(corsHeaders(res), {})
      assert.equal(res.headers.get('vary'), 'Origin')
    }
    // Same scheme and host, another port: another origin.
    const port = await preflight(`${t.httpUrl}/v1/chat.list`, 'http://app.test:5174')
    assert.deepEqual(corsHeaders(port), {})
  })

  it('marks an actual call from an allowed origin readable, and answers one from another origin as before, without headers', async () => {
    const token = await devToken(t, 'alice')
    const allowed = await post(`${t.httpUrl}/v1/chat.list`, { origin: APP, token })
    assert.equal(allowed.status, 200)
    assert.deepEqual(await allowed.json(), { result: { chats: [] } })
    assert.deepEqual(corsHeaders(allowed), {
      'access-control-allow-origin': APP,
      'access-control-expose-headers': 'retry-after, www-authenticate',
    })
    assert.equal(allowed.headers.get('vary'), 'Origin')
    assert.equal(allowed.headers.get('access-control-allow-credentials'), null)

    const other = await post(`${t.httpUrl}/v1/chat.list`, { origin: OTHER, token: await devToken(t, 'bob') })
    assert.equal(other.status, 200)
    assert.deepEqual(await other.json(), { result: { chats: [] } })
    assert.deepEqual(corsHeaders(other), {})

    // No Origin at all (curl, a backend): nothing changes.
    const plain = await post(`${t.httpUrl}/v1/chat.list`, { token: await devToken(t, 'carol') })
    assert.equal(plain.status, 200)
    assert.deepEqual(corsHeaders(plain), {})
  })

  it('puts the headers on refusals too: 401, 405, 400, 404 and a 429 with Retry-After', async () => {
    const expect = async (res: Response, status: number, code: string) => {
      assert.equal(res.status, status)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, code)
      assert.equal(res.headers.get('access-control-allow-origin'), APP)
      assert.equal(res.headers.get('access-control-expose-headers'), 'retry-after, www-authenticate')
      assert.equal(res.headers.get('vary'), 'Origin')
    }
    const unauthorized = await post(`${t.httpUrl}/v1/chat.list`, { origin: APP })
    await expect(unauthorized, 401, 'unauthorized')
    assert.match(unauthorized.headers.get('www-authenticate') ?? '', /^Bearer realm="natter"/)
    await expect(
      await post(`${t.httpUrl}/v1/chat.list`, { origin: APP, token: 'not.a.jwt' }),
      401,
      'unauthorized',
    )
    await expect(
      await fetch(`${t.httpUrl}/v1/chat.list`, { headers: { origin: APP } }),
      405,
      'method_not_allowed',
    )

    const token = await devToken(t, 'dave')
    await expect(
      await post(`${t.httpUrl}/v1/chat.get`, { origin: APP, token, body: '{"chatId": 5}' }),
      400,
      'bad_request',
    )
    await expect(
      await post(`${t.httpUrl}/v1/chat.get`, { origin: APP, token, body: '{"chatId": "d_nope"}' }),
      404,
      'chat_not_found',
    )
    // The per-token limit is 3 a minute: the fourth call is refused.
    assert.equal((await post(`${t.httpUrl}/v1/chat.list`, { origin: APP, token })).status, 200)
    const limited = await post(`${t.httpUrl}/v1/chat.list`, { origin: APP, token })
    await expect(limited, 429, 'rate_limited')
    assert.match(limited.headers.get('retry-after') ?? '', /^\d+$/)

    // A dev token with a bad body, from an allowed page.
    await expect(
      await post(`${t.httpUrl}/dev/token`, { origin: APP, body: '{"userId": ""}' }),
      400,
      'bad_request',
    )
  })

  it('gives dev tokens to a listed origin and refuses others (403, no CORS headers)', async () => {
    const allowed = await post(`${t.httpUrl}/dev/token`, { origin: APP, body: '{"userId":"erin"}' })
    assert.equal(allowed.status, 200)
    assert.equal(typeof ((await allowed.json()) as { token: unknown }).token, 'string')
    assert.equal(allowed.headers.get('access-control-allow-origin'), APP)

    const other = await post(`${t.httpUrl}/dev/token`, { origin: OTHER, body: '{"userId":"erin"}' })
    assert.equal(other.status, 403)
    assert.equal(((await other.json()) as { error: { code: string } }).error.code, 'origin_not_allowed')
    assert.deepEqual(corsHeaders(other), {})
  })

  it('never puts CORS headers on the admin API or the web chat’s own files', async () => {
    const admin = await preflight(`${t.httpUrl}/admin/v1/users/alice`, APP, 'GET')
    assert.deepEqual(corsHeaders(admin), {})
    assert.equal(admin.headers.get('vary'), null)
    const call = await fetch(`${t.httpUrl}/admin/v1/users/alice`, {
      headers: { origin: APP, authorization: `Bearer ${OPS_KEY}` },
    })
    assert.equal(call.status, 200)
    assert.deepEqual(corsHeaders(call), {})
    const refused = await fetch(`${t.httpUrl}/admin/v1/users/alice`, { headers: { origin: APP } })
    assert.equal(refused.status, 401)
    assert.deepEqual(corsHeaders(refused), {})

    for (const path of ['/', '/web/config.json']) {
      const page = await fetch(`${t.httpUrl}${path}`, { headers: { origin: APP } })
      // A page of another origin is refused by the web chat's own Origin check.
      assert.equal(page.status, 403, path)
      assert.deepEqual(corsHeaders(page), {})
      const same = await fetch(`${t.httpUrl}${path}`)
      assert.equal(same.status, 200, path)
      assert.deepEqual(corsHeaders(same), {})
    }
  })
})

describe('CORS with *', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode({ NATTER_JWT_SECRET: '', NATTER_CORS_ORIGINS: '*' })
  })
  after(() => t?.close())

  it('opens /v1/<op> to any origin, echoed, never with credentials', async () => {
    const pre = await preflight(`${t.httpUrl}/v1/chat.list`, OTHER)
    assert.equal(pre.status, 204)
    assert.equal(pre.headers.get('access-control-allow-origin'), OTHER)
    assert.equal(pre.headers.get('access-control-allow-credentials'), null)
    const res = await post(`${t.httpUrl}/v1/chat.list`, { origin: OTHER, token: await devToken(t, 'alice') })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('access-control-allow-origin'), OTHER)
  })

  it('does not open /dev/token: any page the developer opens would get tokens', async () => {
    const pre = await preflight(`${t.httpUrl}/dev/token`, OTHER)
    assert.equal(pre.status, 403)
    assert.deepEqual(corsHeaders(pre), {})
    const res = await post(`${t.httpUrl}/dev/token`, { origin: OTHER, body: '{"userId":"alice"}' })
    assert.equal(res.status, 403)
    assert.deepEqual(corsHeaders(res), {})
  })
})

describe('CORS unset (the default)', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode({ NATTER_JWT_SECRET: '' })
  })
  after(() => t?.close())

  it('sends no CORS headers and no Vary anywhere, on the embedded default too', async () => {
    const pre = await preflight(`${t.httpUrl}/v1/chat.list`, APP)
    assert.equal(pre.status, 405)
    assert.deepEqual(corsHeaders(pre), {})
    assert.equal(pre.headers.get('vary'), null)
    const res = await post(`${t.httpUrl}/v1/chat.list`, { origin: APP, token: await devToken(t, 'alice') })
    assert.equal(res.status, 200)
    assert.deepEqual(corsHeaders(res), {})
    const token = await post(`${t.httpUrl}/dev/token`, {
      origin: 'http://localhost:5173',
      body: '{"userId":"a"}',
    })
    assert.equal(token.status, 403)
    assert.deepEqual(corsHeaders(token), {})
  })
})
