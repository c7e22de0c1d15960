import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { after, before, describe, it } from 'node:test'
import {
  type ConnectionState,
  createClient,
  MemoryOutboxStorage,
  type NatterClient,
  type NatterRequestError,
} from '../client-sdk/src/index.ts'
import { freePort } from './helpers/free-port.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/**
 * A TCP proxy in front of the node's MQTT port, as a network between a device and the server:
 * it forwards both ways until `silence()`, after which it forwards nothing and closes nothing,
 * as a dropped Wi-Fi or a NAT that forgot the connection does (no FIN, no RST).
 */
interface Proxy {
  url: string
  silence(): void
  close(): Promise<void>
}

async function startProxy(upstreamPort: number, port = 0): Promise<Proxy> {
  const sockets = new Set<Socket>()
  let silent = false
  const server: Server = createServer((down) => {
    const up = tcpConnect(upstreamPort, '127.0.0.1')
    for (const s of [down, up]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    down.on('data', (d) => silent || up.write(d))
    up.on('data', (d) => silent || down.write(d))
    down.on('close', () => silent || up.destroy())
    up.on('close', () => silent || down.destroy())
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`,
    silence: () => {
      silent = true
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Resolves with the ms until the client's state is `want`; rejects past `withinMs`. */
function stateWithin(c: NatterClient, want: ConnectionState, withinMs: number): Promise<number> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`state ${c.state}, not ${want}, after ${withinMs} ms`))
    }, withinMs)
    const off = c.on('state', (s) => {
      if (s !== want) return
      clearTimeout(timer)
      off()
      resolve(performance.now() - started)
    })
  })
}

/** Cuts a client's connection as a network drop the device sees would: the socket dies. */
function cut(c: NatterClient): void {
  ;(c.mqtt.stream as unknown as { destroy(): void }).destroy()
}

describe('the SDK on a network that goes away and comes back', () => {
  let t: TestNode
  const clients: NatterClient[] = []
  const proxies: Proxy[] = []
  const track = (c: NatterClient) => {
    clients.push(c)
    return c
  }
  before(async () => {
    t = await startTestNode()
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    for (const p of proxies) await p.close().catch(() => {})
    await t?.close()
  })

  it('notices a network gone silent within 1.5 × its keepalive (5 s by default): state reconnecting', async (ctx) => {
    const proxy = await startProxy(Number(new URL(t.mqttUrl).port))
    proxies.push(proxy)
    const c = track(
      await createClient({
        url: proxy.url,
        userId: 'kai',
        deviceId: 'phone',
        getToken: () => t.token('kai'),
      }),
    )
    assert.equal(c.mqtt.options.keepalive, 5)
    // A reconnect that gets no CONNACK is given up after 10 s (mqtt.js: 30 s).
    assert.equal(c.mqtt.options.connectTimeout, 10_000)
    proxy.silence()
    // 7.5 s by mqtt.js' rule; 1.5 s more for the timer's ticks on a busy machine.
    const ms = await stateWithin(c, 'reconnecting', 9_000)
    ctx.diagnostic(`reconnecting ${Math.round(ms)} ms after the network went silent`)
    assert.ok(ms >= 2_500, `${ms} ms: a keepalive's ping had no time to go unanswered`)

    // An app's own keepalive wins (the web chat asks 2 s).
    const quick = track(
      await createClient({
        url: t.mqttUrl,
        userId: 'kai',
        deviceId: 'laptop',
        getToken: () => t.token('kai'),
        mqtt: { keepalive: 2 },
      }),
    )
    assert.equal(quick.mqtt.options.keepalive, 2)
  })

  it('reconnectNow skips the backoff; it does nothing when connected or closed', async () => {
    const lea = track(
      await createClient({
        url: t.mqttUrl,
        userId: 'lea',
        deviceId: 'phone',
        getToken: () => t.token('lea'),
        // A backoff that would outlast the test.
        reconnect: { minMs: 120_000, maxMs: 120_000 },
      }),
    )
    const chat = await lea.direct('mo')
    const stream = lea.mqtt.stream
    lea.reconnectNow()
    assert.equal(lea.state, 'connected')
    assert.equal(lea.mqtt.stream, stream, 'a connected client keeps its connection')

    const down = stateWithin(lea, 'reconnecting', 5_000)
    cut(lea)
    await down
    const sent = lea.send(chat.id, { text: 'sent once the network is back' }).sent
    const up = stateWithin(lea, 'connected', 5_000)
    lea.reconnectNow()
    const ms = await up
    assert.ok(ms < 5_000)
    assert.ok((await sent).seq > 0)

    await lea.close()
    lea.reconnectNow()
    assert.equal(lea.state, 'closed')
    // mqtt.js' own mark of a client ended for good (no reconnect was started on it).
    assert.equal(lea.mqtt.disconnected, true)
    assert.equal(lea.mqtt.reconnecting, false)
  })

  it('starts offline with offlineStart: shows the chats and queued messages, sends them once online', async () => {
    // A previous run of the app left a message in the outbox, written offline.
    const storage = new MemoryOutboxStorage()
    const first = track(
      await createClient({
        url: t.mqttUrl,
        userId: 'nia',
        deviceId: 'tab',
        outbox: storage,
        getToken: () => t.token('nia'),
        reconnect: { minMs: 120_000, maxMs: 120_000 },
      }),
    )
    const chatId = (await first.direct('oto')).id
    const down = stateWithin(first, 'reconnecting', 5_000)
    cut(first)
    await down
    const queued = first.send(chatId, { text: 'written offline, before the reload' })
    await queued.queued
    await first.close()

    // The tab is reloaded with no network: no token, nothing listening where the node was.
    const port = await freePort()
    let online = false
    const getToken = async () => {
      if (!online) throw new TypeError('Failed to fetch')
      return t.token('nia')
    }
    const url = `mqtt://127.0.0.1:${port}`
    const base = { url, userId: 'nia', deviceId: 'tab', outbox: storage, getToken }
    // The default still rejects, and sends nothing.
    await assert.rejects(createClient(base), (e: NatterRequestError) => e.code === 'connect_failed')
    const reloaded = track(
      await createClient({ ...base, offlineStart: true, reconnect: { minMs: 50, maxMs: 200 } }),
    )
    assert.equal(reloaded.state, 'reconnecting')
    assert.deepEqual(
      reloaded.chats().map((c) => c.id),
      [chatId],
    )
    assert.deepEqual(
      reloaded.chat(chatId).pending.map((i) => [i.localId, i.text]),
      [[queued.localId, 'written offline, before the reload']],
    )
    // A token but still no server: still offline, still trying.
    online = true
    const oto = track(
      await createClient({
        url: t.mqttUrl,
        userId: 'oto',
        deviceId: 'phone',
        getToken: () => t.token('oto'),
      }),
    )
    const arrived = oto.next('message.new', (m) => m.text === 'written offline, before the reload')
    await oto.open(chatId)

    // The network comes back.
    const sentStatus = reloaded.next('status', (s) => s.localId === queued.localId && s.status === 'sent')
    const connected = stateWithin(reloaded, 'connected', 10_000)
    proxies.push(await startProxy(Number(new URL(t.mqttUrl).port), port))
    await connected
    await sentStatus
    assert.equal((await arrived).senderId, 'nia')
    assert.deepEqual(reloaded.chat(chatId).pending, [])
    assert.deepEqual(await storage.load(), [])
  })

  it('starts offline from a closed port and from a silent one; a refused CONNECT still rejects', async () => {
    const closedPort = `mqtt://127.0.0.1:${await freePort()}`
    const silent = await startProxy(Number(new URL(t.mqttUrl).port))
    proxies.push(silent)
    silent.silence()
    for (const url of [closedPort, silent.url]) {
      const c = track(
        await createClient({
          url,
          userId: 'pia',
          deviceId: 'tab',
          getToken: () => t.token('pia'),
          offlineStart: true,
          connectTimeoutMs: 500,
        }),
      )
      assert.equal(c.state, 'reconnecting', url)
      await c.close()
    }
    // No token at all: never connected, and closed as cleanly.
    const tokenless = track(
      await createClient({
        url: t.mqttUrl,
        userId: 'pia',
        deviceId: 'tab',
        getToken: () => Promise.reject(new TypeError('Failed to fetch')),
        offlineStart: true,
      }),
    )
    assert.equal(tokenless.state, 'reconnecting')
    tokenless.typing('g_none')
    await tokenless.close()
    assert.equal(tokenless.state, 'closed')
    await assert.rejects(
      createClient({
        url: t.mqttUrl,
        userId: 'pia',
        deviceId: 'phone',
        getToken: async () => 'not-a-token',
        offlineStart: true,
      }),
      (e: NatterRequestError) => e.code === 'connect_failed' && /refused/.test(e.message),
    )
  })
})
