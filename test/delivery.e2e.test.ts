import assert from 'node:assert/strict'
import { createConnection } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { IPublishPacket } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { connectClient, WAIT_MS } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { run } from './helpers/processes.ts'

const MAX_INFLIGHT = 10
const DAY_MS = 86_400_000

interface Seen {
  chatId: string
  seq: number
  dup: boolean
}

/** Every inbox PUBLISH a device receives, with its DUP flag, in arrival order. */
function recordDup(d: Device): Seen[] {
  const seen: Seen[] = []
  d.client.on('message', (topic, payload, packet: IPublishPacket) => {
    if (topic !== `u/${d.userId}/inbox`) return
    const e = JSON.parse(payload.toString('utf8')) as { type: string; chatId: string; seq: number }
    if (e.type === 'message') seen.push({ chatId: e.chatId, seq: e.seq, dup: packet.dup })
  })
  return seen
}

/** A chat's seqs as received: each once, ascending, none missing between first and last. */
function assertInOrder(seen: Seen[], chatId: string, from: number, to: number) {
  const seqs = seen.filter((s) => s.chatId === chatId).map((s) => s.seq)
  assert.deepEqual(
    seqs,
    Array.from({ length: to - from + 1 }, (_, i) => from + i),
    `${chatId}: every seq from ${from} to ${to}, once, in order`,
  )
}

describe('inbox delivery from the message store', () => {
  let t: TestNode
  let alice: Device
  let group: string
  let direct: string

  before(async () => {
    t = await startTestNode({ NATTER_MAX_INFLIGHT: String(MAX_INFLIGHT) })
    alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    group = (
      await alice.request<{ id: string }>('chat.create', {
        name: 'delivery',
        members: ['bob', 'carol', 'dave', 'erin', 'frank'],
      })
    ).id
    direct = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
  })
  after(async () => {
    await alice?.close()
    await t?.close()
  })

  /** Resolves when the broker granted a subscription to this client. */
  const subscribed = (clientId: string) =>
    new Promise<void>((resolve) => {
      const on = (_subs: unknown, client: { id: string }) => {
        if (client.id !== clientId) return
        t.node.broker.off('subscribe', on)
        resolve()
      }
      t.node.broker.on('subscribe', on)
    })
  const lastSeq = async (chatId: string) =>
    (await t.node.stores.messages.before(chatId, null, 1))[0]?.seq ?? 0

  it('a device away gets what it missed in seq order per chat, then the live stream, with no gap and no repeat', async () => {
    const token = await t.token('bob')
    const first = await Device.connect(t.mqttUrl, 'bob', 'phone', token)
    await first.close()
    const fromGroup = (await lastSeq(group)) + 1
    const fromDirect = (await lastSeq(direct)) + 1
    for (let i = 0; i < 60; i++) await alice.send(i % 2 ? group : direct, `away ${i}`)
    // Sends go on while bob reconnects: the store's backlog and the live stream meet at a seam.
    const sending = (async () => {
      for (let i = 0; i < 40; i++) await alice.send(i % 2 ? group : direct, `live ${i}`)
    })()
    let seen: Seen[] = []
    const bob = await Device.connect(t.mqttUrl, 'bob', 'phone', token, { subscribe: false })
    seen = recordDup(bob)
    await sending
    const [toGroup, toDirect] = [await lastSeq(group), await lastSeq(direct)]
    await bob.until(
      () =>
        bob.messages(group).some((m) => m.seq === toGroup) &&
        bob.messages(direct).some((m) => m.seq === toDirect),
      'the last message of both chats',
    )
    assertInOrder(seen, group, fromGroup, toGroup)
    assertInOrder(seen, direct, fromDirect, toDirect)
    // Nothing was written to bob before: no delivery is marked as a resend.
    assert.ok(seen.every((s) => !s.dup))
    await bob.close()
  })

  it('a device that stops acknowledging gets at most NATTER_MAX_INFLIGHT; after a reconnect the rest follow, resends marked DUP', async () => {
    const token = await t.token('carol')
    const connectSilent = async () => {
      const d = await Device.connect(t.mqttUrl, 'carol', 'tablet', token, { subscribe: false })
      return d
    }
    const warmup = await Device.connect(t.mqttUrl, 'carol', 'tablet', token)
    await warmup.close()
    const from = (await lastSeq(group)) + 1
    // A device that never acknowledges, on a raw socket: mqtt.js reads no further packet until
    // the last one was acknowledged, so it cannot show the server's window.
    const seenSilent: mqttPacket.IPublishPacket[] = []
    const socket = createConnection({ host: '127.0.0.1', port: Number(new URL(t.mqttUrl).port) })
    const parser = mqttPacket.parser()
    const waiters = new Set<() => void>()
    parser.on('packet', (packet) => {
      if (packet.cmd === 'publish' && packet.topic === 'u/carol/inbox') seenSilent.push(packet)
      for (const w of waiters) w()
    })
    socket.on('data', (d) => parser.parse(d))
    socket.write(
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        keepalive: 60,
        clean: false,
        clientId: 'carol/tablet',
        username: 'carol',
        password: Buffer.from(token),
      }),
    )
    const rawUntil = (ok: () => boolean, what: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${what} did not happen within ${WAIT_MS} ms`)),
          WAIT_MS,
        )
        const check = () => {
          if (!ok()) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
        check()
      })
    for (let i = 0; i < 3 * MAX_INFLIGHT; i++) await alice.send(group, `unacked ${i}`)
    await rawUntil(() => seenSilent.length >= MAX_INFLIGHT, 'a full window')
    // Every send was acknowledged to alice, so its delivery was decided: nothing more came.
    await t.node.inbox.flush()
    assert.equal(seenSilent.length, MAX_INFLIGHT)
    assert.equal(t.node.inbox.stats('carol/tablet').inflight, MAX_INFLIGHT)
    socket.destroy()

    const carol = await connectSilent()
    const seen = recordDup(carol)
    const to = await lastSeq(group)
    await carol.until(() => carol.messages(group).some((m) => m.seq === to), 'the last message')
    assertInOrder(seen, group, from, to)
    // What was written before is written again with DUP=1 [MQTT-3.3.1-1].
    for (const s of seen.slice(0, MAX_INFLIGHT)) assert.equal(s.dup, true, `seq ${s.seq} is a resend`)
    await carol.close()
  })

  it('a clean session gets only live messages, and its acknowledgements are delivered receipts per device', async () => {
    const token = await t.token('dave')
    const script = await Device.connect(t.mqttUrl, 'dave', 'script', token, { clean: true })
    const id = await alice.send(group, 'for the script')
    await script.until(() => script.messages(group).some((m) => m.clientMsgId === id), 'the message')
    const seq = script.messages(group).find((m) => m.clientMsgId === id)?.seq ?? 0
    await alice.until(
      () => alice.inbox.some((e) => e.type === 'receipt' && e.userId === 'dave' && e.seq >= seq),
      'dave’s delivered receipt',
    )
    const receipts = await alice.request<{
      cursors: Array<{ userId: string; deliveredSeq: number }>
      devices: Array<{ userId: string; deviceId: string; deliveredSeq: number }>
    }>('receipts', { chatId: group })
    assert.ok(receipts.cursors.some((c) => c.userId === 'dave' && c.deliveredSeq >= seq))
    assert.ok(
      receipts.devices.some((d) => d.userId === 'dave' && d.deviceId === 'script' && d.deliveredSeq >= seq),
    )
    await script.close()

    const missed = await alice.send(group, 'while the script is away')
    const again = await Device.connect(t.mqttUrl, 'dave', 'script', token, { clean: true })
    const live = await alice.send(group, 'live again')
    await again.until(() => again.messages(group).some((m) => m.clientMsgId === live), 'the live message')
    assert.ok(!again.messages(group).some((m) => m.clientMsgId === missed), 'a clean session has no backlog')
    await again.close()
  })

  it('mosquitto_sub -c gets every message sent while it was away, with no client code', async (ctx) => {
    const token = await t.token('erin')
    const port = String(new URL(t.mqttUrl).port)
    const lines: string[] = []
    const waiters = new Set<() => void>()
    const sub = () => {
      const p = run('mosquitto_sub', [
        ...['-h', '127.0.0.1', '-p', port, '-c', '-q', '1'],
        ...['-i', 'erin/pi', '-u', 'erin', '-P', token, '-t', 'u/erin/inbox'],
      ])
      p.child.stdout?.on('data', (b: Buffer) => {
        lines.push(...b.toString('utf8').split('\n').filter(Boolean))
        for (const w of waiters) w()
      })
      return p
    }
    const texts = () =>
      lines
        .map((l) => JSON.parse(l) as { type: string; text?: string; seq: number })
        .filter((e) => e.type === 'message')
    const waitFor = (what: string, ok: () => boolean) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!ok()) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`mosquitto_sub: ${what} did not arrive within ${WAIT_MS} ms`))
        }, WAIT_MS)
        waiters.add(check)
        check()
      })
    const first = subscribed('erin/pi')
    let p = sub()
    let stop = () => p.child.kill('SIGKILL')
    ctx.after(() => stop())
    await first
    const hello = await alice.send(group, 'hello erin')
    await waitFor('the first message', () => texts().some((e) => e.text === 'hello erin'))
    assert.ok(hello)
    p.child.kill('SIGKILL')
    await p.exited
    const from = (await lastSeq(group)) + 1
    for (let i = 0; i < 20; i++) await alice.send(group, `while erin is away ${i}`)
    const to = await lastSeq(group)
    p = sub()
    stop = () => p.child.kill('SIGKILL')
    await waitFor('the messages sent while away', () => texts().some((e) => e.seq === to))
    const seqs = texts()
      .map((e) => e.seq)
      .filter((s) => s >= from)
    assert.deepEqual(
      seqs,
      Array.from({ length: to - from + 1 }, (_, i) => from + i),
    )
    p.child.kill('SIGTERM')
    await p.exited
  })

  it('a device away while messages it had were edited or deleted gets the changes when it returns', async () => {
    const token = await t.token('bob')
    const bob = await Device.connect(t.mqttUrl, 'bob', 'tablet', token)
    const ids = [await alice.send(direct, 'to edit'), await alice.send(direct, 'to delete')]
    await bob.until(() => ids.every((id) => bob.messages(direct).some((m) => m.clientMsgId === id)), 'both')
    const [edited, deleted] = ids.map(
      (id) => bob.messages(direct).find((m) => m.clientMsgId === id)?.seq ?? 0,
    )
    // Bob's PUBACKs reached the node (its only connected device acknowledged): its cursor is past both.
    await alice.until(
      () =>
        alice.inbox.some(
          (e) =>
            e.type === 'receipt' && e.userId === 'bob' && e.kind === 'delivered' && e.seq >= (deleted ?? 0),
        ),
      'bob’s delivered receipt',
    )
    await t.node.inbox.flush()
    await bob.close()
    await alice.request('edit', { chatId: direct, seq: edited, text: 'edited while bob was away' })
    await alice.request('delete', { chatId: direct, seq: deleted })
    const back = await Device.connect(t.mqttUrl, 'bob', 'tablet', token, { subscribe: false })
    await back.until(
      () => back.inbox.some((e) => e.type === 'edit') && back.inbox.some((e) => e.type === 'delete'),
      'the edit and the delete',
    )
    const edit = back.inbox.find((e) => e.type === 'edit')
    assert.equal(edit?.seq, edited)
    assert.equal(edit?.text, 'edited while bob was away')
    assert.equal(back.inbox.find((e) => e.type === 'delete')?.seq, deleted)
    // The messages themselves are not sent again: bob had acknowledged them.
    assert.equal(back.messages(direct).length, 0)
    await back.close()
  })

  it('a resumed session gets the current presence of those it follows, not a queue of changes', async () => {
    const grace = await Device.connect(t.mqttUrl, 'grace', 'phone', await t.token('grace'))
    await grace.request('chat.direct', { with: 'hank' })
    const hankToken = await t.token('hank')
    const hank = await Device.connect(t.mqttUrl, 'hank', 'phone', hankToken)
    await hank.client.subscribeAsync('u/grace/presence', { qos: 1 })
    await hank.until(() => hank.other.some((o) => o.topic === 'u/grace/presence'), 'grace’s presence')
    await hank.close()
    // Grace goes away and comes back while hank is away: two changes, one current value.
    await grace.close()
    const back = await Device.connect(t.mqttUrl, 'grace', 'phone', await t.token('grace'))
    await t.node.presence.settled()
    const resumed = await Device.connect(t.mqttUrl, 'hank', 'phone', hankToken, { subscribe: false })
    await resumed.until(() => resumed.other.some((o) => o.topic === 'u/grace/presence'), 'grace’s presence')
    const updates = resumed.other.filter((o) => o.topic === 'u/grace/presence')
    assert.equal(updates.length, 1)
    assert.equal((updates[0]?.body as { online?: boolean } | undefined)?.online, true)
    await Promise.all([back.close(), resumed.close()])
  })

  it('a persistent session keeps its inbox subscription as MQTT says: restored with session present, gone after UNSUBSCRIBE or a clean session', async () => {
    const token = await t.token('ivy')
    const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'ivy' })).id
    /** Connects ivy/phone; resolves with the CONNACK's session-present flag and the client. */
    const connect = async (clean = false) => {
      let present: boolean | undefined
      const client = await connectClient(t.mqttUrl, { clientId: 'ivy/phone', password: token, clean }, (c) =>
        c.once('connect', (connack) => (present = connack.sessionPresent)),
      )
      return { client, present }
    }
    /** The broker's record of ivy/phone's inbox subscription, as aedes restored it. */
    const restored = () =>
      (
        t.node.broker as unknown as {
          clients: Record<string, { subscriptions: Record<string, { qos: number }> }>
        }
      ).clients['ivy/phone']?.subscriptions['u/ivy/inbox']
    const first = await connect()
    await first.client.subscribeAsync('u/ivy/inbox', { qos: 1 })
    await first.client.endAsync()

    // Back without subscribing: the session is there, its inbox too, at QoS 1, and it delivers.
    const back = await connect()
    assert.equal(back.present, true)
    assert.equal(restored()?.qos, 1)
    const got = new Promise<IPublishPacket>((resolve) =>
      back.client.on('message', (topic, _payload, packet) => topic === 'u/ivy/inbox' && resolve(packet)),
    )
    await alice.send(chat, 'to the restored inbox')
    assert.equal((await got).qos, 1)
    // An UNSUBSCRIBE ends it: the next CONNECT finds no session.
    await back.client.unsubscribeAsync('u/ivy/inbox')
    await back.client.endAsync()
    const unsubscribed = await connect()
    assert.equal(unsubscribed.present, false)
    assert.equal(restored(), undefined)
    // A clean session ends it too [MQTT-3.1.2-6].
    await unsubscribed.client.subscribeAsync('u/ivy/inbox', { qos: 0 })
    await unsubscribed.client.endAsync()
    const clean = await connect(true)
    assert.equal(clean.present, false)
    await clean.client.endAsync()
    const after = await connect()
    assert.equal(after.present, false)
    assert.equal(restored(), undefined)
    await after.client.endAsync()
  })

  it('removes sessions not seen for NATTER_SESSION_EXPIRY_DAYS, with their delivery state (clock passed in)', async () => {
    const token = await t.token('frank')
    const old = await Device.connect(t.mqttUrl, 'frank', 'old', token)
    await old.close()
    await alice.send(group, 'before the expiry')
    const at = Date.now()
    assert.deepEqual(await t.node.inbox.expireSessions(at + 29 * DAY_MS), [])
    const removed = await t.node.inbox.expireSessions(at + 31 * DAY_MS)
    assert.ok(removed.some((d) => d.userId === 'frank' && d.deviceId === 'old'))
    // Connected devices are kept however old the clock says their session is.
    assert.ok(!removed.some((d) => d.userId === 'alice'))
    assert.equal(await t.node.stores.delivery.session({ userId: 'frank', deviceId: 'old' }), null)
    // A CONNECT with clean=false now starts a new session: no subscription, no backlog.
    const back = await Device.connect(t.mqttUrl, 'frank', 'old', token)
    const id = await alice.send(group, 'after the expiry')
    await back.until(() => back.messages(group).some((m) => m.clientMsgId === id), 'the new message')
    assert.deepEqual(
      back.messages(group).map((m) => m.text),
      ['after the expiry'],
    )
    const session = await t.node.stores.delivery.session({ userId: 'frank', deviceId: 'old' })
    assert.ok(session && session.since >= at, 'a new session began at the reconnect')
    await back.close()
  })
})
