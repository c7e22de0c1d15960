import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createConnection, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { MqttClient } from 'mqtt'
import { WebSocket } from 'ws'
import { boundedKeepalive } from '../broker/keepalive-range.ts'
import { MqttStrictReader } from '../broker/mqtt-strict.ts'
import { loadConfig } from '../config/load.ts'
import { connectClient, nextMessage, recordMessages, subscribe, WAIT_MS } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import {
  CLEAN,
  type ConnectFields,
  connect,
  hex,
  PASS,
  packet,
  str,
  USER,
  u16,
  WILL,
  WILL_RETAIN,
  willQos,
} from './helpers/mqtt-bytes.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const CONNACK_OK = hex('20 02 00 00')

interface Case {
  name: string
  /** The rule the server names when it closes. */
  rule: string
  /** 'connect': the bytes are the connection's first; 'connected': they follow an accepted CONNECT. */
  when: 'connect' | 'connected'
  bytes: (token: string, clientId: string) => Buffer
  /** A CONNACK the server sends before closing (only for an unsupported protocol level). */
  connack?: Buffer
}

const user = (token: string, clientId: string | Buffer, more: Partial<ConnectFields> = {}) =>
  connect({ flags: USER | PASS | CLEAN, clientId, username: 'alice', password: token, ...more })

/** One hand-written byte sequence per rule; each must close the connection. */
const cases: Case[] = [
  // UTF-8 strings (§1.5.3)
  {
    name: 'lone surrogate ED A0 80 as user name, with a valid token',
    rule: 'MQTT-1.5.3-1',
    when: 'connect',
    bytes: (t, id) => user(t, id, { username: hex('ed a0 80') }),
  },
  {
    name: 'overlong encoding C0 AF in the client id',
    rule: 'MQTT-1.5.3-1',
    when: 'connect',
    bytes: (t, id) => user(t, Buffer.concat([Buffer.from(id), hex('c0 af')])),
  },
  {
    name: 'a 3-byte sequence cut short at the end of the user name',
    rule: 'MQTT-1.5.3-1',
    when: 'connect',
    bytes: (t, id) => user(t, id, { username: hex('61 e2 82') }),
  },
  {
    name: 'a code point past U+10FFFF (F4 90 80 80) in the user name',
    rule: 'MQTT-1.5.3-1',
    when: 'connect',
    bytes: (t, id) => user(t, id, { username: hex('f4 90 80 80') }),
  },
  {
    name: 'U+0000 in the user name',
    rule: 'MQTT-1.5.3-2',
    when: 'connect',
    bytes: (t, id) => user(t, id, { username: 'ali\u0000ce' }),
  },
  {
    name: 'U+0000 in the client id',
    rule: 'MQTT-1.5.3-2',
    when: 'connect',
    bytes: (t, id) => user(t, `${id}\u0000`),
  },
  {
    name: 'ill-formed UTF-8 in the will topic',
    rule: 'MQTT-1.5.3-1',
    when: 'connect',
    bytes: (t, id) =>
      user(t, id, {
        flags: USER | PASS | CLEAN | WILL,
        will: { topic: Buffer.concat([Buffer.from('u/alice/'), hex('ff')]), message: 'bye' },
      }),
  },
  {
    name: 'ill-formed UTF-8 in a PUBLISH topic',
    rule: 'MQTT-1.5.3-1',
    when: 'connected',
    bytes: () => packet(0x30, str(hex('75 2f ed a0 80')), Buffer.from('x')),
  },
  {
    name: 'U+0000 in a topic filter',
    rule: 'MQTT-1.5.3-2',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('u/alice/\u0000'), hex('01')),
  },
  // CONNECT (§3.1)
  {
    name: 'will QoS 3 (10 .. 04 1E ..), no credentials',
    rule: 'MQTT-3.1.2-14',
    when: 'connect',
    bytes: (_t, id) =>
      connect({ flags: 0x1e, clientId: id, will: { topic: 'u/alice/self', message: 'will fired' } }),
  },
  {
    name: 'will QoS 3 with a valid token',
    rule: 'MQTT-3.1.2-14',
    when: 'connect',
    bytes: (t, id) =>
      user(t, id, {
        flags: USER | PASS | CLEAN | WILL | willQos(3),
        will: { topic: 'u/alice/self', message: 'will fired' },
      }),
  },
  {
    name: 'will QoS 1 without the will flag',
    rule: 'MQTT-3.1.2-13',
    when: 'connect',
    bytes: (t, id) => user(t, id, { flags: USER | PASS | CLEAN | willQos(1) }),
  },
  {
    name: 'will retain without the will flag',
    rule: 'MQTT-3.1.2-15',
    when: 'connect',
    bytes: (t, id) => user(t, id, { flags: USER | PASS | CLEAN | WILL_RETAIN }),
  },
  {
    name: 'password flag without the user name flag',
    rule: 'MQTT-3.1.2-22',
    when: 'connect',
    bytes: (t, id) => connect({ flags: PASS | CLEAN, clientId: id, password: t }),
  },
  {
    name: 'reserved connect flag set',
    rule: 'MQTT-3.1.2-3',
    when: 'connect',
    bytes: (t, id) => user(t, id, { flags: USER | PASS | CLEAN | 0x01 }),
  },
  {
    name: 'CONNECT fixed-header flags 0001',
    rule: 'MQTT-2.2.2-2',
    when: 'connect',
    bytes: (t, id) => user(t, id, { first: 0x11 }),
  },
  {
    name: 'protocol name MQTX',
    rule: 'MQTT-3.1.2-1',
    when: 'connect',
    bytes: (t, id) => user(t, id, { name: 'MQTX' }),
  },
  {
    name: 'protocol level 5 (MQTT 5) is answered CONNACK 1, then closed',
    rule: 'MQTT-3.1.2-2',
    when: 'connect',
    bytes: (t, id) => user(t, id, { level: 5 }),
    connack: hex('20 02 00 01'),
  },
  {
    name: 'protocol level 0x84 (bridge) is answered CONNACK 1, then closed',
    rule: 'MQTT-3.1.2-2',
    when: 'connect',
    bytes: (t, id) => user(t, id, { level: 0x84 }),
    connack: hex('20 02 00 01'),
  },
  {
    name: 'two bytes after the last CONNECT field',
    rule: 'MQTT-3.1.4-1',
    when: 'connect',
    bytes: (t, id) => user(t, id, { extra: hex('00 00') }),
  },
  {
    name: 'CONNECT cut short inside its variable header',
    rule: 'MQTT-3.1.4-1',
    when: 'connect',
    bytes: () => packet(0x10, str('MQTT'), hex('04')),
  },
  {
    name: 'CONNECT without a client id',
    rule: 'MQTT-3.1.3-3',
    when: 'connect',
    bytes: () => packet(0x10, str('MQTT'), hex('04 02 00 1e')),
  },
  {
    name: 'user name flag set, no user name',
    rule: 'MQTT-3.1.2-19',
    when: 'connect',
    bytes: (_t, id) => connect({ flags: USER | CLEAN, clientId: id }),
  },
  {
    name: 'password flag set, no password',
    rule: 'MQTT-3.1.2-21',
    when: 'connect',
    bytes: (_t, id) => connect({ flags: USER | PASS | CLEAN, clientId: id, username: 'alice' }),
  },
  {
    name: 'will flag set, no will topic or message',
    rule: 'MQTT-3.1.2-9',
    when: 'connect',
    bytes: (_t, id) => connect({ flags: WILL | CLEAN, clientId: id }),
  },
  {
    name: 'wildcard in the will topic',
    rule: 'MQTT-4.7.1-1',
    when: 'connect',
    bytes: (t, id) =>
      user(t, id, { flags: USER | PASS | CLEAN | WILL, will: { topic: 'u/alice/#', message: 'x' } }),
  },
  {
    name: 'empty will topic',
    rule: 'MQTT-4.7.3-1',
    when: 'connect',
    bytes: (t, id) => user(t, id, { flags: USER | PASS | CLEAN | WILL, will: { topic: '', message: 'x' } }),
  },
  {
    name: 'a remaining length of five bytes',
    rule: 'MQTT-4.8.0-1',
    when: 'connect',
    bytes: () => hex('10 80 80 80 80 01'),
  },
  // Connection state (§3.1.0)
  {
    name: 'PINGREQ before CONNECT',
    rule: 'MQTT-3.1.0-1',
    when: 'connect',
    bytes: () => hex('c0 00'),
  },
  {
    name: 'PUBLISH before CONNECT',
    rule: 'MQTT-3.1.0-1',
    when: 'connect',
    bytes: () => packet(0x30, str('u/alice/self'), Buffer.from('hi')),
  },
  {
    name: 'a second CONNECT',
    rule: 'MQTT-3.1.0-2',
    when: 'connected',
    bytes: (t, id) => user(t, id),
  },
  // PUBLISH (§3.3)
  {
    name: 'PUBLISH QoS 0 with DUP 1 (38 ..)',
    rule: 'MQTT-3.3.1-2',
    when: 'connected',
    bytes: () => packet(0x38, str('u/alice/self'), Buffer.from('hi')),
  },
  {
    name: 'PUBLISH QoS 3',
    rule: 'MQTT-3.3.1-4',
    when: 'connected',
    bytes: () => packet(0x36, str('u/alice/self'), u16(1), Buffer.from('hi')),
  },
  {
    name: 'PUBLISH QoS 1 with packet id 0',
    rule: 'MQTT-2.3.1-1',
    when: 'connected',
    bytes: () => packet(0x32, str('u/alice/self'), u16(0), Buffer.from('hi')),
  },
  {
    name: 'PUBLISH QoS 1 without a packet id',
    rule: 'MQTT-2.3.1-1',
    when: 'connected',
    bytes: () => packet(0x32, str('u/alice/self')),
  },
  {
    name: "'+' in a PUBLISH topic",
    rule: 'MQTT-3.3.2-2',
    when: 'connected',
    bytes: () => packet(0x30, str('u/+/self'), Buffer.from('hi')),
  },
  {
    name: "'#' in a PUBLISH topic",
    rule: 'MQTT-3.3.2-2',
    when: 'connected',
    bytes: () => packet(0x32, str('u/alice/#'), u16(5), Buffer.from('hi')),
  },
  {
    name: 'empty PUBLISH topic',
    rule: 'MQTT-4.7.3-1',
    when: 'connected',
    bytes: () => hex('30 02 00 00'),
  },
  {
    name: 'PUBLISH topic longer than the packet',
    rule: 'MQTT-3.3.2-1',
    when: 'connected',
    bytes: () => hex('30 03 00 05 61'),
  },
  // Acknowledgements (§3.4–3.7)
  {
    name: 'PUBACK of remaining length 0 (40 00)',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('40 00'),
  },
  {
    name: 'PUBREC of remaining length 0 (50 00)',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('50 00'),
  },
  {
    name: 'PUBREL of remaining length 3',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('62 03 00 01 00'),
  },
  {
    name: 'PUBCOMP of remaining length 1',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('70 01 00'),
  },
  {
    name: 'PUBACK of packet id 0',
    rule: 'MQTT-2.3.1-6',
    when: 'connected',
    bytes: () => hex('40 02 00 00'),
  },
  {
    name: 'PUBACK fixed-header flags 0001',
    rule: 'MQTT-2.2.2-2',
    when: 'connected',
    bytes: () => hex('41 02 00 01'),
  },
  {
    name: 'PUBREL fixed-header flags 0000',
    rule: 'MQTT-3.6.1-1',
    when: 'connected',
    bytes: () => hex('60 02 00 01'),
  },
  {
    name: 'UNSUBACK from a client',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('b0 02 00 01'),
  },
  {
    name: 'CONNACK from a client',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('20 02 00 00'),
  },
  {
    name: 'reserved packet type 0',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('00 00'),
  },
  {
    name: 'reserved packet type 15',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('f0 00'),
  },
  // SUBSCRIBE and UNSUBSCRIBE (§3.8, §3.10)
  {
    name: 'SUBSCRIBE fixed-header flags 0000',
    rule: 'MQTT-3.8.1-1',
    when: 'connected',
    bytes: () => packet(0x80, u16(1), str('u/alice/self'), hex('01')),
  },
  {
    name: 'UNSUBSCRIBE fixed-header flags 0000',
    rule: 'MQTT-3.10.1-1',
    when: 'connected',
    bytes: () => packet(0xa0, u16(1), str('u/alice/self')),
  },
  {
    name: 'SUBSCRIBE without a topic filter',
    rule: 'MQTT-3.8.3-3',
    when: 'connected',
    bytes: () => hex('82 02 00 01'),
  },
  {
    name: 'UNSUBSCRIBE without a topic filter',
    rule: 'MQTT-3.10.3-2',
    when: 'connected',
    bytes: () => hex('a2 02 00 01'),
  },
  {
    name: 'SUBSCRIBE asking for QoS 3',
    rule: 'MQTT-3.8.3-4',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('u/alice/self'), hex('03')),
  },
  {
    name: 'SUBSCRIBE with a reserved option bit set',
    rule: 'MQTT-3.8.3-4',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('u/alice/self'), hex('05')),
  },
  {
    name: 'SUBSCRIBE filter without its QoS byte',
    rule: 'MQTT-3.8.3-4',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('u/alice/self')),
  },
  {
    name: 'SUBSCRIBE with packet id 0',
    rule: 'MQTT-2.3.1-1',
    when: 'connected',
    bytes: () => packet(0x82, u16(0), str('u/alice/self'), hex('01')),
  },
  {
    name: 'UNSUBSCRIBE with packet id 0',
    rule: 'MQTT-2.3.1-1',
    when: 'connected',
    bytes: () => packet(0xa2, u16(0), str('u/alice/self')),
  },
  {
    name: "filter 'a/#/b' (closed, not answered 0x80)",
    rule: 'MQTT-4.7.1-2',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('a/#/b'), hex('01')),
  },
  {
    name: "filter 'a#'",
    rule: 'MQTT-4.7.1-2',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('a#'), hex('00')),
  },
  {
    name: "filter 'a+' (closed, not answered 0x80)",
    rule: 'MQTT-4.7.1-3',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('a+'), hex('01')),
  },
  {
    name: "filter '+a/b' after a valid one",
    rule: 'MQTT-4.7.1-3',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str('u/alice/self'), hex('01'), str('+a/b'), hex('01')),
  },
  {
    name: "UNSUBSCRIBE of filter 'a/#/b'",
    rule: 'MQTT-4.7.1-2',
    when: 'connected',
    bytes: () => packet(0xa2, u16(1), str('a/#/b')),
  },
  {
    name: 'empty topic filter',
    rule: 'MQTT-4.7.3-1',
    when: 'connected',
    bytes: () => packet(0x82, u16(1), str(''), hex('01')),
  },
  {
    name: 'topic filter longer than the packet',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('82 06 00 01 00 0a 61 62'),
  },
  // PINGREQ and DISCONNECT (§3.12, §3.14)
  {
    name: 'PINGREQ with a byte of body',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('c0 01 00'),
  },
  {
    name: 'PINGREQ fixed-header flags 0001',
    rule: 'MQTT-2.2.2-2',
    when: 'connected',
    bytes: () => hex('c1 00'),
  },
  {
    name: 'DISCONNECT with a byte of body',
    rule: 'MQTT-4.8.0-1',
    when: 'connected',
    bytes: () => hex('e0 01 00'),
  },
  {
    name: 'DISCONNECT fixed-header flags 0001',
    rule: 'MQTT-3.14.1-1',
    when: 'connected',
    bytes: () => hex('e1 00'),
  },
]

/** A raw MQTT client: every byte it receives, and whether the server closed it. */
class Raw {
  received = Buffer.alloc(0)
  closed = false
  readonly #waiters = new Set<() => void>()
  readonly socket: Socket | WebSocket

  constructor(socket: Socket | WebSocket) {
    this.socket = socket
    const on = (d: Buffer) => {
      this.received = Buffer.concat([this.received, d])
      this.#wake()
    }
    const gone = () => {
      this.closed = true
      this.#wake()
    }
    if (socket instanceof WebSocket) {
      socket.on('message', (d: Buffer) => on(d))
      socket.on('close', gone)
    } else {
      socket.on('data', on)
      socket.on('close', gone)
    }
    // The server may close while bytes are still on their way.
    socket.on('error', () => {})
  }

  static async tcp(port: number): Promise<Raw> {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.setNoDelay(true)
    await once(socket, 'connect')
    return new Raw(socket)
  }

  static async ws(url: string): Promise<Raw> {
    const socket = new WebSocket(url, 'mqtt')
    await once(socket, 'open')
    return new Raw(socket)
  }

  send(bytes: Buffer): void {
    if (this.socket instanceof WebSocket) this.socket.send(bytes)
    else this.socket.write(bytes)
  }

  /** Resolves when the condition holds, checked on every byte and on close. */
  until(condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    if (condition()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition()) return
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(
          new Error(`${what} did not happen within ${ms} ms (received ${this.received.toString('hex')})`),
        )
      }, ms)
      this.#waiters.add(check)
    })
  }

  /** Sends a CONNECT and resolves once it is accepted. */
  async connected(connectBytes: Buffer): Promise<void> {
    this.send(connectBytes)
    await this.until(() => this.received.length >= 4 || this.closed, 'CONNACK')
    assert.deepEqual(this.received.subarray(0, 4), CONNACK_OK, 'the CONNECT is accepted')
  }

  whenClosed(ms = WAIT_MS): Promise<void> {
    return this.until(() => this.closed, 'close', ms)
  }

  end(): void {
    if (this.socket instanceof WebSocket) this.socket.terminate()
    else this.socket.destroy()
  }

  #wake(): void {
    for (const w of this.#waiters) w()
  }
}

/** Feeds bytes to a fresh reader in the chunks given; returns the rule it names and the bytes it passed. */
function verdict(chunks: Buffer[]): { rule: string | undefined; passed: number } {
  const reader = new MqttStrictReader()
  let passed = 0
  for (const c of chunks) {
    const p = reader.check(c)
    passed += p
    if (p !== c.length) break
  }
  return { rule: reader.violation?.rule, passed }
}

function splits(bytes: Buffer): Buffer[][] {
  const out: Buffer[][] = [[bytes]]
  for (let k = 1; k < bytes.length; k++) out.push([bytes.subarray(0, k), bytes.subarray(k)])
  out.push([...bytes].map((b) => Buffer.from([b])))
  return out
}

/** Many connects from one address and user in a few seconds: connect rate limits off. */
const NO_CONNECT_LIMITS = { NATTER_LIMIT_CONNECTS_PER_IP: 'off', NATTER_LIMIT_CONNECTS_PER_USER: 'off' }

const FAKE_TOKEN = 'header.payload.signature'
const prefixOf = (c: Case, token: string, id: string) =>
  c.when === 'connected' ? user(token, id) : Buffer.alloc(0)

describe('MQTT 3.1.1 strict reader, every split of every case', () => {
  for (const c of cases) {
    it(`${c.rule}: ${c.name}`, () => {
      const prefix = prefixOf(c, FAKE_TOKEN, 'alice/unit')
      const bytes = Buffer.concat([prefix, c.bytes(FAKE_TOKEN, 'alice/unit')])
      for (const chunks of splits(bytes)) {
        const v = verdict(chunks)
        assert.equal(v.rule, c.rule, `split ${chunks.map((x) => x.length).join('+')}`)
        // Never the whole bad packet; always every packet before it.
        assert.ok(v.passed >= prefix.length && v.passed < bytes.length, `passed ${v.passed}`)
      }
      assert.equal(verdict([bytes]).passed, prefix.length, 'whole packets before the bad one pass')
    })
  }

  it('passes valid packets whole, however they are split, PUBLISH payloads unread', () => {
    const bytes = Buffer.concat([
      user(FAKE_TOKEN, 'alice/unit'),
      packet(0x82, u16(1), str('u/alice/self'), hex('01'), str('a/+/b'), hex('00'), str('#'), hex('02')),
      packet(0x32, str('c/g_1/send'), u16(7), Buffer.alloc(3000, 0xff)),
      packet(0x3b, str('u/alice/self'), u16(8), Buffer.alloc(0)),
      packet(0x30, str('u/😀'), Buffer.from([0xed, 0xa0, 0x80])),
      hex('40 02 00 01 50 02 00 02 62 02 00 03 70 02 00 04 c0 00'),
      packet(0xa2, u16(9), str('u/alice/self'), str('+')),
      hex('e0 00'),
    ])
    for (const chunks of splits(bytes))
      assert.deepEqual(verdict(chunks), { rule: undefined, passed: bytes.length })
  })
})

describe('MQTT 3.1.1 strictness on a real node', () => {
  let t: TestNode
  let token: string
  let n = 0
  const nextId = () => `alice/raw${++n}`
  before(async () => {
    t = await startTestNode(NO_CONNECT_LIMITS)
    token = await t.token('alice')
  })
  after(() => t.close())

  for (const c of cases) {
    it(`closes the connection: ${c.rule} ${c.name}`, async () => {
      const raw = await Raw.tcp(t.node.ports.mqtt)
      const id = nextId()
      try {
        if (c.when === 'connected') await raw.connected(user(token, id))
        const before = raw.received.length
        raw.send(c.bytes(token, id))
        await raw.whenClosed()
        // Nothing answers the bad packet (no CONNACK to a bad CONNECT [MQTT-3.1.4-1], no ack);
        // an unsupported level gets CONNACK 1 [MQTT-3.1.2-2].
        assert.equal(raw.received.subarray(before).toString('hex'), c.connack?.toString('hex') ?? '')
      } finally {
        raw.end()
      }
    })
  }

  it('closes over WebSocket too, and other clients carry on', async () => {
    const bob = await connectClient(t.mqttUrl, { clientId: 'bob/phone', password: await t.token('bob') })
    await subscribe(bob, ['u/bob/self'])
    const picks = [
      'lone surrogate ED A0 80',
      'PUBREC of remaining length 0',
      "filter 'a/#/b'",
      'second CONNECT',
    ]
    for (const pick of picks) {
      const c = cases.find((x) => x.name.includes(pick))
      assert.ok(c, pick)
      const raw = await Raw.ws(t.wsUrl)
      const id = nextId()
      if (c.when === 'connected') await raw.connected(user(token, id))
      const before = raw.received.length
      // Split across two frames: the reader follows packets, not frames.
      const bytes = c.bytes(token, id)
      raw.send(bytes.subarray(0, 3))
      raw.send(bytes.subarray(3))
      await raw.whenClosed()
      assert.equal(raw.received.length, before, c.name)
    }
    const got = nextMessage(bob, 'u/bob/self')
    await bob.publishAsync('u/bob/self', 'still here', { qos: 1 })
    assert.equal((await got).payload.toString(), 'still here')
    await bob.endAsync()
  })

  describe('wills', () => {
    let watcher: MqttClient
    let marker: MqttClient
    let seen: ReturnType<typeof recordMessages>
    before(async () => {
      watcher = await connectClient(t.mqttUrl, { clientId: 'alice/watcher', password: token })
      seen = recordMessages(watcher)
      assert.deepEqual(await subscribe(watcher, ['u/alice/self']), [1])
      marker = await connectClient(t.mqttUrl, { clientId: 'alice/marker', password: token })
    })
    after(async () => {
      await watcher.endAsync()
      await marker.endAsync()
    })

    /** Resolves once the watcher has received a message with this payload. */
    function received(payload: string): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!seen.some((m) => m.payload === payload)) return
          clearTimeout(timer)
          watcher.off('message', check)
          resolve()
        }
        const timer = setTimeout(() => {
          watcher.off('message', check)
          reject(new Error(`no ${payload} within ${WAIT_MS} ms`))
        }, WAIT_MS)
        watcher.on('message', check)
        check()
      })
    }

    /**
     * Publishes a marker and returns what the watcher received up to it: a will published
     * before the marker was sent arrives before it.
     */
    async function barrier(label: string): Promise<string[]> {
      const got = received(label)
      await marker.publishAsync('u/alice/self', label, { qos: 1 })
      await got
      const payloads = seen.map((m) => m.payload)
      seen.length = 0
      return payloads
    }

    it('a CONNECT with will QoS 3 gets no CONNACK and its will never fires [MQTT-3.1.2-14]', async () => {
      await barrier('start')
      const raw = await Raw.tcp(t.node.ports.mqtt)
      raw.send(
        user(token, 'alice/willqos3', {
          flags: USER | PASS | CLEAN | WILL | willQos(3),
          will: { topic: 'u/alice/self', message: 'will fired' },
        }),
      )
      await raw.whenClosed()
      assert.equal(raw.received.length, 0)
      assert.deepEqual(await barrier('after'), ['after'])
    })

    it('a connected client closed for a violation has its will published [MQTT-3.1.2-8]', async () => {
      await barrier('start')
      const raw = await Raw.tcp(t.node.ports.mqtt)
      await raw.connected(
        user(token, 'alice/willok', {
          flags: USER | PASS | CLEAN | WILL | willQos(1),
          will: { topic: 'u/alice/self', message: 'gone' },
        }),
      )
      raw.send(hex('50 00'))
      await raw.whenClosed()
      assert.equal(raw.received.length, 4, 'no truncated PUBREL (62 02) or anything else')
      await received('gone')
    })
  })

  describe('valid edge cases are accepted', () => {
    it('a user name of 4-byte characters, a BOM and a noncharacter; keep alive 0; MQTT 3.1', async () => {
      for (const [name, username, fields] of [
        ['4-byte UTF-8', '😀𝄞', {}],
        ['U+FEFF (BOM) and U+FFFF', '\ufeffalice\uffff', {}],
        ['keep alive 0', 'alice', { keepalive: 0 }],
        ['MQTT 3.1', 'alice', { name: 'MQIsdp', level: 3 }],
        ['an empty user name', '', {}],
      ] as const) {
        const raw = await Raw.tcp(t.node.ports.mqtt)
        await raw.connected(user(token, nextId(), { username, ...fields })).catch((err: Error) => {
          throw new Error(`${name}: ${err.message}`)
        })
        raw.end()
      }
    })

    it('survives a PUBREC for a packet id it never sent, on a persistent session', async () => {
      // aedes answers a PUBREC through the session's persistence, which read the topic of the
      // PUBREL it makes (it has none) and threw: these four bytes stopped the node.
      const raw = await Raw.tcp(t.node.ports.mqtt)
      await raw.connected(user(token, nextId(), { flags: USER | PASS }))
      raw.send(hex('50 02 00 01 c0 00'))
      await raw.until(() => raw.closed || raw.received.includes(hex('d0 00')), 'a close or a PINGRESP')
      raw.end()
      const again = await Raw.tcp(t.node.ports.mqtt)
      await again.connected(user(token, nextId()))
      again.end()
    })

    it('a syntactically valid CONNECT that Natter refuses gets its CONNACK, not a silent close', async () => {
      const raw = await Raw.tcp(t.node.ports.mqtt)
      raw.send(connect({ flags: CLEAN, clientId: '' }))
      await raw.until(() => raw.received.length >= 4, 'CONNACK')
      assert.deepEqual(raw.received.subarray(0, 4), hex('20 02 00 02'))
      await raw.whenClosed()
    })

    it('empty payloads, DUP=1 QoS 1, the longest topic, valid wildcard filters, pings, split bytes', async () => {
      const raw = await Raw.tcp(t.node.ports.mqtt)
      await raw.connected(user(token, nextId()))
      const expect: Buffer[] = []
      const exchange = async (send: Buffer, answer: Buffer) => {
        raw.send(send)
        expect.push(answer)
        const want = Buffer.concat([CONNACK_OK, ...expect])
        await raw.until(() => raw.received.length >= want.length || raw.closed, answer.toString('hex'))
        assert.equal(raw.received.toString('hex'), want.toString('hex'))
      }
      await exchange(packet(0x32, str('u/alice/self'), u16(1)), hex('40 02 00 01'))
      await exchange(packet(0x3a, str('u/alice/self'), u16(2), Buffer.from('again')), hex('40 02 00 02'))
      // 65,535 bytes of topic: well formed, so acknowledged (and dropped: no such topic).
      const longest = `u/alice/self/${'a'.repeat(65_535 - 13)}`
      await exchange(packet(0x32, str(longest), u16(3), Buffer.from('x')), hex('40 02 00 03'))
      // Valid filters Natter does not grant: 0x80 each, and the connection stays.
      await exchange(
        packet(
          0x82,
          u16(4),
          str('a/+/b'),
          hex('01'),
          str('#'),
          hex('00'),
          str('+'),
          hex('01'),
          str('u/😀'),
          hex('01'),
        ),
        hex('90 06 00 04 80 80 80 80'),
      )
      await exchange(packet(0xa2, u16(5), str('a/+/b')), hex('b0 02 00 05'))
      await exchange(hex('c0 00'), hex('d0 00'))
      // A PUBLISH and a PINGREQ one byte at a time.
      const bytes = Buffer.concat([
        packet(0x32, str('u/alice/self'), u16(6), Buffer.from('bytes')),
        hex('c0 00'),
      ])
      expect.push(hex('40 02 00 06 d0 00'))
      for (const b of bytes) {
        raw.send(Buffer.from([b]))
        await new Promise((resolve) => setImmediate(resolve))
      }
      const want = Buffer.concat([CONNACK_OK, ...expect])
      await raw.until(() => raw.received.length >= want.length || raw.closed, 'acks of split bytes')
      assert.equal(raw.received.toString('hex'), want.toString('hex'))
      assert.equal(raw.closed, false)
      raw.send(hex('e0 00'))
      await raw.whenClosed()
    })
  })
})

describe('keep alive within the configured range', () => {
  it('bounds 0 and values over the maximum to it, raises values under the minimum', () => {
    const range = { minSeconds: 10, maxSeconds: 300 }
    assert.equal(boundedKeepalive(0, range), 300)
    assert.equal(boundedKeepalive(65_535, range), 300)
    assert.equal(boundedKeepalive(301, range), 300)
    assert.equal(boundedKeepalive(300, range), 300)
    assert.equal(boundedKeepalive(60, range), 60)
    assert.equal(boundedKeepalive(10, range), 10)
    assert.equal(boundedKeepalive(1, range), 10)
  })

  it('refuses a minimum above the maximum', () => {
    assert.throws(
      () =>
        loadConfig({
          env: {
            NATTER_KEEPALIVE_MIN_SECONDS: '60',
            NATTER_KEEPALIVE_MAX_SECONDS: '30',
            NATTER_JWT_SECRET: 'x'.repeat(32),
          },
        }),
      /NATTER_KEEPALIVE_MIN_SECONDS/,
    )
  })

  describe('on a node with keep alive from 2 to 2 s', () => {
    let t: TestNode
    before(async () => {
      t = await startTestNode({
        ...NO_CONNECT_LIMITS,
        NATTER_KEEPALIVE_MIN_SECONDS: '2',
        NATTER_KEEPALIVE_MAX_SECONDS: '2',
        // A held publish must be let go before the keep alive runs out.
        NATTER_LIMIT_HOLD_MS: '1000',
      })
    })
    after(() => t.close())

    it('closes a silent client after 1.5 × the bounded keep alive, whatever it asked for', async () => {
      const token = await t.token('alice')
      const closeAfter = async (keepalive: number) => {
        const raw = await Raw.tcp(t.node.ports.mqtt)
        await raw.connected(user(token, `alice/ka${keepalive}`, { keepalive }))
        const from = Date.now()
        await raw.whenClosed(15_000)
        return Date.now() - from
      }
      // 0 (off) and 60 are bounded to 2 s, 1 is raised to 2 s: closed after about 3 s.
      const [off, long, short] = await Promise.all([closeAfter(0), closeAfter(60), closeAfter(1)])
      for (const [what, ms] of [
        ['keep alive 0', off],
        ['keep alive 60', long],
        ['keep alive 1', short],
      ] as const) {
        assert.ok(ms >= 2500 && ms < 8000, `${what}: closed after ${ms} ms`)
      }
    })

    it('keeps a client that sends PINGREQ in time', async () => {
      const raw = await Raw.tcp(t.node.ports.mqtt)
      await raw.connected(user(await t.token('alice'), 'alice/pinger', { keepalive: 0 }))
      for (let i = 1; i <= 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000))
        raw.send(hex('c0 00'))
        await raw.until(() => raw.received.length >= 4 + 2 * i || raw.closed, `PINGRESP ${i}`)
      }
      assert.equal(raw.closed, false, 'still connected after 5 s of pings')
      raw.end()
    })

    it('ends the presence of a client that connected with keep alive 0 and went silent', async () => {
      const lee = await Device.connect(t.mqttUrl, 'lee', 'phone', await t.token('lee'))
      await lee.request('chat.direct', { with: 'kim' })
      assert.deepEqual(await subscribe(lee.client, ['u/kim/presence']), [1])
      const presence = (online: boolean) => () =>
        lee.other.some(
          (o) => o.topic === 'u/kim/presence' && (o.body as { online: boolean }).online === online,
        )
      const raw = await Raw.tcp(t.node.ports.mqtt)
      await raw.connected(
        connect({
          flags: USER | PASS,
          clientId: 'kim/phone',
          username: 'kim',
          password: await t.token('kim'),
          keepalive: 0,
        }),
      )
      await lee.until(presence(true), 'kim online')
      const from = Date.now()
      await lee.until(presence(false), 'kim offline', 15_000)
      assert.ok(raw.closed)
      assert.ok(Date.now() - from < 8000)
      await lee.close()
    })
  })
})
