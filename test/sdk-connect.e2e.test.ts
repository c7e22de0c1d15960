import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect, createClient, NatterRequestError } from '../client-sdk/src/index.ts'
import { freePort } from './helpers/free-port.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/**
 * A TCP port that accepts connections and never answers: a firewall that swallows, a hung
 * server. It counts the connections it got, and holds them open.
 */
async function silentPort(): Promise<{ port: number; accepted: Socket[]; server: Server }> {
  const accepted: Socket[] = []
  const server = createServer((s) => {
    accepted.push(s)
    // Read and drop what comes (a paused socket would never see the client's FIN).
    s.resume()
    s.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as { port: number }).port, accepted, server }
}

const failsWith = (code: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof NatterRequestError, `a NatterRequestError, got ${String(err)}`)
  assert.equal(err.code, code)
  assert.match(err.message, message)
  return true
}

/** A fast reconnect backoff: a reconnect loop left running would show within the wait below. */
const FAST = { reconnect: { minMs: 20, maxMs: 20 } }
/** Long enough for several reconnects at FAST's pace (or mqtt.js' own 1 s period) had any started. */
const NO_RETRY_WINDOW_MS = 1200

describe('a first connect that cannot succeed fails, and stops', () => {
  let t: TestNode
  let silent: Awaited<ReturnType<typeof silentPort>>
  before(async () => {
    t = await startTestNode()
    silent = await silentPort()
  })
  after(async () => {
    for (const s of silent?.accepted ?? []) s.destroy()
    silent?.server.close()
    await t?.close()
  })

  it('createClient: a closed port fails at once with connect_failed (mqtt:// and ws://)', async () => {
    const port = await freePort()
    for (const url of [`mqtt://127.0.0.1:${port}`, `ws://127.0.0.1:${port}/mqtt`]) {
      const started = Date.now()
      await assert.rejects(
        createClient({ url, userId: 'alice', deviceId: 'd1', getToken: () => t.token('alice'), ...FAST }),
        failsWith('connect_failed', /ECONNREFUSED/),
      )
      assert.ok(Date.now() - started < 2000, `${url}: failed in ${Date.now() - started} ms`)
    }
  })

  it('createClient: a port that accepts and never answers fails with connect_timeout, and is not tried again', async () => {
    const before = silent.accepted.length
    const started = Date.now()
    await assert.rejects(
      createClient({
        url: `mqtt://127.0.0.1:${silent.port}`,
        userId: 'alice',
        deviceId: 'd2',
        getToken: () => t.token('alice'),
        connectTimeoutMs: 300,
        ...FAST,
      }),
      failsWith(
        'connect_timeout',
        new RegExp(`no MQTT answer from mqtt://127.0.0.1:${silent.port} within 300 ms`),
      ),
    )
    const took = Date.now() - started
    assert.ok(took >= 300 && took < 1500, `timed out after ${took} ms`)
    assert.equal(silent.accepted.length, before + 1)
    // The client closed its socket, and no reconnect follows.
    const socket = silent.accepted.at(-1) as Socket
    if (!socket.closed) await once(socket, 'close')
    await sleep(NO_RETRY_WINDOW_MS)
    assert.equal(silent.accepted.length, before + 1, 'no connection after the failure')
  })

  it('createClient: an HTTP port that is no MQTT endpoint fails with connect_failed', async () => {
    await assert.rejects(
      createClient({
        url: `ws://127.0.0.1:${t.node.ports.http}/mqtt`,
        userId: 'alice',
        deviceId: 'd3',
        getToken: () => t.token('alice'),
        connectTimeoutMs: 5000,
        ...FAST,
      }),
      (err: unknown) => err instanceof NatterRequestError && err.code === 'connect_failed',
    )
  })

  it('createClient: the HTTP port given as an mqtt:// URL is named as no MQTT endpoint', async () => {
    const url = `mqtt://127.0.0.1:${t.node.ports.http}`
    await assert.rejects(
      createClient({ url, userId: 'alice', deviceId: 'd8', getToken: () => t.token('alice'), ...FAST }),
      (err: unknown) =>
        failsWith(
          'connect_failed',
          /^mqtt:\/\/127\.0\.0\.1:\d+ answered something that is not MQTT \(Invalid header/,
        )(err),
    )
  })

  it('createClient: a refused CONNECT (a bad token) fails with connect_failed and the reason', async () => {
    await assert.rejects(
      createClient({
        url: t.mqttUrl,
        userId: 'alice',
        deviceId: 'd4',
        getToken: () => t.token('alice', { expiresInSeconds: -10 }),
        ...FAST,
      }),
      failsWith('connect_failed', /the token is bad, expired, or was revoked/),
    )
  })

  it('createClient still connects within the timeout when the server answers', async () => {
    const c = await createClient({
      url: t.wsUrl,
      userId: 'alice',
      deviceId: 'd5',
      getToken: () => t.token('alice'),
      connectTimeoutMs: 5000,
    })
    assert.equal(c.state, 'connected')
    await c.close()
  })

  it('connect: a closed port, a silent port and a bad token fail with codes, with mqtt.js reconnects on', async () => {
    const closed = await freePort()
    await assert.rejects(
      connect({
        url: `ws://127.0.0.1:${closed}/mqtt`,
        userId: 'bob',
        deviceId: 'd1',
        token: await t.token('bob'),
      }),
      failsWith('connect_failed', /ECONNREFUSED/),
    )
    const before = silent.accepted.length
    await assert.rejects(
      connect({
        url: `mqtt://127.0.0.1:${silent.port}`,
        userId: 'bob',
        deviceId: 'd2',
        token: await t.token('bob'),
        connectTimeoutMs: 300,
        mqtt: { reconnectPeriod: 50 },
      }),
      failsWith('connect_timeout', /within 300 ms/),
    )
    await sleep(NO_RETRY_WINDOW_MS)
    assert.equal(silent.accepted.length, before + 1, 'mqtt.js reconnected after the failure')
    await assert.rejects(
      connect({ url: t.mqttUrl, userId: 'bob', deviceId: 'd3', token: 'not-a-jwt' }),
      failsWith('connect_failed', /Connection refused: Bad username or password/),
    )
    const ok = await connect({ url: t.mqttUrl, userId: 'bob', deviceId: 'd4', token: await t.token('bob') })
    await ok.close()
  })

  it('createClient: getToken counts in the timeout, and a getToken that throws or gives no token fails clearly', async () => {
    const o = { url: t.mqttUrl, userId: 'alice', deviceId: 'd5', ...FAST }
    const started = Date.now()
    // A token endpoint that never answers.
    await assert.rejects(
      createClient({ ...o, getToken: () => new Promise<string>(() => {}), connectTimeoutMs: 300 }),
      failsWith('connect_timeout', /getToken did not resolve within 300 ms/),
    )
    assert.ok(Date.now() - started < 2000, `timed out after ${Date.now() - started} ms`)
    await assert.rejects(
      createClient({
        ...o,
        getToken: async () => {
          throw new Error('auth backend down')
        },
      }),
      failsWith('connect_failed', /^getToken failed: auth backend down$/),
    )
    // What `(await res.json()).token` gives for an error body.
    await assert.rejects(
      createClient({ ...o, getToken: async () => undefined as unknown as string }),
      failsWith('connect_failed', /getToken resolved undefined, not a token/),
    )
    await assert.rejects(
      createClient({ ...o, getToken: async () => '' }),
      failsWith('connect_failed', /getToken resolved an empty string/),
    )
  })

  it('connectTimeoutMs: anything but a positive number is a TypeError; Infinity is no limit', async () => {
    const o = { url: t.mqttUrl, userId: 'alice', deviceId: 'd6', getToken: () => t.token('alice') }
    for (const bad of [0, -1, Number.NaN]) {
      await assert.rejects(createClient({ ...o, connectTimeoutMs: bad }), TypeError)
      assert.throws(
        () => connect({ url: t.mqttUrl, userId: 'bob', deviceId: 'd7', token: 'x', connectTimeoutMs: bad }),
        TypeError,
      )
    }
    const c = await createClient({ ...o, connectTimeoutMs: Number.POSITIVE_INFINITY })
    assert.equal(c.state, 'connected')
    await c.close()
  })
})
