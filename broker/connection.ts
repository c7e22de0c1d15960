import type { Duplex } from 'node:stream'
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

/** What Natter keeps beside one client's socket. */
interface ConnectionState {
  guard: PacketSizeGuard
  limits: ConnectionLimits
  log: Logger
  remote: string
  /** Bytes aedes or the inbox wrote this turn, not yet handed to the socket. */
  out: Buffer[]
  outBytes: number
  stall: NodeJS.Timeout | undefined
}

const STATE = Symbol('natter.connection')

/** A client's socket (TCP socket or WebSocket stream) as aedes gets it: the same object, fitted. */
export type ClientSocket = Duplex & {
  [STATE]: ConnectionState
  /** Bytes written but not yet taken by the kernel: gathered this turn plus the socket's buffer. */
  readonly buffered: number
}

/** Sockets with gathered bytes, written out by one shared setImmediate. */
const gathered = new Set<ClientSocket>()
let scheduled = false

/**
 * Fits one client's socket for aedes, in place: a wrapper stream per connection cost about
 * 1.5 KB on every idle connection and a pass through the stream machinery on every read and
 * write (bench/). The socket's own `read`, `write`, `cork`, `uncork`, `end` and `destroy` are
 * replaced on this object only, by functions shared by every connection.
 *
 * - Reads pass a packet-size guard: a packet announcing more than the limit closes the
 *   connection before its body is buffered.
 * - Writes never report back-pressure: aedes waits for a full socket to drain before it
 *   completes a delivery, so one client that stops reading would otherwise stall delivery to
 *   others. Its bytes wait instead, and a client whose socket does not drain within the drain
 *   timeout (or whose buffer passes the memory bound) is disconnected; what it had not
 *   acknowledged is sent again from the store or its session when it reconnects.
 * - Writes are gathered and reach the socket once per event-loop turn, for every connection
 *   written to in that turn: a chat message makes a PUBACK, an echo and receipts for the same
 *   connection in different callbacks of one turn, and each socket write costs a system call
 *   and often a TCP segment. Bytes gathered when aedes closes a connection (a refused CONNACK)
 *   are written before it closes.
 */
export function fitClientSocket(
  raw: Duplex,
  limits: ConnectionLimits,
  log: Logger,
  remote: string,
): ClientSocket {
  const socket = raw as ClientSocket
  socket[STATE] = {
    guard: new PacketSizeGuard(limits.maxPacketBytes),
    limits,
    log,
    remote,
    out: [],
    outBytes: 0,
    stall: undefined,
  }
  Object.defineProperty(socket, 'buffered', { get: buffered })
  socket.read = guardedRead
  socket.write = gatheredWrite as Duplex['write']
  socket.cork = noop
  socket.uncork = noop
  socket.end = flushedEnd as ClientSocket['end']
  socket.destroy = flushedDestroy as ClientSocket['destroy']
  // A socket error is the peer's problem, not the broker's: aedes sees the close and cleans up.
  socket.on('error', noop)
  socket.on('drain', drained)
  socket.on('close', forget)
  return socket
}

function noop(): void {}

function proto(socket: ClientSocket): Duplex {
  return Object.getPrototypeOf(socket) as Duplex
}

function buffered(this: ClientSocket): number {
  return this.writableLength + this[STATE].outBytes
}

function guardedRead(this: ClientSocket, size?: number): Buffer | null {
  const chunk = proto(this).read.call(this, size) as Buffer | null
  if (chunk === null) return null
  const s = this[STATE]
  try {
    s.guard.check(chunk)
  } catch (err) {
    if (err instanceof PacketTooLargeError) {
      s.log.info(
        { event: 'packet_too_large', remote: s.remote, size: err.size, limit: s.limits.maxPacketBytes },
        'connection closed',
      )
    }
    this.destroy()
    return null
  }
  return chunk
}

function gatheredWrite(
  this: ClientSocket,
  chunk: unknown,
  encoding?: BufferEncoding | WriteCallback,
  cb?: WriteCallback,
): boolean {
  const done = typeof encoding === 'function' ? encoding : cb
  if (this.destroyed) {
    if (done) process.nextTick(done, new Error('connection closed'))
    return true
  }
  const bytes =
    typeof chunk === 'string'
      ? Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8')
      : (chunk as Buffer)
  const s = this[STATE]
  if (s.outBytes === 0) {
    gathered.add(this)
    if (!scheduled) {
      scheduled = true
      setImmediate(writeGathered)
    }
  }
  s.out.push(bytes)
  s.outBytes += bytes.length
  if (this.buffered > s.limits.maxBufferedBytes) cut(this, 'buffer_limit')
  if (done) process.nextTick(done)
  return true
}

function writeGathered(): void {
  scheduled = false
  for (const socket of gathered) flush(socket)
  gathered.clear()
}

function flush(socket: ClientSocket): void {
  const s = socket[STATE]
  const bytes = s.outBytes
  if (bytes === 0) return
  const out = s.out
  s.out = []
  s.outBytes = 0
  if (socket.destroyed) return
  const whole = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, bytes)
  const flowing = (proto(socket).write as (chunk: Buffer) => boolean).call(socket, whole)
  if (!flowing && s.stall === undefined && s.limits.drainTimeoutMs > 0) {
    s.stall = setTimeout(cut, s.limits.drainTimeoutMs, socket, 'drain_timeout')
    s.stall.unref()
  }
}

function cut(socket: ClientSocket, reason: 'drain_timeout' | 'buffer_limit'): void {
  const s = socket[STATE]
  s.log.info(
    { event: 'slow_consumer', remote: s.remote, reason, buffered: socket.buffered },
    'connection closed: the client stopped reading',
  )
  s.out = []
  s.outBytes = 0
  gathered.delete(socket)
  proto(socket).destroy.call(socket)
}

function drained(this: ClientSocket): void {
  const s = this[STATE]
  clearTimeout(s.stall)
  s.stall = undefined
}

function forget(this: ClientSocket): void {
  const s = this[STATE]
  clearTimeout(s.stall)
  s.stall = undefined
  s.out = []
  s.outBytes = 0
  gathered.delete(this)
}

function flushedEnd(this: ClientSocket, ...args: unknown[]): ClientSocket {
  gathered.delete(this)
  flush(this)
  ;(proto(this).end as (...a: unknown[]) => unknown).apply(this, args)
  return this
}

function flushedDestroy(this: ClientSocket, err?: Error): ClientSocket {
  gathered.delete(this)
  flush(this)
  proto(this).destroy.call(this, err)
  return this
}
