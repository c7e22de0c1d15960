/**
 * One MQTT 3.1.1 PUBLISH packet as bytes, built in a single allocation (OASIS MQTT 3.1.1 §3.3).
 * The inbox writes the same event to every device of every member: the payload is serialized
 * once per event, and only the topic and the packet identifier differ, so
 * building the packet here costs one copy, where mqtt-packet's generic writer made several
 * small buffers and writes per packet.
 *
 * @param topic the topic name (at most 65,535 bytes of UTF-8) [MQTT-3.3.2-1]
 * @param payload the application message, as it goes on the wire
 * @param o.qos 0 or 1; at QoS 1 `messageId` (1–65,535) is required [MQTT-2.3.1-1]
 * @param o.dup DUP flag; only meaningful at QoS 1 (it must be 0 at QoS 0) [MQTT-3.3.1-2]
 * @throws RangeError when the topic or the packet is longer than MQTT allows (268,435,455 bytes)
 */
export function encodePublish(
  topic: string,
  payload: Buffer,
  o: { qos: 0 | 1; dup: boolean; messageId?: number },
): Buffer {
  const topicBytes = Buffer.byteLength(topic)
  if (topicBytes > 0xffff) throw new RangeError(`topic of ${topicBytes} bytes is longer than 65,535`)
  const idBytes = o.qos === 1 ? 2 : 0
  const remaining = 2 + topicBytes + idBytes + payload.length
  if (remaining > 268_435_455)
    throw new RangeError(`PUBLISH of ${remaining} bytes is longer than MQTT allows`)
  const lengthBytes = remaining < 128 ? 1 : remaining < 16_384 ? 2 : remaining < 2_097_152 ? 3 : 4
  const packet = Buffer.allocUnsafe(1 + lengthBytes + remaining)
  packet[0] = 0x30 | (o.qos === 1 && o.dup ? 0x08 : 0) | (o.qos << 1)
  let at = 1
  // Remaining Length: 7 bits per byte, least significant first (§2.2.3).
  let left = remaining
  do {
    let byte = left % 128
    left = Math.floor(left / 128)
    if (left > 0) byte |= 0x80
    packet[at++] = byte
  } while (left > 0)
  packet.writeUInt16BE(topicBytes, at)
  at += 2
  packet.write(topic, at, 'utf8')
  at += topicBytes
  if (o.qos === 1) {
    const id = o.messageId ?? 0
    if (id < 1 || id > 0xffff) throw new RangeError(`packet identifier ${id} is not in 1–65,535`)
    packet.writeUInt16BE(id, at)
    at += 2
  }
  payload.copy(packet, at)
  return packet
}
