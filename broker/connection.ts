import { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { PacketSizeGuard, PacketTooLargeError } from './packet-size-guard.ts'

export interface ConnectionLimits {
  maxPacketBytes: number
  /** A client whose socket stays full this long is cut as a slow consumer. */
  drainTimeoutMs: number
  /** Bytes that may wait in one client's outgoing buffer, whatever the time: a memory bound. */
  maxBufferedBytes: number
}

/**
 * What aedes sees of one client's socket (TCP or WebSocket stream). Reads pass a packet-size
 * guard. Writes never report back-pressure: aedes waits for a full socket to drain before it
 * completes a delivery, and mqemitter runs a bounded number of deliveries at once, so one
 * client that stops reading would otherwise stall delivery to every other client. Instead its
 * bytes wait here, and a client whose socket does not drain within the drain timeout (or whose
 * buffer passes the memory bound) is disconnected; QoS 1 messages it had not acknowledged stay
 * in its session and are sent again when it reconnects.
 */
export class ClientConnection extends Duplex {
  readonly #raw: Duplex
  readonly #guard: PacketSizeGuard
  readonly #limits: ConnectionLimits
  readonly #log: Logger
  readonly #remote: string
  #stall?: NodeJS.Timeout

  constructor(raw: Duplex, limits: ConnectionLimits, log: Logger, remote: string) {
    super({ allowHalfOpen: false })
    this.#raw = raw
    this.#limits = limits
    this.#log = log
    this.#remote = remote
    this.#guard = new PacketSizeGuard(limits.maxPacketBytes)
    raw.pipe(this.#guard)
    this.#guard.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) this.#guard.pause()
    })
    this.#guard.on('end', () => this.push(null))
    this.#guard.on('error', (err) => {
      if (err instanceof PacketTooLargeError) {
        log.info(
          { event: 'packet_too_large', remote, size: err.size, limit: limits.maxPacketBytes },
          'connection closed',
        )
      }
      this.destroy()
    })
    // A socket error is the peer's problem, not the broker's: aedes sees the close and cleans up.
    raw.on('error', () => {})
    raw.on('close', () => this.destroy())
    raw.on('drain', () => {
      clearTimeout(this.#stall)
      this.#stall = undefined
    })
  }

  #cut(reason: 'drain_timeout' | 'buffer_limit'): void {
    this.#log.info(
      { event: 'slow_consumer', remote: this.#remote, reason, buffered: this.#raw.writableLength },
      'connection closed: the client stopped reading',
    )
    this.#raw.destroy()
  }

  /** Bytes written but not yet taken by the socket. */
  get buffered(): number {
    return this.#raw.writableLength
  }

  override _read(): void {
    this.#guard.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#send(chunk)
    done()
  }

  // mqtt-packet corks the stream and writes a packet in pieces; passing them on as one write
  // keeps a packet in one TCP segment instead of several that Nagle's algorithm would hold
  // back for the peer's delayed ACK (about 40 ms).
  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    this.#send(chunks.length === 1 ? (chunks[0]?.chunk as Buffer) : Buffer.concat(chunks.map((c) => c.chunk)))
    done()
  }

  #send(chunk: Buffer): void {
    if (this.#raw.destroyed) return
    const flowing = this.#raw.write(chunk)
    if (this.#raw.writableLength > this.#limits.maxBufferedBytes) this.#cut('buffer_limit')
    else if (!flowing && this.#stall === undefined && this.#limits.drainTimeoutMs > 0) {
      this.#stall = setTimeout(() => this.#cut('drain_timeout'), this.#limits.drainTimeoutMs)
      this.#stall.unref()
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#raw.end()
    done()
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    clearTimeout(this.#stall)
    this.#raw.destroy()
    done(err)
  }
}
