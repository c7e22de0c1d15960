export class PacketTooLargeError extends Error {
  override name = 'PacketTooLargeError'
  readonly size: number
  constructor(size: number, limit: number) {
    super(`MQTT packet of ${size} bytes exceeds the limit of ${limit}`)
    this.size = size
  }
}

/**
 * Reads each MQTT fixed header in the bytes a client sends and fails as soon as a packet
 * announces a remaining length over the limit, before its body is buffered: aedes 1.x has no
 * maximum packet size of its own, and a 256 MB PUBLISH would otherwise sit in memory. A plain
 * object with no stream of its own: one per connection, fed every chunk as it arrives.
 */
export class PacketSizeGuard {
  readonly #limit: number
  // Bytes of the current packet body still to pass; -1 while reading a fixed header.
  #remaining = -1
  #headerBytes = 0
  #length = 0
  #multiplier = 1

  /** @param limit the largest remaining length allowed, bytes */
  constructor(limit: number) {
    this.#limit = limit
  }

  /**
   * Follows the packets in the next chunk of the byte stream.
   * @throws PacketTooLargeError once a fixed header announces more than the limit
   */
  check(chunk: Buffer): void {
    let i = 0
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i)
        this.#remaining -= take
        i += take
        if (this.#remaining === 0) this.#remaining = -1
        continue
      }
      const byte = chunk[i] as number
      i++
      if (this.#headerBytes === 0) {
        this.#headerBytes = 1 // the packet type and flags byte
        continue
      }
      this.#length += (byte & 0x7f) * this.#multiplier
      this.#multiplier *= 128
      this.#headerBytes++
      if (this.#length > this.#limit) throw new PacketTooLargeError(this.#length, this.#limit)
      // A malformed length longer than four bytes is left to the MQTT parser to refuse.
      if ((byte & 0x80) === 0 || this.#headerBytes > 5) {
        this.#remaining = this.#length > 0 ? this.#length : -1
        this.#headerBytes = 0
        this.#length = 0
        this.#multiplier = 1
      }
    }
  }
}
