import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { build } from 'esbuild'
import { type Browser, chromium, type Page } from 'playwright-core'
import type * as Sdk from '../client-sdk/src/index.ts'
import { freePort } from './helpers/free-port.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { ROOT } from './helpers/processes.ts'

const PAGE = `<!doctype html><meta charset="utf-8"><title>another origin</title>
<script type="module">import * as sdk from '/sdk.js'; window.sdk = sdk</script>`

/** What a page's fetch of dev token then chat.list gave: the list's answer, or the error thrown. */
type Outcome =
  | { ok: true; tokenStatus: number; listStatus: number; body: unknown; wwwAuthenticate: string | null }
  | { ok: false; name: string; message: string }

/**
 * A web app served from another origin (a static server on its own port) using a node from a
 * real Chromium: dev token and /v1/<op> through CORS when the node lists the app's origin, the
 * browser's own refusal when it does not; and the SDK's first connect failing in a browser.
 */
describe('a page of another origin, in Chromium', () => {
  let app: HttpServer
  let appOrigin: string
  let listed: TestNode
  let unlisted: TestNode
  let silent: TcpServer
  const held: Socket[] = []
  let browser: Browser
  let page: Page

  before(async () => {
    const sdk = await build({
      entryPoints: [`${ROOT}/client-sdk/src/index.ts`],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    })
    const script = sdk.outputFiles[0]?.text ?? ''
    app = createHttpServer((req, res) => {
      if (req.url === '/sdk.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
      else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE)
      else res.writeHead(404).end()
    })
    app.listen(0, '127.0.0.1')
    await once(app, 'listening')
    appOrigin = `http://127.0.0.1:${(app.address() as { port: number }).port}`
    // Both on the embedded default (no JWT secret), where /dev/token exists.
    ;[listed, unlisted] = await Promise.all([
      startTestNode({ NATTER_JWT_SECRET: '', NATTER_CORS_ORIGINS: `https://elsewhere.test,${appOrigin}` }),
      startTestNode({ NATTER_JWT_SECRET: '' }),
    ])
    // Accepts TCP and never answers the WebSocket handshake.
    silent = createTcpServer((s) => {
      held.push(s)
      s.resume()
      s.on('error', () => {})
    })
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
    page = await (await browser.newContext()).newPage()
    await page.goto(appOrigin)
    await page.waitForFunction('window.sdk !== undefined', null, { timeout: 15_000 })
  })
  after(async () => {
    await browser?.close()
    for (const s of held) s.destroy()
    silent?.close()
    app?.close()
    await Promise.all([listed?.close(), unlisted?.close()])
  })

  /** In the page: a dev token from `base` (unless given), then chat.list with it. */
  const tokenThenList = (base: string, token?: string): Promise<Outcome> =>
    page.evaluate(
      async ([base, given]) => {
        try {
          let token = given
          let tokenStatus = 0
          if (token === undefined) {
            const res = await fetch(`${base}/dev/token`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ userId: 'alice' }),
            })
            tokenStatus = res.status
            token = ((await res.json()) as { token: string }).token
          }
          // JSON and a Bearer token: not a "simple" request, so the browser sends a preflight first.
          const list = await fetch(`${base}/v1/chat.list`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body: '{}',
          })
          const body: unknown = await list.json()
          return {
            ok: true as const,
            tokenStatus,
            listStatus: list.status,
            body,
            wwwAuthenticate: list.headers.get('www-authenticate'),
          }
        } catch (err) {
          return { ok: false as const, name: (err as Error).name, message: (err as Error).message }
        }
      },
      [base, token] as const,
    )

  it('gets a dev token and calls /v1/chat.list on a node that lists its origin, and the SDK connects', async () => {
    const outcome = await tokenThenList(listed.httpUrl)
    assert.deepEqual(outcome, {
      ok: true,
      tokenStatus: 200,
      listStatus: 200,
      body: { result: { chats: [] } },
      wwwAuthenticate: null,
    })
    // A refusal is readable too, with its exposed WWW-Authenticate.
    const refused = await tokenThenList(listed.httpUrl, 'not.a.jwt')
    assert.equal(refused.ok, true)
    assert.equal(refused.ok && refused.listStatus, 401)
    // Readable only because the node exposes it (Access-Control-Expose-Headers).
    assert.match((refused.ok && refused.wwwAuthenticate) || '', /^Bearer realm="natter"/)

    const chats = await page.evaluate(
      async ([base, wsUrl]) => {
        const { createClient } = (globalThis as unknown as { sdk: typeof Sdk }).sdk
        const getToken = async () =>
          (
            (await (
              await fetch(`${base}/dev/token`, { method: 'POST', body: JSON.stringify({ userId: 'bob' }) })
            ).json()) as { token: string }
          ).token
        const bob = await createClient({ url: wsUrl, userId: 'bob', deviceId: 'tab', getToken })
        const chat = await bob.direct('alice')
        const all = await bob.listChats()
        await bob.close()
        return all.map((c) => c.id === chat.id)
      },
      [listed.httpUrl, listed.wsUrl] as const,
    )
    assert.deepEqual(chats, [true])
  })

  it('is blocked by the browser (TypeError) on a node that does not list its origin', async () => {
    assert.deepEqual(await tokenThenList(unlisted.httpUrl), {
      ok: false,
      name: 'TypeError',
      message: 'Failed to fetch',
    })
    // With a valid token from elsewhere: the API call itself is blocked just the same.
    const res = await fetch(`${unlisted.httpUrl}/dev/token`, { method: 'POST', body: '{"userId":"alice"}' })
    const { token } = (await res.json()) as { token: string }
    assert.deepEqual(await tokenThenList(unlisted.httpUrl, token), {
      ok: false,
      name: 'TypeError',
      message: 'Failed to fetch',
    })
  })

  it('the SDK’s first connect fails on a closed port (connect_failed) and times out on a silent one (connect_timeout)', async () => {
    const closedPort = await freePort()
    const attempt = (url: string, connectTimeoutMs: number) =>
      page.evaluate(
        async ([url, connectTimeoutMs]) => {
          const { createClient } = (globalThis as unknown as { sdk: typeof Sdk }).sdk
          const started = performance.now()
          try {
            await createClient({
              url,
              userId: 'carol',
              deviceId: 'tab',
              getToken: async () => 'a.b.c',
              connectTimeoutMs,
              reconnect: { minMs: 20, maxMs: 20 },
            })
            return { code: 'connected', message: '', ms: performance.now() - started }
          } catch (err) {
            const e = err as { code?: string; message: string }
            return { code: e.code ?? 'none', message: e.message, ms: performance.now() - started }
          }
        },
        [url, connectTimeoutMs] as const,
      )

    const closed = await attempt(`ws://127.0.0.1:${closedPort}/mqtt`, 5000)
    assert.equal(closed.code, 'connect_failed', closed.message)
    assert.match(closed.message, /closed before the server accepted it/)
    assert.ok(closed.ms < 5000, `failed after ${closed.ms} ms: by the close, not the timeout`)

    // An MQTT URL, as a Node app would give: a browser can open WebSockets only.
    const tcp = await attempt(`mqtt://127.0.0.1:${closedPort}`, 5000)
    assert.equal(tcp.code, 'connect_failed', tcp.message)
    assert.match(tcp.message, /a browser connects over WebSocket only; use ws:\/\/ or wss:\/\//)

    const before = held.length
    const hung = await attempt(`ws://127.0.0.1:${(silent.address() as { port: number }).port}/mqtt`, 500)
    assert.equal(hung.code, 'connect_timeout', hung.message)
    assert.ok(hung.ms >= 500 && hung.ms < 3000, `timed out after ${hung.ms} ms`)
    assert.equal(held.length, before + 1)
    // The browser closes the socket it gave up on, and opens no other.
    const socket = held.at(-1) as Socket
    if (!socket.closed) await once(socket, 'close')
    assert.equal(held.length, before + 1)
  })
})
