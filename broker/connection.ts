import { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { PacketSizeGuard, PacketTooLargeError } from './packet-size-guard.ts'

/** Wraps a raw byte stream (TCP socket or WebSocket stream) so oversize packets end the connection. */
export function guardConnection(raw: Duplex, maxPacketBytes: number, log: Logger, remote: string): Duplex {
  const guard = new PacketSizeGuard(maxPacketBytes)
  raw.pipe(guard)
  guard.on('error', (err) => {
    if (err instanceof PacketTooLargeError) {
      log.info(
        { event: 'packet_too_large', remote, size: err.size, limit: maxPacketBytes },
        'connection closed',
      )
    }
    raw.destroy()
  })
  // A socket error is the peer's problem, not the broker's: aedes sees the close and cleans up.
  raw.on('error', () => {})
  return Duplex.from({ readable: guard, writable: raw })
}
