import Packet from 'mqtt-packet/packet.js'
import Parser from 'mqtt-packet/parser.js'

const PUBLISH = 3
const PUBACK = 4

/**
 * mqtt-packet's parser with a fast path for the packets a chat message brings in: PUBLISH and
 * PUBACK. aedes reads every packet through mqtt-packet 9, which appends each chunk to a `bl`
 * buffer list, takes a Buffer view for every byte it reads and makes a disabled `debug` call at
 * every step: at saturation about a tenth of the main thread and a third of what it allocates
 * (docs/performance.md). Here a PUBLISH or PUBACK that lies whole in one chunk is read straight
 * from the chunk into the same `Packet` mqtt-packet would emit (same fields, in the same order;
 * the payload a view of the chunk, as mqtt-packet's is); anything else (another type, a packet
 * split across chunks, one mqtt-packet would refuse) goes to mqtt-packet's own `parse` with the
 * rest of the chunk, so its errors and every other packet are read as before.
 *
 * Only for MQTT 3.1 and 3.1.1 connections (Natter refuses MQTT 5): a 3.x PUBACK is its packet
 * identifier alone [MQTT-3.4.2], a 3.x PUBLISH has no properties [MQTT-3.3.2].
 */
class FastPathParser extends Parser {
  override parse(buf: Buffer): number {
    // A chunk that arrives while a packet is being emitted (aedes reads the socket again from
    // its packet handler when that handler completes at once) waits for the packets before it.
    if (emitting) {
      deferred.push(this, buf)
      return 0
    }
    emitting = true
    try {
      parseChunk(this, buf)
      for (let i = 0; i < deferred.length; i += 2) {
        parseChunk(deferred[i] as Parser, deferred[i + 1] as Buffer)
      }
    } finally {
      emitting = false
      deferred.length = 0
    }
    return this._list.length
  }
}

const slowParse = Parser.prototype.parse

// A function, not a private method: a parser moved to FastPathParser by `useFastPath` was
// constructed as a plain Parser and carries no private brand.
function parseChunk(parser: Parser, buf: Buffer): void {
  // Part of a packet is held already: mqtt-packet goes on with it.
  if (parser._stateCounter !== 0 || parser._list.length !== 0 || parser.error !== null) {
    slowParse.call(parser, buf)
    return
  }
  const n = buf.length
  let i = 0
  while (i < n) {
    const first = buf[i] as number
    const type = first >> 4
    if (type !== PUBLISH && type !== PUBACK) break
    let length = 0
    let multiplier = 1
    let j = i + 1
    let complete = false
    while (j < n && j - i <= 4) {
      const b = buf[j] as number
      j++
      length += (b & 0x7f) * multiplier
      if ((b & 0x80) === 0) {
        complete = true
        break
      }
      multiplier *= 128
    }
    const end = j + length
    if (!complete || end > n) break
    const packet = new Packet()
    if (type === PUBACK) {
      if (first !== 0x40 || length !== 2) break
      packet.cmd = 'puback'
      packet.length = length
      packet.messageId = ((buf[j] as number) << 8) | (buf[j + 1] as number)
    } else {
      const qos = (first >> 1) & 3
      if (qos === 3 || length < 2) break
      const topicEnd = j + 2 + (((buf[j] as number) << 8) | (buf[j + 1] as number))
      const payloadStart = qos > 0 ? topicEnd + 2 : topicEnd
      if (payloadStart > end) break
      packet.cmd = 'publish'
      packet.retain = (first & 1) !== 0
      packet.qos = qos
      packet.dup = (first & 8) !== 0
      packet.length = length
      packet.topic = buf.toString('utf8', j + 2, topicEnd)
      if (qos > 0) packet.messageId = ((buf[topicEnd] as number) << 8) | (buf[topicEnd + 1] as number)
      packet.payload = buf.subarray(payloadStart, end)
    }
    i = end
    parser.emit('packet', packet)
  }
  if (i < n) slowParse.call(parser, i === 0 ? buf : buf.subarray(i))
}

let emitting = false
// Pairs of parser and chunk, in arrival order.
const deferred: Array<Parser | Buffer> = []

/**
 * Puts the fast path on one connection's parser, in place (no per-connection memory: the parser
 * keeps its fields and changes class). Call it once the CONNECT is read and accepted.
 *
 * @param parser aedes' `client._parser`, created by mqtt-packet's `parser()`.
 * @param protocolVersion the connection's MQTT protocol level: 3 (3.1) or 4 (3.1.1) take the
 *   fast path; any other leaves the parser as it is.
 * @returns whether the fast path was installed: false also when the parser is not an instance
 *   of the mqtt-packet Natter depends on (aedes brought another copy), which a test catches.
 */
export function useFastPath(parser: object, protocolVersion: number): boolean {
  if (protocolVersion !== 3 && protocolVersion !== 4) return false
  const proto = Object.getPrototypeOf(parser)
  if (proto === FastPathParser.prototype) return true
  if (proto !== Parser.prototype) return false
  Object.setPrototypeOf(parser, FastPathParser.prototype)
  return true
}
