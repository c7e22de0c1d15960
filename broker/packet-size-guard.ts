import { Transform, type TransformCallback } from 'node:stream'

export class PacketTooLargeError extends Error {
  override name = 'PacketTooLargeError'
  readonly size: number
  constructor(size: number, limit: number) {
    super(`MQTT packet of ${size} bytes exceeds the limit of ${limit}`)
    this.size = size
  }
}

/**
 * Passes bytes through while reading each MQTT fixed header, and fails as soon as a packet
 * announces a remaining length over the limit, before its body is buffered: aedes 1.x has no
 * maximum packet size of its own, and a 256 MB PUBLISH would otherwise sit in memory.
 */
export class PacketSizeGuard extends Transform {
  readonly #limit: number
  // Bytes of the current packet body still to pass; -1 while reading a fixed header.
  #remaining = -1
  #headerBytes = 0
  #length = 0
  #multiplier = 1

  constructor(limit: number) {
    super()
    this.#limit = limit
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
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
      if (this.#length > this.#limit) {
        done(new PacketTooLargeError(this.#length, this.#limit))
        return
      }
      // A malformed length longer than four bytes is left to the MQTT parser to refuse.
      if ((byte & 0x80) === 0 || this.#headerBytes > 5) {
        this.#remaining = this.#length > 0 ? this.#length : -1
        this.#headerBytes = 0
        this.#length = 0
        this.#multiplier = 1
      }
    }
    done(null, chunk)
  }
}
