/**
 * Hand-written MQTT packets for tests: a byte or two of fixed header, then the fields as MQTT
 * 3.1.1 lays them out, with nothing checked, so that a test can write any packet, broken ones
 * included.
 */

export const hex = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex')
export const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
/** A length-prefixed field: text as UTF-8, or raw bytes (for ill-formed UTF-8). */
export const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s
  return Buffer.concat([u16(b.length), b])
}
export function remainingLength(n: number): Buffer {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return Buffer.from(out)
}
/** A packet: its first byte (type and flags), the remaining length, then the body. */
export const packet = (first: number, ...body: Buffer[]) => {
  const b = Buffer.concat(body)
  return Buffer.concat([Buffer.from([first]), remainingLength(b.length), b])
}

// CONNECT flags.
export const USER = 0x80
export const PASS = 0x40
export const WILL_RETAIN = 0x20
export const WILL = 0x04
export const CLEAN = 0x02
export const willQos = (q: number) => q << 3

export interface ConnectFields {
  flags: number
  clientId: string | Buffer
  keepalive?: number
  name?: string
  level?: number
  will?: { topic: string | Buffer; message: string }
  username?: string | Buffer
  password?: string
  /** Bytes after the last field. */
  extra?: Buffer
  /** The first byte instead of 0x10 (CONNECT, flags 0000). */
  first?: number
}
/** A CONNECT with the fields given, whatever its flags say: the flags are the test's. */
export function connect(f: ConnectFields): Buffer {
  return packet(
    f.first ?? 0x10,
    str(f.name ?? 'MQTT'),
    Buffer.from([f.level ?? 4, f.flags]),
    u16(f.keepalive ?? 30),
    str(f.clientId),
    f.will ? Buffer.concat([str(f.will.topic), str(f.will.message)]) : Buffer.alloc(0),
    f.username !== undefined ? str(f.username) : Buffer.alloc(0),
    f.password !== undefined ? str(f.password) : Buffer.alloc(0),
    f.extra ?? Buffer.alloc(0),
  )
}
