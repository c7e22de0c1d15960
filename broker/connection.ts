import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { connackBytes, MqttStrictReader } from './mqtt-strict.ts'
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
  /** MQTT 3.1.1's rules on every packet, before aedes parses it. */
  strict: MqttStrictReader
  limits: ConnectionLimits
  log: Logger
  remote: string
  /** Bytes aedes or the inbox wrote this turn, not yet handed to the socket (none: undefined). */
  out: Buffer[] | undefined
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
 *   connection before its body is buffered. Then MQTT 3.1.1's rules (broker/mqtt-strict.ts):
 *   the first packet that breaks one closes the connection before aedes parses it.
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
    strict: new MqttStrictReader(),
    limits,
    log,
    remote,
    out: undefined,
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
  // No 'error' or 'close' listener of its own: aedes listens for both from the moment it gets the
  // socket (and keeps a no-op for 'error' after it closed), every close passes through destroy
  // (where the connection is released), and a third listener of one event grows the socket's
  // listener array to 19 slots, about 300 bytes on every idle connection for the two (bench/).
  socket.on('drain', drained)
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
  const passed = s.strict.check(chunk)
  if (passed === chunk.length) return chunk
  return refuse(this, chunk, passed)
}

/**
 * A packet broke a rule of MQTT 3.1.1: the whole packets before it still reach aedes, and the
 * connection closes right after they are parsed, without a CONNACK unless the rule asks for
 * one [MQTT-3.1.4-1] [MQTT-4.8.0-1]. A will of a connected client is published, as for any
 * close without DISCONNECT [MQTT-3.1.2-8].
 */
function refuse(socket: ClientSocket, chunk: Buffer, passed: number): Buffer | null {
  const s = socket[STATE]
  const v = s.strict.violation
  s.log.info(
    {
      event: 'protocol_violation',
      remote: s.remote,
      clientId: (socket as { client?: { id?: string | null } }).client?.id ?? undefined,
      packet: s.strict.violationPacket,
      rule: v?.rule,
      reason: v?.reason,
    },
    'connection closed',
  )
  if (passed === 0) {
    if (v?.connack !== undefined) socket.write(connackBytes(v.connack))
    socket.destroy()
    return null
  }
  process.nextTick(closeSocket, socket)
  return chunk.subarray(0, passed)
}

function closeSocket(socket: ClientSocket): void {
  socket.destroy()
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
  if (s.out === undefined) s.out = [bytes]
  else s.out.push(bytes)
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
  const out = s.out ?? []
  s.out = undefined
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
  release(socket)
  proto(socket).destroy.call(socket)
}

function drained(this: ClientSocket): void {
  const s = this[STATE]
  clearTimeout(s.stall)
  s.stall = undefined
}

/** A connection being destroyed keeps no timer and no gathered bytes. */
function release(socket: ClientSocket): void {
  const s = socket[STATE]
  clearTimeout(s.stall)
  s.stall = undefined
  s.out = undefined
  s.outBytes = 0
  gathered.delete(socket)
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
  release(this)
  proto(this).destroy.call(this, err)
  return this
}
