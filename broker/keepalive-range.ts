import type { AedesOptions } from 'aedes'

/** The keep-alive range a node applies to every connection, in seconds. */
export interface KeepaliveRange {
  minSeconds: number
  maxSeconds: number
}

/**
 * The keep alive the server applies for a CONNECT's requested one, in seconds: 0 (keep alive
 * off) and values above the maximum become the maximum, values below the minimum the minimum.
 *
 * aedes closes a connection that sends no packet for 1.5 times it ([MQTT-3.1.2-24]), so a
 * client that goes silent is closed, its will published and its presence ended, within
 * 1.5 × maxSeconds whatever it asked for. MQTT 3.1.1 allows that for 0 too: "a Server is
 * permitted to disconnect a Client that it determines to be inactive or non-responsive at any
 * time, regardless of the Keep Alive value provided by that Client" (§3.1.2.10). Raising a
 * small value only makes the server wait longer than the client asked before it gives up.
 */
export function boundedKeepalive(requested: number, range: KeepaliveRange): number {
  if (requested === 0 || requested > range.maxSeconds) return range.maxSeconds
  return Math.max(requested, range.minSeconds)
}

/**
 * aedes' preConnect hook: applies boundedKeepalive to the CONNECT before aedes arms its
 * keep-alive timer from it. Refusing instead is not open to MQTT 3.1.1: aedes' own
 * `keepaliveLimit` answers CONNACK 6, a code 3.1.1 reserves (docs/decisions.md).
 */
export function keepaliveWithin(range: KeepaliveRange): NonNullable<AedesOptions['preConnect']> {
  return (_client, packet, done) => {
    packet.keepalive = boundedKeepalive(packet.keepalive ?? 0, range)
    done(null, true)
  }
}
