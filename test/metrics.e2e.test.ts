import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { stalledSubscriber } from './helpers/stalled-subscriber.ts'

type Samples = Map<string, number>

/** Parses Prometheus text into "name{labels}" → value. */
function parse(text: string): Samples {
  const out: Samples = new Map()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const cut = line.lastIndexOf(' ')
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)))
  }
  return out
}

const NAMES = [
  'natter_connections',
  'natter_connects_total',
  'natter_messages_in_total',
  'natter_messages_out_total',
  'natter_store_write_seconds',
  'natter_delivery_seconds',
  'natter_oldest_undelivered_seconds',
  'natter_undelivered_messages',
  'natter_client_buffered_bytes',
]

describe('/metrics', () => {
  let t: TestNode
  const scrape = async () => {
    const res = await fetch(`${t.httpUrl}/metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/)
    return res.text()
  }
  before(async () => {
    // A window wide enough that the stalled subscriber's socket fills (buffered bytes move).
    t = await startTestNode({
      NATTER_DRAIN_TIMEOUT_MS: '0',
      NATTER_MAX_TEXT_CHARS: '20000',
      NATTER_MAX_INFLIGHT: '65535',
    })
  })
  after(() => t.close())

  it('names every metric, and each one moves with traffic', async () => {
    const first = await scrape()
    for (const name of NAMES) assert.match(first, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exported`)
    // The Grafana dashboard in docs/ asks only for metrics that exist.
    const dashboard = readFileSync(new URL('../docs/grafana-dashboard.json', import.meta.url), 'utf8')
    for (const used of new Set(dashboard.match(/natter_[a-z_]+/g))) {
      const base = used.replace(/_(bucket|sum|count)$/, '')
      assert.match(first, new RegExp(`^# TYPE ${base} `, 'm'), `the dashboard's ${used} exists`)
    }
    const before = parse(first)

    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    const bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
    const chat = (
      await alice.request<{ id: string }>('chat.create', { name: 'M', members: ['bob', 'carol'] })
    ).id
    for (let i = 0; i < 5; i++) await alice.send(chat, `hello ${i}`)
    await bob.until(() => bob.messages(chat).length >= 6, 'bob has them')
    await alice.client.publishAsync(`c/${chat}/typing`, JSON.stringify({ state: 'typing' }), { qos: 0 })
    await alice.client.publishAsync('u/bob/self', 'not mine', { qos: 1 })

    // Carol holds back her PUBACKs: her messages stay undelivered. Mallory never reads: her
    // bytes pile up in the buffer.
    const carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
    let held = 0
    carol.client.handleMessage = () => {
      held++
    }
    await alice.request('chat.add', { chatId: chat, members: ['mallory'] })
    const mallory = await stalledSubscriber(t, 'mallory')
    const text = 'z'.repeat(19_000)
    await Promise.all(Array.from({ length: 400 }, (_, i) => alice.send(chat, `${text} ${i}`)))
    await carol.until(() => held > 0, 'carol is holding a message')

    const now = parse(await scrape())
    const moved = (key: string, by = 1) =>
      assert.ok(
        (now.get(key) ?? 0) - (before.get(key) ?? 0) >= by,
        `${key}: ${before.get(key)} → ${now.get(key)}`,
      )
    moved('natter_connections', 3)
    moved('natter_connects_total{result="accepted"}', 4)
    moved('natter_messages_in_total{kind="chat"}', 405)
    moved('natter_messages_in_total{kind="request"}', 2)
    moved('natter_messages_in_total{kind="typing"}')
    moved('natter_messages_in_total{kind="refused"}')
    moved('natter_messages_out_total{kind="inbox"}', 10)
    moved('natter_messages_out_total{kind="reply"}', 2)
    moved('natter_messages_out_total{kind="error"}')
    moved('natter_store_write_seconds_count', 405)
    moved('natter_delivery_seconds_count', 5)
    moved('natter_undelivered_messages')
    assert.ok((now.get('natter_oldest_undelivered_seconds') ?? 0) > 0)
    moved('natter_client_buffered_bytes')

    mallory.destroy()
    // Carol's client is stuck in its own message handler by design: close it without waiting.
    carol.client.end(true)
    await Promise.all([alice.close(), bob.close()])
  })
})
