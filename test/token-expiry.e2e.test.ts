import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import type { MqttClient } from 'mqtt'
import { createClient, type NatterClient } from '../client-sdk/src/index.ts'
import { connackCode, connectClient, subscribe } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const BAD_USERNAME_OR_PASSWORD = 4
const NOTICE_SECONDS = 3

/** A token with exactly this exp and nbf (seconds since the epoch). */
const tokenFor = (t: TestNode, userId: string, claims: { exp: number; nbf?: number }) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).sign(t.secret)

const nowSeconds = () => Math.floor(Date.now() / 1000)

/** Resolves with the parsed next message on a topic, and when it came. */
function nextNotice(client: MqttClient, topic: string, ms: number) {
  return new Promise<{ at: number; body: Record<string, unknown> }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no notice on ${topic} within ${ms} ms`)), ms)
    client.on('message', (t, payload) => {
      if (t !== topic) return
      clearTimeout(timer)
      resolve({ at: Date.now(), body: JSON.parse(payload.toString('utf8')) })
    })
  })
}

describe('token expiry: refused at CONNECT from exp on, a notice before the close, the same code over HTTP', () => {
  let t: TestNode
  let late: TestNode
  before(async () => {
    ;[t, late] = await Promise.all([
      // The default clock tolerance (5 s), so a token in its last tolerated seconds is tried.
      startTestNode({ NATTER_TOKEN_EXPIRY_NOTICE_SECONDS: String(NOTICE_SECONDS) }),
      startTestNode(),
    ])
  })
  after(() => Promise.all([t?.close(), late?.close()]))

  it('refuses a token just past its exp (inside the clock tolerance) with CONNACK 4 at once, on TCP and WebSocket', async () => {
    const password = await tokenFor(t, 'alice', { exp: nowSeconds() - 1 })
    for (const url of [t.mqttUrl, t.wsUrl]) {
      const started = Date.now()
      assert.equal(
        await connackCode(url, { clientId: 'alice/phone', password }),
        BAD_USERNAME_OR_PASSWORD,
        url,
      )
      assert.ok(Date.now() - started < 2000, 'a CONNACK, not a silent close or a timeout')
    }
  })

  it('answers an expired token over HTTP with 401 token_expired, inside the tolerance too', async () => {
    for (const exp of [nowSeconds() - 1, nowSeconds() - 3600]) {
      const res = await fetch(`${t.httpUrl}/v1/whoami`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await tokenFor(t, 'alice', { exp })}` },
      })
      assert.equal(res.status, 401)
      assert.deepEqual(((await res.json()) as { error: { code: string } }).error.code, 'token_expired')
      assert.match(
        res.headers.get('www-authenticate') ?? '',
        /error="invalid_token", error_description="token expired"/,
      )
    }
  })

  it('tolerates an issuer clock ahead of the server on nbf only, the same on MQTT and HTTP', async () => {
    const exp = nowSeconds() + 3600
    const soon = await tokenFor(t, 'alice', { exp, nbf: nowSeconds() + 3 })
    assert.equal(await connackCode(t.mqttUrl, { clientId: 'alice/phone', password: soon }), 0)
    const ok = await fetch(`${t.httpUrl}/v1/whoami`, {
      method: 'POST',
      headers: { authorization: `Bearer ${soon}` },
    })
    assert.equal(ok.status, 200)
    const future = await tokenFor(t, 'alice', { exp, nbf: nowSeconds() + 60 })
    assert.equal(
      await connackCode(t.mqttUrl, { clientId: 'alice/phone', password: future }),
      BAD_USERNAME_OR_PASSWORD,
    )
    const refused = await fetch(`${t.httpUrl}/v1/whoami`, {
      method: 'POST',
      headers: { authorization: `Bearer ${future}` },
    })
    assert.equal(refused.status, 401)
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'unauthorized')
  })

  for (const transport of ['tcp', 'ws'] as const) {
    it(`sends token_expired ${NOTICE_SECONDS} s before exp, closes at exp, and refuses the same token after with CONNACK 4 (${transport})`, async () => {
      const url = transport === 'tcp' ? t.mqttUrl : t.wsUrl
      const exp = nowSeconds() + NOTICE_SECONDS + 2
      const password = await tokenFor(t, 'alice', { exp })
      const client = await connectClient(url, { clientId: 'alice/phone', password })
      const errTopic = 'd/alice/phone/err'
      await subscribe(client, [errTopic])
      const notice = nextNotice(client, errTopic, 10_000)
      const closedAt = once(client as unknown as NodeJS.EventEmitter, 'close').then(() => Date.now())
      const { at, body } = await notice
      assert.equal(body.code, 'token_expired')
      assert.equal(body.expiresAt, exp * 1000, 'ms since the epoch, as every time on the wire')
      assert.equal(body.topic, undefined)
      assert.equal(typeof body.message, 'string')
      // Within the ticker's second of exp - NOTICE_SECONDS.
      assert.ok(at >= exp * 1000 - NOTICE_SECONDS * 1000 - 50, `notice ${exp * 1000 - at} ms before exp`)
      assert.ok(at <= exp * 1000 - NOTICE_SECONDS * 1000 + 1100, `notice ${exp * 1000 - at} ms before exp`)
      const closed = await closedAt
      assert.ok(closed >= exp * 1000 - 50, `closed ${exp * 1000 - closed} ms before exp`)
      assert.ok(closed <= exp * 1000 + 1500, `closed ${closed - exp * 1000} ms after exp`)
      client.end(true)
      // Reconnecting with the same token at once: a CONNACK refusal, not a silent close.
      const started = Date.now()
      assert.equal(await connackCode(url, { clientId: 'alice/phone', password }), BAD_USERNAME_OR_PASSWORD)
      assert.ok(Date.now() - started < 2000)
    })
  }

  it('sends the notice 1-2 s after CONNECT to a device that connects with less than the notice time left', async () => {
    // late: the default notice time (30 s), so a token of 5 s is inside it from the start.
    const exp = nowSeconds() + 5
    const client = await connectClient(late.mqttUrl, {
      clientId: 'bob/phone',
      password: await tokenFor(late, 'bob', { exp }),
    })
    const connectedAt = Date.now()
    const notice = nextNotice(client, 'd/bob/phone/err', 10_000)
    await subscribe(client, ['d/bob/phone/err'])
    const { at, body } = await notice
    assert.equal(body.code, 'token_expired')
    assert.ok(at - connectedAt < 3000, `${at - connectedAt} ms after CONNECT`)
    assert.ok(at < exp * 1000, 'before the close')
    client.end(true)
  })

  it('the SDK reconnects with a fresh token on the notice, before the server closes on it', async () => {
    // refreshBeforeMs 0: the SDK's own timer would refresh only at exp (as with a device clock
    // running late), so a reconnect before exp is the notice's doing.
    const fetched: Array<{ at: number; exp: number }> = []
    const errors: string[] = []
    let client: NatterClient | undefined
    try {
      client = await createClient({
        url: t.mqttUrl,
        userId: 'carol',
        deviceId: 'phone',
        refreshBeforeMs: 0,
        reconnect: { minMs: 50, maxMs: 200 },
        getToken: async () => {
          const exp = nowSeconds() + (fetched.length === 0 ? NOTICE_SECONDS + 3 : 3600)
          fetched.push({ at: Date.now(), exp })
          return tokenFor(t, 'carol', { exp })
        },
      })
      const c = client
      c.on('error', (e) => errors.push(e.code))
      const firstExp = (fetched[0]?.exp ?? 0) * 1000
      const reconnected = new Promise<number>((resolve) => {
        const off = c.on('state', (s) => {
          if (s === 'connected' && fetched.length >= 2) {
            off()
            resolve(Date.now())
          }
        })
      })
      const at = await reconnected
      assert.equal(fetched.length, 2)
      assert.ok((fetched[1]?.at ?? Infinity) < firstExp - 1000, 'the fresh token was fetched before exp')
      assert.ok(at < firstExp, `connected again ${firstExp - at} ms before the first token's exp`)
      assert.deepEqual(errors, [], 'the notice is handled, not surfaced')
      // The new connection outlives the first token.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstExp + 1500 - Date.now())))
      assert.equal(c.state, 'connected')
      assert.equal(fetched.length, 2)
      const who = await c.request<{ tokenExpiresAt: number }>('whoami')
      assert.equal(who.tokenExpiresAt, (fetched[1]?.exp ?? 0) * 1000)
    } finally {
      await client?.close()
    }
  })
})
