import { once } from 'node:events'
import { type AddressInfo, createConnection, createServer, type Server, type Socket } from 'node:net'

// How long one backend may take to accept a TCP connection before the next one is tried.
const BACKEND_CONNECT_MS = 2000

/**
 * A TCP load balancer in front of the nodes, for one device: what HAProxy is in
 * docker-compose.yml. Each connection goes to the first backend, in the device's order of
 * preference, that accepts it; when that backend's side closes (its node died or closed the
 * connection), the device's side is cut too, and the device's next connection goes to the first
 * backend still alive. The device keeps one address for its whole life: mqtt.js reconnects by
 * itself, and so does mosquitto_sub.
 */
export class FailoverProxy {
  readonly port: number
  /** Connections the backend side closed while the device's side was open. */
  cuts = 0
  /** The node port each accepted connection went to, in order. */
  readonly routes: number[] = []
  /** The node port of the connection open now, if any. */
  current: number | undefined
  /** Called when a backend closes a connection under the device. */
  onCut: () => void = () => {}
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #backends: () => number[]

  private constructor(server: Server, backends: () => number[]) {
    this.#server = server
    this.#backends = backends
    this.port = (server.address() as AddressInfo).port
  }

  /** Listens on a free port of 127.0.0.1; backends() is read at each new connection. */
  static async start(backends: () => number[]): Promise<FailoverProxy> {
    const server = createServer({ pauseOnConnect: true })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const proxy = new FailoverProxy(server, backends)
    server.on('connection', (s) => {
      proxy.#accept(s).catch(() => s.destroy())
    })
    return proxy
  }

  /** Another list of backends, for the connections from now on (a node restarted on new ports). */
  setBackends(backends: () => number[]): void {
    this.#backends = backends
  }

  async #accept(device: Socket): Promise<void> {
    this.#track(device)
    device.on('error', () => {})
    for (const port of this.#backends()) {
      if (device.destroyed) return
      const backend = await connectTo(port)
      if (!backend) continue
      if (device.destroyed) {
        backend.destroy()
        return
      }
      this.#track(backend)
      this.routes.push(port)
      this.current = port
      backend.setNoDelay(true)
      device.setNoDelay(true)
      backend.on('close', () => {
        if (this.current === port) this.current = undefined
        if (!device.destroyed) {
          this.cuts++
          device.destroy()
          this.onCut()
        }
      })
      device.on('close', () => {
        if (this.current === port) this.current = undefined
        backend.destroy()
      })
      device.pipe(backend)
      backend.pipe(device)
      device.resume()
      return
    }
    // No backend alive: the device retries, as against a load balancer with every server down.
    device.destroy()
  }

  #track(s: Socket): void {
    this.#sockets.add(s)
    s.once('close', () => this.#sockets.delete(s))
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** A connected socket to 127.0.0.1:port, or null when it is refused or does not answer in time. */
function connectTo(port: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port })
    const done = (ok: boolean) => {
      clearTimeout(timer)
      s.off('connect', onConnect)
      s.off('error', onError)
      if (ok) {
        s.on('error', () => {})
        resolve(s)
      } else {
        s.destroy()
        resolve(null)
      }
    }
    const onConnect = () => done(true)
    const onError = () => done(false)
    const timer = setTimeout(() => done(false), BACKEND_CONNECT_MS)
    s.once('connect', onConnect)
    s.once('error', onError)
  })
}
