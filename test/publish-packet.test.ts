import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { encodePublish } from '../services/delivery/publish-packet.ts'

describe('encodePublish', () => {
  it('writes the bytes mqtt-packet writes, at every length boundary of the remaining length', () => {
    const topic = 'u/alïce/inbox'
    // Remaining lengths around 127/128, 16,383/16,384 and 2,097,151/2,097,152 bytes.
    for (const total of [0, 100, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
      for (const qos of [0, 1] as const) {
        const payload = Buffer.alloc(Math.max(0, total - 2 - Buffer.byteLength(topic) - (qos ? 2 : 0)), 7)
        for (const dup of [false, true]) {
          const messageId = qos ? 513 : undefined
          const ours = encodePublish(topic, payload, { qos, dup, ...(messageId ? { messageId } : {}) })
          const theirs = mqttPacket.generate({
            cmd: 'publish',
            topic,
            payload,
            qos,
            dup: qos === 1 && dup,
            retain: false,
            ...(messageId ? { messageId } : {}),
          })
          assert.ok(ours.equals(theirs), `remaining ${total}, QoS ${qos}, dup ${dup}`)
        }
      }
    }
  })

  it('parses back as the packet it was built from', () => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const seen: mqttPacket.IPublishPacket[] = []
    parser.on('packet', (p) => seen.push(p as mqttPacket.IPublishPacket))
    parser.parse(
      encodePublish('u/bob/inbox', Buffer.from('{"a":"ü"}'), {
        qos: 1,
        dup: true,
        messageId: 65535,
      }),
    )
    assert.equal(seen.length, 1)
    assert.equal(seen[0]?.topic, 'u/bob/inbox')
    assert.equal(seen[0]?.messageId, 65535)
    assert.equal(seen[0]?.dup, true)
    assert.equal(seen[0]?.payload.toString(), '{"a":"ü"}')
  })

  it('refuses a QoS 1 packet without a valid packet identifier [MQTT-2.3.1-1]', () => {
    const t = 't'
    assert.throws(() => encodePublish(t, Buffer.alloc(0), { qos: 1, dup: false }), RangeError)
    assert.throws(
      () => encodePublish(t, Buffer.alloc(0), { qos: 1, dup: false, messageId: 65536 }),
      RangeError,
    )
  })
})
