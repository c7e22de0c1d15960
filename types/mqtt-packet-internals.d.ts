// mqtt-packet 9 ships types for its public API only. broker/mqtt-fast-path.ts reads packets on
// the parser aedes creates for each client, so the parser's class and its packet class are typed
// here, as far as Natter reads them (mqtt-packet 9.0.2, parser.js and packet.js).
declare module 'mqtt-packet/packet.js' {
  /** The object mqtt-packet's parser emits, before its type's fields are added. */
  export default class Packet {
    cmd: string | null
    retain: boolean
    qos: number
    dup: boolean
    /** The remaining length, in bytes; -1 until the fixed header is read. */
    length: number
    topic: string | null
    payload: Buffer | null
    messageId?: number
  }
}

declare module 'mqtt-packet/parser.js' {
  import { EventEmitter } from 'node:events'
  import type Packet from 'mqtt-packet/packet.js'
  /** mqtt-packet's streaming parser: `parse` takes the next chunk and emits 'packet' for each whole one. */
  export default class Parser extends EventEmitter {
    static parser(opt?: object): Parser
    settings: { protocolVersion?: number }
    /** The packet being read. */
    packet: Packet
    error: Error | null
    /** The bytes received and not yet parsed (a `bl` BufferList). */
    _list: { length: number }
    /** Which step of the packet it is in: 0 before its first byte. */
    _stateCounter: number
    /** @returns the bytes left unparsed. */
    parse(buf: Buffer): number
  }
}
