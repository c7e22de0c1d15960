import {
  CONNECT,
  checkBody,
  checkFixedHeader,
  type ProtocolViolation,
  PUBLISH,
  packetName,
  publishBytesNeeded,
  VIOLATIONS,
} from './mqtt-strict-rules.ts'

export type { ProtocolViolation } from './mqtt-strict-rules.ts'

/** The CONNACK sent before closing a CONNECT of an unsupported protocol level [MQTT-3.1.2-2]. */
export function connackBytes(returnCode: number): Buffer {
  return Buffer.from([0x20, 0x02, 0x00, returnCode])
}

/**
 * Follows the packets in the bytes one client sends and checks each against the rules of MQTT
 * 3.1.1 (broker/mqtt-strict-rules.ts) before aedes parses it. One per connection, fed every
 * chunk as it arrives, in order; it keeps no copy of a packet that lies whole in one chunk.
 *
 * A packet split across chunks is copied only as far as its checks read (a PUBLISH: its topic
 * and packet identifier, never its payload); the packet-size guard in front of it bounds that
 * copy at `NATTER_MAX_PACKET_BYTES`.
 */
export class MqttStrictReader {
  /** The first rule broken; once set, nothing more passes. */
  violation: ProtocolViolation | null = null
  /** The type of the packet that broke it (`PUBLISH`), for logs. */
  violationPacket = ''
  #connected = false
  // A packet split across chunks: its bytes from its first, as many as its checks need so far.
  #pending: Buffer | null = null
  #have = 0
  // Bytes of a checked packet still to come, passed unread (the rest of a PUBLISH payload).
  #skip = 0

  /**
   * Checks the packets in the next chunk of the connection's bytes.
   *
   * @returns how many bytes of the chunk may go on to the MQTT parser: all of them, or, once
   *   a packet breaks a rule (`violation` is then set), those of the whole packets before it;
   *   0 for every chunk after that.
   */
  check(chunk: Buffer): number {
    if (this.violation !== null) return 0
    const n = chunk.length
    let i = 0
    if (this.#skip > 0) {
      i = Math.min(this.#skip, n)
      this.#skip -= i
    }
    if (this.#pending !== null && i < n) {
      i = this.#resume(chunk, i)
      if (i < 0) return 0
    }
    while (i < n) {
      const start = i
      const first = chunk[i] as number
      let length = 0
      let multiplier = 1
      let j = i + 1
      let complete = false
      while (j < n) {
        const b = chunk[j] as number
        j++
        length += (b & 0x7f) * multiplier
        if ((b & 0x80) === 0) {
          complete = true
          break
        }
        if (j - start === 5) return this.#fail(VIOLATIONS.lengthTooLong, first, start)
        multiplier *= 128
      }
      if (!complete) {
        this.#hold(chunk, start, n)
        return n
      }
      let v = checkFixedHeader(first, length, this.#connected)
      if (v !== null) return this.#fail(v, first, start)
      const end = j + length
      if (end <= n) {
        v = checkBody(first, chunk, j, length)
        if (v !== null) return this.#fail(v, first, start)
        if (first >> 4 === CONNECT) this.#connected = true
        i = end
        continue
      }
      // The packet goes on in a later chunk. A PUBLISH whose topic and packet id are here is
      // checked now and the rest of it passes unread.
      if (first >> 4 === PUBLISH && n - j >= publishBytesNeeded(first, length, chunk, j, n - j)) {
        v = checkBody(first, chunk, j, length)
        if (v !== null) return this.#fail(v, first, start)
        this.#skip = end - n
        return n
      }
      this.#hold(chunk, start, n)
      return n
    }
    return n
  }

  #fail(v: ProtocolViolation, first: number, start: number): number {
    this.violation = v
    this.violationPacket = packetName(first)
    this.#pending = null
    this.#have = 0
    return start
  }

  #hold(chunk: Buffer, start: number, end: number): void {
    this.#have = end - start
    this.#pending = Buffer.allocUnsafe(Math.max(64, this.#have))
    chunk.copy(this.#pending, 0, start, end)
  }

  /**
   * Goes on with the packet begun in an earlier chunk, from chunk[i]; returns where the next
   * packet starts in the chunk (or the chunk's length), or -1 when the packet broke a rule.
   */
  #resume(chunk: Buffer, i: number): number {
    const n = chunk.length
    for (;;) {
      const p = this.#pending as Buffer
      const have = this.#have
      const first = p[0] as number
      // The fixed header, from what is held.
      let length = 0
      let multiplier = 1
      let h = 1
      let complete = false
      while (h < have) {
        const b = p[h] as number
        h++
        length += (b & 0x7f) * multiplier
        if ((b & 0x80) === 0) {
          complete = true
          break
        }
        if (h === 5) {
          this.#fail(VIOLATIONS.lengthTooLong, first, 0)
          return -1
        }
        multiplier *= 128
      }
      let need = have + 1
      if (complete) {
        let v = checkFixedHeader(first, length, this.#connected)
        if (v !== null) {
          this.#fail(v, first, 0)
          return -1
        }
        need = h + (first >> 4 === PUBLISH ? publishBytesNeeded(first, length, p, h, have - h) : length)
        if (have >= need) {
          v = checkBody(first, p, h, length)
          if (v !== null) {
            this.#fail(v, first, 0)
            return -1
          }
          if (first >> 4 === CONNECT) this.#connected = true
          this.#pending = null
          this.#have = 0
          const rest = h + length - have
          const take = Math.min(rest, n - i)
          this.#skip = rest - take
          return i + take
        }
      }
      if (i === n) return n
      const take = Math.min(need - have, n - i)
      this.#append(chunk, i, i + take, need)
      i += take
    }
  }

  #append(chunk: Buffer, from: number, to: number, need: number): void {
    let p = this.#pending as Buffer
    const want = this.#have + (to - from)
    if (want > p.length) {
      // Grows by doubling, never past what the checks need: a packet announced large but sent
      // slowly holds only what has arrived.
      const grown = Buffer.allocUnsafe(Math.max(want, Math.min(need, p.length * 2)))
      p.copy(grown, 0, 0, this.#have)
      p = grown
      this.#pending = p
    }
    chunk.copy(p, this.#have, from, to)
    this.#have = want
  }
}
