import { createConnection, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import type { TestNode } from './node.ts'

/** A subscriber on a raw socket that reads its SUBACK and then never reads again. */
export async function stalledSubscriber(t: TestNode, userId: string): Promise<Socket> {
  const socket = createConnection({ host: '127.0.0.1', port: t.node.ports.mqtt })
  socket.write(
    mqttPacket.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      keepalive: 0,
      clientId: `${userId}/stuck`,
      username: userId,
      password: Buffer.from(await t.token(userId)),
    }),
  )
  socket.write(
    mqttPacket.generate({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: `u/${userId}/inbox`, qos: 1 }],
    }),
  )
  const parser = mqttPacket.parser()
  const subscribed = new Promise<void>((resolve) =>
    parser.on('packet', (p) => p.cmd === 'suback' && resolve()),
  )
  socket.on('data', (d) => parser.parse(d))
  await subscribed
  socket.pause()
  return socket
}
