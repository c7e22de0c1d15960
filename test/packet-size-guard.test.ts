import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import mqttPacket from 'mqtt-packet'
import { PacketSizeGuard, PacketTooLargeError } from '../broker/packet-size-guard.ts'

function run(limit: number, chunks: Buffer[]): { out: Buffer; err?: Error } {
  const guard = new PacketSizeGuard(limit)
  const out: Buffer[] = []
  for (const c of chunks) {
    try {
      guard.check(c)
    } catch (err) {
      return { out: Buffer.concat(out), err: err as Error }
    }
    out.push(c)
  }
  return { out: Buffer.concat(out) }
}

const publish = (bytes: number) =>
  mqttPacket.generate({
    cmd: 'publish',
    topic: 't',
    payload: Buffer.alloc(bytes, 1),
    qos: 0,
    retain: false,
    dup: false,
  })

describe('packet size guard', () => {
  it('passes packets under the limit unchanged, however the bytes are split', () => {
    const stream = Buffer.concat([
      publish(10),
      publish(200),
      mqttPacket.generate({ cmd: 'pingreq' }),
      publish(1000),
    ])
    for (const size of [1, 2, 3, 7, 64, stream.length]) {
      const chunks: Buffer[] = []
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size))
      const { out, err } = run(2000, chunks)
      assert.equal(err, undefined)
      assert.deepEqual(out, stream)
    }
  })

  it('fails on the header of a packet over the limit, before its body arrives', () => {
    const big = publish(5000)
    const { err } = run(2000, [publish(10), big.subarray(0, 4)])
    assert.ok(err instanceof PacketTooLargeError)
    assert.equal(err.size, big.length - 3)
  })
})
