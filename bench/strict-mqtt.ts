import mqttPacket from 'mqtt-packet'
import { MqttStrictReader } from '../broker/mqtt-strict.ts'
import { PacketSizeGuard } from '../broker/packet-size-guard.ts'

/**
 * CPU per packet of the strict MQTT layer (broker/mqtt-strict.ts) on a chat send, next to what
 * the packet-size guard and aedes' own parser (mqtt-packet) cost on the same bytes. Prints ns
 * of CPU per PUBLISH, the median of --runs runs of --n packets each.
 *
 *   sh scripts/node.sh bench/strict-mqtt.ts [--n=2000000] [--runs=5]
 *
 * Shapes: one PUBLISH per chunk (a device sending now and then: each packet its own read),
 * 32 per chunk (a device pipelining sends), and one PUBLISH split in two chunks (the copy of
 * its topic the layer makes when a packet straddles reads).
 */

const arg = (name: string, fallback: number): number => {
  const raw = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  return raw === undefined ? fallback : Number(raw)
}
const n = arg('n', 2_000_000)
const runs = arg('runs', 5)

const connect = mqttPacket.generate({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  keepalive: 60,
  clientId: 'alice/phone',
  clean: false,
  username: 'alice',
  password: Buffer.from('x'.repeat(200)),
})
// A chat send as the SDK makes it.
const topic = 'c/d_8f14e45fceea167a5a36dedd4bea2543/send'
const publish = mqttPacket.generate({
  cmd: 'publish',
  topic,
  payload: Buffer.from(
    JSON.stringify({
      clientMsgId: '01HV8ZJ6X2Q4W5E6R7T8Y9U0IO',
      text: 'On my way, see you at the station in 10',
    }),
  ),
  qos: 1,
  messageId: 4242,
  retain: false,
  dup: false,
})
const batch = Buffer.concat(Array.from({ length: 32 }, () => publish))
const cut = 20
const head = publish.subarray(0, cut)
const tail = publish.subarray(cut)

type Shape = { name: string; chunks: Buffer[]; packets: number }
const shapes: Shape[] = [
  { name: 'one PUBLISH per chunk', chunks: [publish], packets: 1 },
  { name: '32 PUBLISHes per chunk', chunks: [batch], packets: 32 },
  { name: 'one PUBLISH split in two chunks', chunks: [head, tail], packets: 1 },
]

function cpuNs(fn: () => void): number {
  const before = process.cpuUsage()
  fn()
  const used = process.cpuUsage(before)
  return (used.user + used.system) * 1000
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

function perPacket(shape: Shape, make: () => (chunk: Buffer) => void): number {
  const rounds = Math.ceil(n / shape.packets)
  const results: number[] = []
  for (let r = 0; r <= runs; r++) {
    const feed = make()
    const ns = cpuNs(() => {
      for (let i = 0; i < rounds; i++) for (const c of shape.chunks) feed(c)
    })
    // The first run warms the JIT up and is left out.
    if (r > 0) results.push(ns / (rounds * shape.packets))
  }
  return median(results)
}

const strict = () => {
  const reader = new MqttStrictReader()
  if (reader.check(connect) !== connect.length) throw new Error('the CONNECT was refused')
  return (chunk: Buffer) => {
    if (reader.check(chunk) !== chunk.length) throw new Error(`refused: ${reader.violation?.rule}`)
  }
}
const guard = () => {
  const g = new PacketSizeGuard(262_144)
  return (chunk: Buffer) => g.check(chunk)
}
const parser = () => {
  const p = mqttPacket.parser({ protocolVersion: 4 })
  p.on('packet', () => {})
  return (chunk: Buffer) => {
    p.parse(chunk)
  }
}

const rows: string[] = []
for (const shape of shapes) {
  const s = perPacket(shape, strict)
  const g = perPacket(shape, guard)
  const m = perPacket(shape, parser)
  rows.push(`| ${shape.name} | ${s.toFixed(0)} | ${g.toFixed(0)} | ${m.toFixed(0)} |`)
}
process.stdout.write(
  [
    `CPU per PUBLISH (${publish.length} bytes, topic ${topic.length} bytes), ns, median of ${runs} runs of ${n}:`,
    '',
    '| shape | strict layer | packet-size guard | mqtt-packet parser (aedes) |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n'),
)
