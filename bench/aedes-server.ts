import { createServer } from 'node:net'
import { Aedes } from 'aedes'

// Plain aedes, in-memory, no hooks: the baseline Natter's broker is compared with, configured as
// Natter configures it (broker/node.ts), so the two differ by Natter's hooks and services only.
const broker = await Aedes.createBroker({
  // No cap on deliveries in flight, as in Natter. With aedes' default of 100, mqemitter queues
  // every delivery over the cap and the relay QoS 0 "max" step stalled (13.9k msg/s, 47 s p99)
  // instead of using the CPU.
  concurrency: 0,
  // As Natter passes it. Natter's ClientConnection never reports a full socket, so there aedes
  // never waits for a drain. Here aedes writes to the raw socket: 0 makes a delivery to a full
  // socket wait for its 'drain' without a timer, and with no concurrency cap that wait holds up
  // that one delivery only (and the PUBACK of the QoS 1 message it carries), never another
  // client's. That is the nearest plain aedes gets to Natter without a socket wrapper of its own;
  // aedes' default (60 s) would differ only for a client that stops reading for a minute, which
  // the benchmark's subscribers never do, and it would add a timer per full socket.
  drainTimeout: 0,
  // As Natter (its client ids are <userId>/<deviceId>); the benchmark's ids here are short.
  maxClientsIdLength: 129,
})
const server = createServer((socket) => {
  // As Natter's listener does (broker/listeners.ts): Nagle's algorithm would hold small packets
  // back for the peer's delayed ACK (the generator's clients set it too).
  socket.setNoDelay(true)
  broker.handle(socket)
})
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', port: typeof address === 'object' ? address?.port : 0 })}\n`,
  )
})
process.on('SIGTERM', () => {
  server.close()
  broker.close(() => process.exit(0))
})
