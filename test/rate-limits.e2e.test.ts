import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createConnection } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { envName, settingKeys, settingsShape } from '../config/schema.ts'
import { connackCode, connectClient, WAIT_MS } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { LOAD_LIMITS } from './helpers/processes.ts'

/** Parses Prometheus text into "name{labels}" → value. */
async function metrics(t: TestNode): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const line of (await (await fetch(`${t.httpUrl}/metrics`)).text()).split('\n')) {
    if (!line || line.startsWith('#')) continue
    const cut = line.lastIndexOf(' ')
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)))
  }
  return out
}
const delayed = (m: Map<string, number>, limit: string) =>
  m.get(`natter_rate_limit_delayed_total{limit="${limit}"}`) ?? Number.NaN
const refused = (m: Map<string, number>, limit: string) =>
  m.get(`natter_rate_limit_refused_total{limit="${limit}"}`) ?? Number.NaN

/** A node whose limits are all out of the way except the ones given. */
const nodeWith = (env: Record<string, string>) => startTestNode({ ...LOAD_LIMITS, ...env })

/** Publishes QoS 1 chat sends at once and resolves with each PUBACK's time (ms after the first publish). */
async function sendAll(d: Device, chatId: string, ids: string[]): Promise<number[]> {
  const started = performance.now()
  return Promise.all(
    ids.map((id) =>
      d.client
        .publishAsync(`c/${chatId}/send`, JSON.stringify({ clientMsgId: id, text: `text of ${id}` }), {
          qos: 1,
        })
        .then(() => performance.now() - started),
    ),
  )
}

const storedIds = async (t: TestNode, chatId: string, senderId: string) =>
  (await t.node.stores.messages.after(chatId, 0, 1000))
    .filter((m) => m.senderId === senderId && m.kind === 'text')
    .map((m) => m.clientMsgId)

/** A request's whole reply (error body included), over MQTT. */
function rawRequest(d: Device, op: string, id: string, params: Record<string, unknown> = {}) {
  const replyTopic = `d/${d.userId}/${d.deviceId}/res`
  return new Promise<{ ok: boolean; result?: unknown; error?: { code: string; retryAfterMs?: number } }>(
    (resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to ${id}`)), WAIT_MS)
      const on = (topic: string, payload: Buffer) => {
        if (topic !== replyTopic) return
        const reply = JSON.parse(payload.toString('utf8'))
        if (reply.id !== id) return
        clearTimeout(timer)
        d.client.off('message', on)
        resolve(reply)
      }
      d.client.on('message', on)
      d.client.publish(`req/${op}`, JSON.stringify({ id, params }), { qos: 1 })
    },
  )
}

describe('chat sends over the per-device limit', () => {
  let t: TestNode
  before(async () => {
    t = await nodeWith({
      NATTER_LIMIT_SENDS_PER_DEVICE: '3/2s',
      NATTER_LIMIT_SENDS_PER_USER: '100/2s',
      NATTER_LIMIT_HOLD_MS: '3000',
    })
  })
  after(() => t.close())

  it('are held (PUBACK delayed) until the window has room, then stored in the order sent', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    try {
      const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      const before = await metrics(t)
      const acks = await sendAll(alice, chat, ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'])
      // The first three at once; the rest wait for the next 2 s window.
      for (const ms of acks.slice(0, 3)) assert.ok(ms < 1000, `within the limit: acknowledged after ${ms} ms`)
      for (const ms of acks.slice(3)) assert.ok(ms >= 500 && ms < 3500, `held: acknowledged after ${ms} ms`)
      assert.deepEqual(await storedIds(t, chat, 'alice'), ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'])
      assert.equal(alice.errors.length, 0)
      const now = await metrics(t)
      assert.equal(delayed(now, 'sends_per_device') - delayed(before, 'sends_per_device'), 3)
      assert.equal(refused(now, 'sends_per_device') - refused(before, 'sends_per_device'), 0)
    } finally {
      await alice.close()
    }
  })
})

describe('chat sends that would wait past the hold', () => {
  let t: TestNode
  before(async () => {
    t = await nodeWith({
      NATTER_LIMIT_SENDS_PER_DEVICE: '3/20s',
      NATTER_LIMIT_SENDS_PER_USER: '4/20s',
      NATTER_LIMIT_HOLD_MS: '500',
    })
  })
  after(() => t.close())

  it('are refused with rate_limited and a retry-after, acknowledged in order, and not stored', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    try {
      const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      const before = await metrics(t)
      const acks = await sendAll(alice, chat, ['r1', 'r2', 'r3', 'r4', 'r5'])
      for (const ms of acks.slice(3)) assert.ok(ms >= 400, `refused at the end of its hold: ${ms} ms`)
      await alice.until(() => alice.errors.length >= 2, 'two notices')
      assert.deepEqual(
        alice.errors.map((e) => [e.code, e.ref, e.topic]),
        [
          ['rate_limited', 'r4', `c/${chat}/send`],
          ['rate_limited', 'r5', `c/${chat}/send`],
        ],
      )
      for (const e of alice.errors as Array<{ retryAfterMs?: number }>) {
        assert.ok(
          e.retryAfterMs !== undefined && e.retryAfterMs > 15_000 && e.retryAfterMs <= 20_000,
          `retryAfterMs ${e.retryAfterMs}: until the 20 s window ends`,
        )
      }
      assert.deepEqual(await storedIds(t, chat, 'alice'), ['r1', 'r2', 'r3'])
      const now = await metrics(t)
      assert.equal(refused(now, 'sends_per_device') - refused(before, 'sends_per_device'), 2)
    } finally {
      await alice.close()
    }
  })

  it('count per user across devices: a second device of the same user is held to the user limit', async () => {
    // The user limit is 4 per 20 s and the first test used 3 of it for alice; bob starts fresh.
    const phone = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
    const laptop = await Device.connect(t.mqttUrl, 'bob', 'laptop', await t.token('bob'))
    try {
      const chat = (await phone.request<{ id: string }>('chat.direct', { with: 'carol' })).id
      await Promise.all([sendAll(phone, chat, ['p1', 'p2', 'p3']), sendAll(laptop, chat, ['l1', 'l2', 'l3'])])
      const stored = await storedIds(t, chat, 'bob')
      assert.equal(stored.length, 4, `4 of 6 stored: ${stored}`)
      await Device.untilAny(
        [phone, laptop],
        () => phone.errors.length + laptop.errors.length >= 2,
        'two refusals',
      )
      const refusedIds = [...phone.errors, ...laptop.errors].map((e) => e.ref).sort()
      assert.deepEqual([...stored, ...refusedIds].sort(), ['l1', 'l2', 'l3', 'p1', 'p2', 'p3'])
    } finally {
      await phone.close()
      await laptop.close()
    }
  })
})

describe('a device that floods', () => {
  let t: TestNode
  before(async () => {
    t = await nodeWith({
      NATTER_LIMIT_SENDS_PER_DEVICE: '30/10s',
      NATTER_LIMIT_SENDS_PER_USER: '60/10s',
      NATTER_LIMIT_HOLD_MS: '2000',
    })
  })
  after(() => t.close())

  it("does not hold back another user's sends, and is told rate_limited", async () => {
    const mallory = await Device.connect(t.mqttUrl, 'mallory', 'bot', await t.token('mallory'))
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    try {
      const spam = (await mallory.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      // 2,000 sends pipelined at once; the test does not wait for all their PUBACKs (the
      // refusals leave one hold of 2 s after another).
      sendAll(
        mallory,
        spam,
        Array.from({ length: 2000 }, (_, i) => `f${i}`),
      ).catch(() => {})
      // Alice chats meanwhile, a message every 50 ms, each waiting for its PUBACK.
      const latencies: number[] = []
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now()
        await alice.send(chat, `normal ${i}`, `a${i}`)
        latencies.push(performance.now() - t0)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      const worst = Math.max(...latencies)
      assert.ok(worst < 250, `alice's slowest PUBACK: ${worst.toFixed(1)} ms`)
      assert.equal((await storedIds(t, chat, 'alice')).length, 20)
      await mallory.until(
        () => mallory.errors.some((e) => e.code === 'rate_limited'),
        'mallory told rate_limited',
      )
      const stored = (await storedIds(t, spam, 'mallory')).length
      assert.ok(stored <= 60, `the flooder stored ${stored} (its limit: 30 per 10 s, plus one window)`)
    } finally {
      await alice.close()
      mallory.client.end(true)
    }
  })
})

describe('requests, typing and uploads over their limits', () => {
  let t: TestNode
  before(async () => {
    t = await nodeWith({
      NATTER_LIMIT_REQUESTS_PER_DEVICE: '4/20s',
      NATTER_LIMIT_HOLD_MS: '300',
      NATTER_LIMIT_TYPING_PER_DEVICE: '2/20s',
      NATTER_TYPING_INTERVAL_MS: '0',
      NATTER_LIMIT_UPLOADS_PER_DEVICE: '100/20s',
      NATTER_LIMIT_UPLOADS_PER_USER: '2/1m',
    })
  })
  after(() => t.close())

  it('a request over the limit is answered rate_limited with retryAfterMs, and not run', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    try {
      const before = await metrics(t)
      const replies = await Promise.all(
        ['q1', 'q2', 'q3', 'q4', 'q5', 'q6'].map((id) =>
          rawRequest(alice, 'chat.create', id, { name: id, members: [] }),
        ),
      )
      assert.deepEqual(
        replies.map((r) => r.ok),
        [true, true, true, true, false, false],
      )
      for (const r of replies.slice(4)) {
        assert.equal(r.error?.code, 'rate_limited')
        assert.ok((r.error?.retryAfterMs ?? 0) > 10_000, `retryAfterMs ${r.error?.retryAfterMs}`)
      }
      // Not run: only four groups exist.
      assert.equal((await t.node.stores.chats.chatsOf('alice')).length, 4)
      const now = await metrics(t)
      assert.equal(refused(now, 'requests_per_device') - refused(before, 'requests_per_device'), 2)
    } finally {
      await alice.close()
    }
  })

  it('typing over the limit is dropped', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'laptop', await t.token('alice'))
    const bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
    try {
      const chat = (await bob.request<{ id: string }>('chat.direct', { with: 'alice' })).id
      await bob.client.subscribeAsync(`c/${chat}/typing`, { qos: 0 })
      for (let i = 0; i < 4; i++) {
        await alice.client.publishAsync(`c/${chat}/typing`, JSON.stringify({ state: 'typing' }), { qos: 1 })
      }
      // A later indicator of another device passes: bob has seen everything relayed by then.
      const carol = await Device.connect(t.mqttUrl, 'bob', 'tablet', await t.token('bob'))
      await carol.client.publishAsync(`c/${chat}/typing`, JSON.stringify({ state: 'stopped' }), { qos: 1 })
      await bob.until(
        () => bob.other.some((o) => (o.body as { deviceId?: string }).deviceId === 'tablet'),
        'the marker',
      )
      await carol.close()
      const fromAlice = bob.other.filter((o) => (o.body as { userId?: string }).userId === 'alice')
      assert.equal(fromAlice.length, 2)
      assert.equal(refused(await metrics(t), 'typing_per_device'), 2)
    } finally {
      await alice.close()
      await bob.close()
    }
  })

  it('media.begin over the per-user limit is refused over MQTT and HTTP alike', async () => {
    const carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
    try {
      const chat = (await carol.request<{ id: string }>('chat.direct', { with: 'dave' })).id
      const begin = (n: number) => ({
        chatId: chat,
        sha256: createHash('sha256').update(`file ${n}`).digest('hex'),
        size: 10,
        contentType: 'application/pdf',
      })
      assert.equal((await rawRequest(carol, 'media.begin', 'u1', begin(1))).ok, true)
      const res = await fetch(`${t.httpUrl}/v1/media.begin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token('carol')}` },
        body: JSON.stringify(begin(2)),
      })
      assert.equal(res.status, 200)
      const third = await rawRequest(carol, 'media.begin', 'u3', begin(3))
      assert.equal(third.error?.code, 'rate_limited')
      assert.ok((third.error?.retryAfterMs ?? 0) > 30_000)
      const overHttp = await fetch(`${t.httpUrl}/v1/media.begin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token('carol')}` },
        body: JSON.stringify(begin(4)),
      })
      assert.equal(overHttp.status, 429)
      assert.ok(Number(overHttp.headers.get('retry-after')) >= 30)
      const body = (await overHttp.json()) as { error: { code: string; retryAfterMs: number } }
      assert.equal(body.error.code, 'rate_limited')
      assert.equal(refused(await metrics(t), 'uploads_per_user'), 2)
    } finally {
      await carol.close()
    }
  })
})

describe('the per-user limits of requests and typing, the per-device one of uploads', () => {
  let t: TestNode
  before(async () => {
    t = await nodeWith({
      NATTER_LIMIT_REQUESTS_PER_USER: '4/20s',
      NATTER_LIMIT_HOLD_MS: '300',
      NATTER_LIMIT_TYPING_PER_USER: '2/20s',
      NATTER_TYPING_INTERVAL_MS: '0',
      NATTER_LIMIT_UPLOADS_PER_DEVICE: '1/1m',
    })
  })
  after(() => t.close())

  it('requests and typing: every device of the user counts together', async () => {
    const phone = await Device.connect(t.mqttUrl, 'ivy', 'phone', await t.token('ivy'))
    const laptop = await Device.connect(t.mqttUrl, 'ivy', 'laptop', await t.token('ivy'))
    const jay = await Device.connect(t.mqttUrl, 'jay', 'phone', await t.token('jay'))
    try {
      // Requests: 4 per user; the chat costs one.
      const chat = (await phone.request<{ id: string }>('chat.direct', { with: 'jay' })).id
      const replies = await Promise.all([
        rawRequest(phone, 'whoami', 'w1'),
        rawRequest(laptop, 'whoami', 'w2'),
        rawRequest(phone, 'whoami', 'w3'),
        rawRequest(laptop, 'whoami', 'w4'),
      ])
      assert.equal(replies.filter((r) => r.ok).length, 3)
      assert.equal(replies.filter((r) => r.error?.code === 'rate_limited').length, 1)
      assert.equal(refused(await metrics(t), 'requests_per_user'), 1)

      // Typing: 2 per user, both devices together.
      await jay.client.subscribeAsync(`c/${chat}/typing`, { qos: 0 })
      const typing = (d: Device) =>
        d.client.publishAsync(`c/${chat}/typing`, JSON.stringify({ state: 'typing' }), { qos: 1 })
      await typing(phone)
      await typing(laptop)
      await typing(phone)
      await jay.client.publishAsync(`c/${chat}/typing`, JSON.stringify({ state: 'stopped' }), { qos: 1 })
      await jay.until(
        () => jay.other.some((o) => (o.body as { userId?: string }).userId === 'jay'),
        "jay's own indicator, after ivy's",
      )
      assert.equal(jay.other.filter((o) => (o.body as { userId?: string }).userId === 'ivy').length, 2)
      assert.equal(refused(await metrics(t), 'typing_per_user'), 1)
    } finally {
      await Promise.all([phone.close(), laptop.close(), jay.close()])
    }
  })

  it('uploads: one per device per minute, the other device still has its own', async () => {
    const token = await t.token('kim')
    const begin = (n: number) =>
      fetch(`${t.httpUrl}/v1/media.begin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({
          chatId: chatOfKim,
          sha256: createHash('sha256').update(`kim ${n}`).digest('hex'),
          size: 10,
          contentType: 'application/pdf',
        }),
      })
    const kim = await Device.connect(t.mqttUrl, 'kim', 'phone', token)
    const chatOfKim = (await kim.request<{ id: string }>('chat.direct', { with: 'lee' })).id
    try {
      // Over HTTP the device is kim/http.
      assert.equal((await begin(1)).status, 200)
      const over = await begin(2)
      assert.equal(over.status, 429)
      assert.ok(Number(over.headers.get('retry-after')) > 30)
      const overBody = (await over.json()) as { error: { code: string; retryAfterMs: number } }
      assert.equal(overBody.error.code, 'rate_limited')
      assert.ok(overBody.error.retryAfterMs > 30_000)
      const onPhone = await rawRequest(kim, 'media.begin', 'm1', {
        chatId: chatOfKim,
        sha256: createHash('sha256').update('kim 3').digest('hex'),
        size: 10,
        contentType: 'application/pdf',
      })
      assert.equal(onPhone.ok, true)
      assert.equal(refused(await metrics(t), 'uploads_per_device'), 1)
    } finally {
      await kim.close()
    }
  })
})

describe('CONNECTs over their limits', () => {
  let t: TestNode
  let port: number
  before(async () => {
    t = await nodeWith({ NATTER_LIMIT_CONNECTS_PER_IP: '6/20s', NATTER_LIMIT_CONNECTS_PER_USER: '2/20s' })
    port = Number(new URL(t.mqttUrl).port)
  })
  after(() => t.close())

  /** A CONNECT by hand: the CONNACK code, and whether the server closed the socket after it. */
  const connectRaw = (clientId: string, password: string) =>
    new Promise<{ code: number; closed: boolean }>((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port })
      const parser = mqttPacket.parser()
      let code = -1
      const timer = setTimeout(() => {
        socket.destroy()
        code === -1 ? reject(new Error('no CONNACK')) : resolve({ code, closed: false })
      }, 2000)
      parser.on('packet', (p) => {
        if (p.cmd === 'connack') code = p.returnCode ?? -1
        // Accepted: the test closes it.
        if (code === 0) {
          clearTimeout(timer)
          socket.destroy()
          resolve({ code, closed: false })
        }
      })
      socket.on('data', (d) => parser.parse(d))
      socket.on('close', () => {
        clearTimeout(timer)
        if (code !== 0) resolve({ code, closed: true })
      })
      socket.write(
        mqttPacket.generate({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          keepalive: 30,
          clean: true,
          clientId,
          username: clientId.split('/')[0],
          password: Buffer.from(password),
        }),
      )
    })

  it('per user: the third accepted CONNECT in the window gets CONNACK 3 and a closed socket; others still connect', async () => {
    const token = await t.token('erin')
    assert.deepEqual(await connectRaw('erin/a', token), { code: 0, closed: false })
    assert.deepEqual(await connectRaw('erin/b', token), { code: 0, closed: false })
    assert.deepEqual(await connectRaw('erin/c', token), { code: 3, closed: true })
    // A bad token does not use up erin's connects (it is refused before they count).
    assert.equal((await connectRaw('erin/d', 'not-a-token')).code, 4)
    assert.deepEqual(await connectRaw('frank/a', await t.token('frank')), { code: 0, closed: false })
    const m = await metrics(t)
    assert.equal(refused(m, 'connects_per_user'), 1)
  })

  it('per IP: counted before the token is checked, bad tokens included; mqtt.js sees "Server unavailable"', async () => {
    // 5 so far from 127.0.0.1 in this window (the test above), the limit is 6.
    assert.equal((await connectRaw('gina/a', 'not-a-token')).code, 4)
    const over = await connectRaw('gina/b', await t.token('gina'))
    assert.deepEqual(over, { code: 3, closed: true })
    assert.equal(await connackCode(t.mqttUrl, { clientId: 'gina/c', password: await t.token('gina') }), 3)
    assert.ok(refused(await metrics(t), 'connects_per_ip') >= 2)
  })
})

describe('the HTTP API over its per-token limit', () => {
  let t: TestNode
  before(async () => {
    t = await nodeWith({ NATTER_LIMIT_HTTP_PER_TOKEN: '3/20s' })
  })
  after(() => t.close())

  it('answers 429 rate_limited with Retry-After; another token is counted apart', async () => {
    const call = (token: string) =>
      fetch(`${t.httpUrl}/v1/whoami`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    const first = await t.token('hana')
    for (let i = 0; i < 3; i++) assert.equal((await call(first)).status, 200)
    const over = await call(first)
    assert.equal(over.status, 429)
    const retry = Number(over.headers.get('retry-after'))
    assert.ok(retry >= 15 && retry <= 20, `Retry-After: ${retry}`)
    const body = (await over.json()) as { error: { code: string } }
    assert.equal(body.error.code, 'rate_limited')
    // Another token of the same user (another exp, so another token) has its own count.
    const second = await t.token('hana', { expiresInSeconds: 1800 })
    assert.notEqual(second, first)
    assert.equal((await call(second)).status, 200)
    assert.equal(refused(await metrics(t), 'http_per_token'), 1)
  })
})

describe('the default limits', () => {
  let t: TestNode
  before(async () => {
    // The defaults of the settings schema, over the test helper's load limits.
    const defaults = Object.fromEntries(
      settingKeys
        .filter((k) => k.startsWith('limit'))
        .map((k) => [envName(k), String(settingsShape[k].parse(undefined))]),
    )
    t = await startTestNode(defaults)
  })
  after(() => t.close())

  it('let a person chat: a burst of 50 messages from one device is stored at once, every metric is exported', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    let client: MqttClient | undefined
    try {
      const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      const acks = await sendAll(
        alice,
        chat,
        Array.from({ length: 50 }, (_, i) => `d${i}`),
      )
      assert.ok(Math.max(...acks) < 2000)
      assert.equal((await storedIds(t, chat, 'alice')).length, 50)
      client = await connectClient(t.mqttUrl, { clientId: 'alice/other', password: await t.token('alice') })
      const m = await metrics(t)
      for (const limit of [
        'sends_per_device',
        'sends_per_user',
        'requests_per_device',
        'requests_per_user',
        'typing_per_device',
        'typing_per_user',
        'uploads_per_device',
        'uploads_per_user',
        'connects_per_ip',
        'connects_per_user',
        'http_per_token',
      ]) {
        assert.equal(delayed(m, limit), 0, `${limit} delayed is exported`)
        assert.equal(refused(m, limit), 0, `${limit} refused is exported`)
      }
    } finally {
      await client?.endAsync()
      await alice.close()
    }
  })
})
