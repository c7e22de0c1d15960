import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, it } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { useFastPath } from '../broker/mqtt-fast-path.ts'
import { hex, packet, str, u16 } from './helpers/mqtt-bytes.ts'

type Seen = Array<{ packet: object; keys: string[] } | { error: string }>

/** Feeds the chunks to a parser and records what it emits: each packet with its key order, and errors. */
function run(chunks: Buffer[], fast: boolean): Seen {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  if (fast) assert.equal(useFastPath(parser, 4), true)
  const seen: Seen = []
  parser.on('packet', (p) => seen.push({ packet: p, keys: Object.keys(p) }))
  parser.on('error', (err) => seen.push({ error: err.message }))
  for (const c of chunks) parser.parse(c)
  return seen
}

// A small deterministic generator: the same streams on every run.
function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const payloadOf = (n: number) => Buffer.alloc(n, 0x61)

/** Well-formed packets of every kind a 3.1.1 client sends, PUBLISH and PUBACK at every shape. */
const GOOD: Buffer[] = [
  ...[0, 1, 2].flatMap((qos) =>
    [0, 1, 100, 200, 20_000].flatMap((size) =>
      [false, true].map((flag) =>
        mqttPacket.generate({
          cmd: 'publish',
          topic: size === 1 ? 'c/ünï/send' : `c/chat-${size}/send`,
          payload: payloadOf(size),
          qos: qos as 0 | 1 | 2,
          dup: qos > 0 && flag,
          retain: flag,
          ...(qos > 0 ? { messageId: 1 + size } : {}),
        }),
      ),
    ),
  ),
  mqttPacket.generate({ cmd: 'puback', messageId: 1 }),
  mqttPacket.generate({ cmd: 'puback', messageId: 65_535 }),
  mqttPacket.generate({ cmd: 'pubrel', messageId: 7 }),
  mqttPacket.generate({ cmd: 'pingreq' }),
  mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'u/a/inbox', qos: 1 }] }),
  mqttPacket.generate({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['u/a/inbox'] }),
  // A PUBLISH with an empty topic and one with an ill-formed UTF-8 topic: mqtt-packet reads both.
  packet(0x30, str(''), Buffer.from('x')),
  packet(0x32, str(Buffer.from([0xc3, 0x28])), u16(9), Buffer.from('y')),
]

/** Packets mqtt-packet refuses, each for its own reason. */
const BAD: Buffer[] = [
  hex('36 03 0001 61'), // QoS 3
  hex('42 02 0001'), // PUBACK with reserved flags set
  packet(0x32, str('c/x/send')), // QoS 1 without room for its packet identifier
  hex('30 01 00'), // a topic length cut short
  hex('30 ff ff ff ff 01'), // a remaining length of five bytes
]

describe('the PUBLISH and PUBACK fast path on mqtt-packet', () => {
  it('emits what mqtt-packet emits, field for field, however the bytes are split', () => {
    const next = random(16)
    for (let stream = 0; stream < 300; stream++) {
      const packets = Array.from({ length: 1 + Math.floor(next() * 12) }, () => {
        const pool = stream % 10 === 9 ? [...GOOD, ...BAD] : GOOD
        return pool[Math.floor(next() * pool.length)] as Buffer
      })
      const bytes = Buffer.concat(packets)
      // Whole in one chunk, one byte at a time (mqtt-packet takes quadratic time over a large
      // packet so cut: not for streams with the 20 KB ones), and at random cuts.
      const splits: Buffer[][] = [[bytes]]
      if (bytes.length < 4_000) splits.push([...bytes].map((b) => Buffer.from([b])))
      const cuts: Buffer[] = []
      for (let i = 0; i < bytes.length; ) {
        const size = 1 + Math.floor(next() * (next() < 0.5 ? 8 : 400))
        cuts.push(bytes.subarray(i, i + size))
        i += size
      }
      splits.push(cuts)
      for (const chunks of splits) {
        assert.deepStrictEqual(
          run(chunks, true),
          run(chunks, false),
          `stream ${stream}, ${chunks.length} chunks`,
        )
      }
    }
  })

  it('keeps byte order when the handler parses the next chunk before it returns', () => {
    // aedes' packet handler reads the socket again when it completes at once: that chunk's
    // packets must come after the rest of the chunk being read.
    const ids = [1, 2, 3, 4, 5, 6]
    const bytes = ids.map((id) => mqttPacket.generate({ cmd: 'puback', messageId: id }))
    const first = Buffer.concat(bytes.slice(0, 3))
    const second = Buffer.concat([bytes[3] as Buffer, (bytes[4] as Buffer).subarray(0, 1)])
    const third = Buffer.concat([(bytes[4] as Buffer).subarray(1), bytes[5] as Buffer])
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    useFastPath(parser, 4)
    const order: number[] = []
    const pending = [second, third]
    parser.on('packet', (p) => {
      order.push((p as mqttPacket.IPubackPacket).messageId as number)
      const chunk = pending.shift()
      if (chunk) parser.parse(chunk)
    })
    parser.parse(first)
    assert.deepEqual(order, ids)
  })

  it('is put only on MQTT 3.1 and 3.1.1 parsers', () => {
    assert.equal(useFastPath(mqttPacket.parser({ protocolVersion: 5 }), 5), false)
    assert.equal(useFastPath(mqttPacket.parser({ protocolVersion: 3 }), 3), true)
    assert.equal(useFastPath({}, 4), false)
  })

  it('reaches the parser aedes creates (aedes and Natter share one mqtt-packet)', () => {
    const fromAedes = createRequire(createRequire(import.meta.url).resolve('aedes'))(
      'mqtt-packet',
    ) as typeof mqttPacket
    assert.equal(useFastPath(fromAedes.parser(), 4), true)
  })
})
