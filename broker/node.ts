import { mkdirSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { type AddressInfo, createServer as createTcpServer, type Server as TcpServer } from 'node:net'
import { Aedes, type Client, type PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { Settings } from '../config/schema.ts'
import { loadVerifyKey } from '../services/auth/jwt-keys.ts'
import { createTokenVerifier } from '../services/auth/token-verifier.ts'
import { topics } from '../services/auth/topic-acl.ts'
import type { ErrorNotice } from '../services/requests/envelope.ts'
import { RequestRouter } from '../services/requests/router.ts'
import { registerSessionOps } from '../services/requests/session-ops.ts'
import { guardConnection } from './connection.ts'
import { createHooks } from './hooks.ts'
import { createHttpHandler } from './http.ts'
import { Sessions } from './sessions.ts'

export interface NatterNode {
  /** The ports actually bound (differs from the settings when a port was 0). */
  ports: { mqtt: number; ws: number; http: number }
  broker: Aedes
  close(): Promise<void>
}

/** Starts one Natter node on the embedded default: Aedes in memory, MQTT/TCP, MQTT/WS and HTTP. */
export async function startNode(settings: Settings, log: Logger): Promise<NatterNode> {
  mkdirSync(settings.dataDir, { recursive: true })
  const keySource = await loadVerifyKey(settings)
  if (keySource.generated) {
    log.warn(
      { event: 'dev_secret' },
      'tokens are verified with the generated dev secret in the data directory; set NATTER_JWT_SECRET or a public key for production',
    )
  }
  const verify = createTokenVerifier(settings, keySource.key)
  const sessions = new Sessions()
  const router = new RequestRouter()
  registerSessionOps(router)
  let ready = false

  // The broker is created after the hooks that need it, so they reach it through this binding.
  let broker: Aedes
  const publishTo = (topic: string, body: unknown) =>
    new Promise<void>((resolve, reject) =>
      broker.publish(
        {
          cmd: 'publish',
          topic,
          payload: Buffer.from(JSON.stringify(body)),
          qos: 1,
          retain: false,
          dup: false,
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    )
  const notify = (client: Client, notice: ErrorNotice) => {
    const who = sessions.get(client)?.who
    if (!who) return
    publishTo(topics.errors(who.clientId), notice).catch((err: unknown) =>
      log.error({ err, clientId: who.clientId }, 'could not publish an error notice'),
    )
  }
  const handleRequest = async (client: Client, packet: PublishPacket) => {
    const session = sessions.get(client)
    if (!session) return
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
    const outcome = await router.route(
      { who: session.who, tokenExpiresAt: session.tokenExpiresAt },
      packet.topic,
      payload,
    )
    if ('reply' in outcome) await publishTo(topics.reply(session.who.clientId), outcome.reply)
    else await publishTo(topics.errors(session.who.clientId), outcome.notice)
  }
  const onTokenExpired = (client: Client) => {
    log.info({ event: 'token_expired', clientId: client.id }, 'closing connection at token expiry')
    client.close()
  }

  broker = await Aedes.createBroker({
    ...createHooks({ verify, sessions, log, notify, handleRequest, onTokenExpired }),
    connectTimeout: settings.connectTimeoutMs,
    drainTimeout: settings.drainTimeoutMs,
    // MQTT 3.1 limits client ids to 23 bytes; <userId>/<deviceId> needs up to 129.
    maxClientsIdLength: 129,
  })
  broker.on('clientReady', (client) => log.info({ event: 'connected', clientId: client.id }))
  broker.on('clientDisconnect', (client) => {
    sessions.end(client)
    log.info({ event: 'disconnected', clientId: client.id })
  })
  broker.on('subscribe', (subs, client) =>
    log.info({
      event: 'subscribed',
      clientId: client.id,
      topics: subs.filter((s) => (s.qos as number) !== 128).map((s) => s.topic),
    }),
  )
  broker.on('clientError', (client, err) =>
    log.info({ event: 'client_error', clientId: client.id, err: err.message }),
  )
  broker.on('connectionError', (client, err) =>
    log.info({ event: 'connection_error', clientId: client.id, err: err.message }),
  )

  const tcp = createTcpServer((socket) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    broker.handle(guardConnection(socket, settings.maxPacketBytes, log, remote))
  })

  const wsHttp = createHttpServer((_req, res) => {
    res
      .writeHead(426, { 'content-type': 'text/plain' })
      .end(`MQTT over WebSocket: connect to ${settings.wsPath}\n`)
  })
  const wss = new WebSocketServer({
    noServer: true,
    // A frame larger than the largest packet cannot be valid.
    maxPayload: settings.maxPacketBytes + 8,
    handleProtocols: (offered) => ['mqtt', 'mqttv3.1'].find((p) => offered.has(p)) ?? false,
  })
  wsHttp.on('upgrade', (req, socket, head) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (path !== settings.wsPath) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`
      const stream = createWebSocketStream(ws)
      broker.handle(guardConnection(stream, settings.maxPacketBytes, log, remote), req)
    })
  })

  const http = createHttpServer(createHttpHandler(() => ready && !broker.closed))

  const listen = (server: TcpServer | HttpServer, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, settings.host, () => {
        server.off('error', reject)
        resolve((server.address() as AddressInfo).port)
      })
    })

  let ports: NatterNode['ports']
  try {
    ports = {
      mqtt: await listen(tcp, settings.mqttPort),
      ws: await listen(wsHttp, settings.wsPort),
      http: await listen(http, settings.httpPort),
    }
  } catch (err) {
    await closeAll()
    throw err
  }
  ready = true
  log.info({ event: 'listening', host: settings.host, ports, wsPath: settings.wsPath }, 'natter is up')

  async function closeAll() {
    ready = false
    const closeServer = (s: TcpServer | HttpServer) =>
      new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))
    const closing = [closeServer(tcp), closeServer(wsHttp), closeServer(http)]
    http.closeAllConnections()
    wsHttp.closeAllConnections()
    for (const ws of wss.clients) ws.terminate()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await Promise.all(closing)
  }

  return {
    ports,
    broker,
    close: closeAll,
  }
}
