import type { BrowserContext, WebSocketRoute } from 'playwright-core'

/**
 * A pass-through of a browser context's WebSockets (the web chat's MQTT connection) that can hold
 * the page's frames from the first one carrying `marker` on (in order, as TCP would), count the
 * server's frames carrying a string, and cut the network (the sockets closed and new ones refused,
 * with the context offline for HTTP). Set up before the context's page connects: a socket opened
 * before is not seen.
 */
export interface SocketTap {
  /** Holds the page's frames from the next one containing `marker`; resolves once one is held. */
  holdFrom(marker: string): Promise<void>
  /** Sends the held frames, in order, and stops holding. */
  release(): void
  /** How many frames from the server contained `text` since the tap began. */
  received(text: string): number
  /** Closes the sockets and refuses new ones; HTTP goes offline too. */
  cut(): Promise<void>
  /** Lets the page connect again: the context back online. */
  restore(): Promise<void>
}

/** Routes every WebSocket of `context` through a SocketTap (playwright `routeWebSocket`). */
export async function tapSockets(context: BrowserContext): Promise<SocketTap> {
  const fromServer: string[] = []
  const open = new Set<WebSocketRoute>()
  let offline = false
  let hold: { marker: string; held: boolean; queue: (string | Buffer)[]; heldNow: () => void } | undefined
  // The server side of the socket open now: where held frames go when released.
  let current: { send(m: string | Buffer): void } | undefined
  await context.routeWebSocket(/.*/, (ws) => {
    if (offline) return ws.close({ code: 4000, reason: 'offline' }).catch(() => {})
    const server = ws.connectToServer()
    open.add(ws)
    ws.onClose(() => open.delete(ws))
    ws.onMessage((m) => {
      const h = hold
      if (h && (h.held || Buffer.from(m).includes(h.marker))) {
        if (!h.held) h.heldNow()
        h.held = true
        h.queue.push(m)
      } else server.send(m)
    })
    server.onMessage((m) => {
      fromServer.push(Buffer.from(m).toString('latin1'))
      ws.send(m)
    })
    current = server
  })
  return {
    holdFrom: (marker) =>
      new Promise((heldNow) => {
        hold = { marker, held: false, queue: [], heldNow }
      }),
    release() {
      const h = hold
      hold = undefined
      for (const m of h?.queue ?? []) current?.send(m)
    },
    received: (text) => fromServer.filter((f) => f.includes(text)).length,
    async cut() {
      offline = true
      await context.setOffline(true)
      await Promise.all([...open].map((ws) => ws.close({ code: 4000, reason: 'offline' }).catch(() => {})))
    },
    async restore() {
      offline = false
      await context.setOffline(false)
    },
  }
}
