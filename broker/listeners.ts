import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type RequestListener,
} from 'node:http'
import { type AddressInfo, createServer as createTcpServer, type Server as TcpServer } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { Settings } from '../config/schema.ts'
import { requestTarget } from '../services/requests/request-target.ts'
import { type ClientSocket, fitClientSocket } from './connection.ts'

/** The ports a node listens on (they differ from the settings when a setting was 0). */
export interface Ports {
  mqtt: number
  ws: number
  http: number
}

/** A node's transports: MQTT over TCP, MQTT over WebSocket, and the HTTP port. */
export interface Listeners {
  /** Binds every port; rejects (with nothing left listening to clean up but close()) on the first that fails. */
  listen(): Promise<Ports>
  /** Bytes waiting to be written to clients, summed over every connection (a metric). */
  buffered(): number
  /**
   * Stops accepting connections and closes idle HTTP ones at once; resolves when every
   * listening socket is closed (after the broker closed its clients).
   */
  stopAccepting(): Promise<void>
  /** Ends every WebSocket at once (the broker does not close what it did not accept). */
  terminateWebSockets(): void
}

/**
 * The transports of one node, apart from what runs on them (broker/node.ts). Each MQTT
 * connection's socket is fitted (fitClientSocket: packet-size guard, slow-consumer limits) before
 * aedes' `handle`.
 */
export function createListeners(d: {
  settings: Settings
  log: Logger
  /** aedes' handle, for each new MQTT connection. */
  handle: (stream: Duplex, req?: IncomingMessage) => void
  /** The HTTP port's handler. */
  http: RequestListener
}): Listeners {
  const { settings, log } = d
  const connections = new Set<ClientSocket>()
  const limits = {
    maxPacketBytes: settings.maxPacketBytes,
    drainTimeoutMs: settings.drainTimeoutMs,
    maxBufferedBytes: settings.maxClientBufferBytes,
  }
  const track = (c: ClientSocket) => {
    connections.add(c)
    c.once('close', () => connections.delete(c))
    return c
  }
  const tcp = createTcpServer((socket) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    // Chat is small messages where latency matters more than packet count.
    socket.setNoDelay(true)
    d.handle(track(fitClientSocket(socket, limits, log, remote)))
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
    // Never new URL(req.url, base): it throws on `//`, and a throw here ends the process.
    const path = requestTarget(req.url)?.pathname
    // `/` too: clients without a path option (the mqtt CLI's `-l ws`) ask for `/`, and this port
    // serves nothing but MQTT, so there is nothing else `/` could mean.
    if (path !== settings.wsPath && path !== '/') {
      const body = `MQTT over WebSocket is at ${settings.wsPath} (or /)\n`
      socket.end(
        `HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      )
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`
      const stream = createWebSocketStream(ws)
      d.handle(track(fitClientSocket(stream, limits, log, remote)), req)
    })
  })

  const http = createHttpServer(d.http)

  const bind = (server: TcpServer | HttpServer, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, settings.host, () => {
        server.off('error', reject)
        resolve((server.address() as AddressInfo).port)
      })
    })
  const closeServer = (s: TcpServer | HttpServer) =>
    new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))

  return {
    listen: async () => ({
      mqtt: await bind(tcp, settings.mqttPort),
      ws: await bind(wsHttp, settings.wsPort),
      http: await bind(http, settings.httpPort),
    }),
    buffered: () => {
      let sum = 0
      for (const c of connections) sum += c.buffered
      return sum
    },
    stopAccepting: () => {
      const closing = Promise.all([closeServer(tcp), closeServer(wsHttp), closeServer(http)])
      http.closeAllConnections()
      wsHttp.closeAllConnections()
      return closing.then(() => {})
    },
    terminateWebSockets: () => {
      for (const ws of wss.clients) ws.terminate()
    },
  }
}
