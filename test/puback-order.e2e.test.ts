import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createConnection, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { connectClient, WAIT_MS } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/**
 * A hand-driven MQTT 3.1.1 connection: packets are written as given (several in one write, so
 * that they reach the broker in one socket read, as a pipelining client's do) and every packet
 * that comes back is recorded in order.
 */
class RawConnection {
  readonly received: Packet[] = []
  readonly #socket: Socket
  readonly #waiters = new Set<() => void>()

  private constructor(socket: Socket) {
    this.#socket = socket
    const parser = mqttPacket.parser()
    parser.on('packet', (p) => {
      this.received.push(p)
      for (const w of this.#waiters) w()
    })
    socket.on('data', (d) => parser.parse(d))
  }

  static async open(port: number, clientId: string, password: string): Promise<RawConnection> {
    const socket = createConnection({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    socket.setNoDelay(true)
    const c = new RawConnection(socket)
    c.write([
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        keepalive: 60,
        clean: true,
        clientId,
        username: clientId.split('/')[0],
        password: Buffer.from(password),
      },
    ])
    await c.until((p) => p.cmd === 'connack')
    const connack = c.received.find((p) => p.cmd === 'connack') as mqttPacket.IConnackPacket
    assert.equal(connack.returnCode, 0)
    return c
  }

  /** Writes every packet in one socket write. */
  write(packets: Packet[]): void {
    this.#socket.write(Buffer.concat(packets.map((p) => mqttPacket.generate(p))))
  }

  until(match: (p: Packet) => boolean, count = 1, ms = WAIT_MS): Promise<void> {
    const enough = () => this.received.filter(match).length >= count
    if (enough()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!enough()) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(new Error(`only ${this.received.filter(match).length} of ${count} packets within ${ms} ms`))
      }, ms)
      this.#waiters.add(check)
    })
  }

  pubackIds(): number[] {
    return this.received
      .filter((p) => p.cmd === 'puback')
      .map((p) => (p as mqttPacket.IPubackPacket).messageId as number)
  }

  close(): void {
    this.#socket.destroy()
  }
}

const publish = (messageId: number, topic: string, payload: string, qos: 0 | 1 = 1): Packet => ({
  cmd: 'publish',
  messageId,
  topic,
  payload: Buffer.from(payload),
  qos,
  dup: false,
  retain: false,
})

const isPuback = (p: Packet) => p.cmd === 'puback'

describe('PUBACKs leave in the order their PUBLISHes arrived [MQTT-4.6.0-2]', () => {
  let t: TestNode
  let chatId: string
  let port: number

  before(async () => {
    t = await startTestNode()
    port = Number(new URL(t.mqttUrl).port)
    const alice = await Device.connect(t.mqttUrl, 'alice', 'setup', await t.token('alice'))
    chatId = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    await alice.close()
  })
  after(() => t.close())

  it('two stored sends, then a refused one (not JSON): acks 1, 2, 3', async () => {
    const c = await RawConnection.open(port, 'alice/raw1', await t.token('alice'))
    try {
      const topic = `c/${chatId}/send`
      c.write([
        publish(1, topic, '{"clientMsgId":"a","text":"ok 1"}'),
        publish(2, topic, '{"clientMsgId":"b","text":"ok 2"}'),
        publish(3, topic, 'not json'),
      ])
      await c.until(isPuback, 3)
      assert.deepEqual(c.pubackIds(), [1, 2, 3])
      // The two good ones are stored, in order; the refused one is not.
      const page = await t.node.stores.messages.after(chatId, 1, 10)
      assert.deepEqual(
        page.filter((m) => m.senderId === 'alice').map((m) => m.clientMsgId),
        ['a', 'b'],
      )
    } finally {
      c.close()
    }
  })

  it('the same with mqtt.js: its PUBACKs come back in the order of its PUBLISH packet ids', async () => {
    const client = await connectClient(t.mqttUrl, {
      clientId: 'alice/mqttjs',
      password: await t.token('alice'),
    })
    try {
      const sent: number[] = []
      const acked: number[] = []
      client.on('packetsend', (p) => {
        if (p.cmd === 'publish' && p.qos === 1) sent.push(p.messageId as number)
      })
      client.on('packetreceive', (p) => {
        if (p.cmd === 'puback') acked.push(p.messageId as number)
      })
      const topic = `c/${chatId}/send`
      // Corked: the three PUBLISHes leave in one TCP segment and arrive in one socket read.
      const stream = client.stream as unknown as { cork(): void; uncork(): void }
      stream.cork()
      const acks = [
        client.publishAsync(topic, '{"clientMsgId":"js-a","text":"ok 1"}', { qos: 1 }),
        client.publishAsync(topic, '{"clientMsgId":"js-b","text":"ok 2"}', { qos: 1 }),
        client.publishAsync(topic, 'not json', { qos: 1 }),
      ]
      process.nextTick(() => stream.uncork())
      await Promise.all(acks)
      assert.equal(sent.length, 3)
      assert.deepEqual(acked, sent)
    } finally {
      await client.endAsync()
    }
  })

  it('mosquitto_pub -l -q 1 gets every ack and exits 0', async () => {
    const token = await t.token('alice')
    const child = spawn(
      'mosquitto_pub',
      [
        ...['-h', '127.0.0.1', '-p', String(port), '-V', 'mqttv311', '-q', '1', '-l', '-d'],
        ...['-i', 'alice/mosq', '-u', 'alice', '-P', token, '-t', `c/${chatId}/send`],
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      out += d
    })
    child.stdin.end('{"clientMsgId":"m-a","text":"ok 1"}\n{"clientMsgId":"m-b","text":"ok 2"}\nnot json\n')
    const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MS)
    const [code] = await once(child, 'exit')
    clearTimeout(timer)
    assert.equal(code, 0, out)
    const sent = [...out.matchAll(/sending PUBLISH \(d\d, q1, r\d, m(\d+),/g)].map((m) => Number(m[1]))
    const acked = [...out.matchAll(/received PUBACK \(Mid: (\d+)/g)].map((m) => Number(m[1]))
    assert.equal(sent.length, 3, out)
    assert.deepEqual(acked, sent, out)
    const page = await t.node.stores.messages.after(chatId, 1, 100)
    const mine = page.map((m) => m.clientMsgId)
    assert.ok(mine.includes('m-a') && mine.includes('m-b'), 'both good lines are stored')
  })

  it('mixed topics in one read: sends, requests, refusals, typing, self, QoS 0 among them', async () => {
    const c = await RawConnection.open(port, 'alice/raw2', await t.token('alice'))
    try {
      c.write([
        {
          cmd: 'subscribe',
          messageId: 100,
          subscriptions: [
            { topic: 'd/alice/raw2/res', qos: 1 },
            { topic: 'd/alice/raw2/err', qos: 1 },
          ],
        },
      ])
      await c.until((p) => p.cmd === 'suback')
      const send = `c/${chatId}/send`
      c.write([
        publish(1, send, '{"clientMsgId":"x1","text":"stored"}'),
        publish(2, 'u/bob/self', 'not mine'),
        publish(3, 'req/chat.list', '{"id":"r1"}'),
        publish(4, send, '{"clientMsgId":"x2","text":"stored too"}'),
        publish(5, `c/${chatId}/typing`, '{"state":"typing"}'),
        publish(0, 'u/alice/self', 'QoS 0: no ack', 0),
        publish(6, 'req/whoami', 'not json'),
        publish(7, 'u/alice/self', 'relayed'),
        publish(8, 'c/d_nobody/send', '{"clientMsgId":"x3","text":"not a member"}'),
        publish(9, send, '{"clientMsgId":"x4","text":"last"}'),
        publish(10, 'req/history', JSON.stringify({ id: 'r2', params: { chatId } })),
      ])
      await c.until(isPuback, 10)
      assert.deepEqual(c.pubackIds(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      // Every outcome still reached the device: replies, and notices for the refusals.
      await c.until((p) => p.cmd === 'publish' && p.topic === 'd/alice/raw2/res', 2)
      await c.until((p) => p.cmd === 'publish' && p.topic === 'd/alice/raw2/err', 3)
    } finally {
      c.close()
    }
  })
})
