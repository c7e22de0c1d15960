import { createServer } from 'node:net'
import { Aedes } from 'aedes'

// Plain aedes, in-memory, no hooks: the baseline Natter's broker is compared with.
const broker = await Aedes.createBroker()
const server = createServer((socket) => broker.handle(socket))
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
