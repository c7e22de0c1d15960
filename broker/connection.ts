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

type WriteCallback = (err?: Error | null) => void

/**
 * What aedes sees of one client's socket (TCP or WebSocket stream).
 *
 * Reads pass a packet-size guard.
 *
 * Writes never report back-pressure: aedes waits for a full socket to drain before it completes
 * a delivery, and mqemitter runs a bounded number of deliveries at once, so one client that
 * stops reading would otherwise stall delivery to every other client. Instead its bytes wait
 * here, and a client whose socket does not drain within the drain timeout (or whose buffer
 * passes the memory bound) is disconnected; QoS 1 messages it had not acknowledged are sent
 * again from the store or its session when it reconnects.
 *
 * Writes are gathered and reach the socket once per event-loop turn, for every connection
 * written to in that turn: a chat message makes a PUBACK, an echo and receipts for the same
 * connection in different callbacks of one turn, and a socket write each cost a system call
 * and often a TCP segment.
 */
export class ClientConnection extends Duplex {
  /** Connections with gathered bytes, written out by one shared setImmediate. */
  static readonly #gathered = new Set<ClientConnection>()
  static #scheduled = false

  readonly #raw: Duplex
  readonly #guard: PacketSizeGuard
  readonly #limits: ConnectionLimits
  readonly #log: Logger
  readonly #remote: string
  #stall?: NodeJS.Timeout
  #out: Buffer[] = []
  #outBytes = 0

  constructor(raw: Duplex, limits: ConnectionLimits, log: Logger, remote: string) {
    super({ allowHalfOpen: false })
    this.#raw = raw
    this.#limits = limits
    this.#log = log
    this.#remote = remote
    this.#guard = new PacketSizeGuard(limits.maxPacketBytes)
    raw.on('data', (chunk: Buffer) => {
      try {
        this.#guard.check(chunk)
      } catch (err) {
        if (err instanceof PacketTooLargeError) {
          log.info(
            { event: 'packet_too_large', remote, size: err.size, limit: limits.maxPacketBytes },
            'connection closed',
          )
        }
        this.destroy()
        return
      }
      if (!this.push(chunk)) raw.pause()
    })
    raw.on('end', () => this.push(null))
    // A socket error is the peer's problem, not the broker's: aedes sees the close and cleans up.
    raw.on('error', () => {})
    raw.on('close', () => this.destroy())
    raw.on('drain', () => {
      clearTimeout(this.#stall)
      this.#stall = undefined
    })
  }

  static #writeGathered = (): void => {
    ClientConnection.#scheduled = false
    for (const c of ClientConnection.#gathered) c.#flush()
    ClientConnection.#gathered.clear()
  }

  #cut(reason: 'drain_timeout' | 'buffer_limit'): void {
    this.#log.info(
      { event: 'slow_consumer', remote: this.#remote, reason, buffered: this.buffered },
      'connection closed: the client stopped reading',
    )
    this.#out = []
    this.#outBytes = 0
    this.#raw.destroy()
  }

  /** Bytes written but not yet taken by the socket. */
  get buffered(): number {
    return this.#raw.writableLength + this.#outBytes
  }

  override _read(): void {
    this.#raw.resume()
  }

  /**
   * Takes a packet (or a piece of one: mqtt-packet writes a packet in pieces) for the socket.
   * Always true: back-pressure is this class's business (see above). Writing after the
   * connection closed drops the bytes, as a socket would.
   */
  override write(chunk: unknown, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback): boolean {
    const done = typeof encoding === 'function' ? encoding : cb
    if (this.destroyed || this.#raw.destroyed) {
      if (done) process.nextTick(done, new Error('connection closed'))
      return true
    }
    const bytes =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8')
        : (chunk as Buffer)
    if (this.#outBytes === 0) {
      ClientConnection.#gathered.add(this)
      if (!ClientConnection.#scheduled) {
        ClientConnection.#scheduled = true
        setImmediate(ClientConnection.#writeGathered)
      }
    }
    this.#out.push(bytes)
    this.#outBytes += bytes.length
    if (this.buffered > this.#limits.maxBufferedBytes) this.#cut('buffer_limit')
    if (done) process.nextTick(done)
    return true
  }

  // Writes are gathered anyway; mqtt-packet corks around every packet.
  override cork(): void {}
  override uncork(): void {}

  override _write(chunk: Buffer, encoding: BufferEncoding, done: WriteCallback): void {
    this.write(chunk, encoding, done)
  }

  #flush(): void {
    const out = this.#out
    const bytes = this.#outBytes
    if (bytes === 0) return
    this.#out = []
    this.#outBytes = 0
    if (this.#raw.destroyed) return
    const flowing = this.#raw.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, bytes))
    if (!flowing && this.#stall === undefined && this.#limits.drainTimeoutMs > 0) {
      this.#stall = setTimeout(() => this.#cut('drain_timeout'), this.#limits.drainTimeoutMs)
      this.#stall.unref()
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    ClientConnection.#gathered.delete(this)
    this.#flush()
    this.#raw.end()
    done()
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    // What aedes wrote just before closing (a refused CONNACK) still goes out.
    ClientConnection.#gathered.delete(this)
    this.#flush()
    clearTimeout(this.#stall)
    this.#raw.destroy()
    done(err)
  }
}
