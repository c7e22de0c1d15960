import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { build } from 'esbuild'
import { type Browser, chromium } from 'playwright-core'
import { createClient } from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { ROOT } from './helpers/processes.ts'

const PAGE = `<!doctype html><meta charset="utf-8"><title>outbox</title>
<script type="module">import * as sdk from '/sdk.js'; window.sdk = sdk</script>`

/**
 * What the page runs: a tab that edits and deletes offline and closes, then the app again (the
 * code an app would write; plain JavaScript, in the page).
 */
const OFFLINE_TAB = `async ({ url, token, chatId, s1, s2 }) => {
  const { createClient, IndexedDbOutboxStorage } = window.sdk
  const name = 'natter-outbox:wes/browser'
  const raw = (mode, work) =>
    new Promise((resolve, reject) => {
      const open = indexedDB.open(name, 1)
      open.onupgradeneeded = () => open.result.createObjectStore('items', { keyPath: 'position' })
      open.onsuccess = () => {
        const req = work(open.result.transaction('items', mode).objectStore('items'))
        req.onsuccess = () => {
          open.result.close()
          resolve(req.result)
        }
        req.onerror = () => reject(req.error)
      }
      open.onerror = () => reject(open.error)
    })
  // What an earlier version of the SDK left: a send, with no op.
  await raw('readwrite', (s) =>
    s.put({ position: 0, localId: 'older-sdk-1', chatId, text: 'from an older SDK', createdAt: 1 }),
  )
  const connect = () =>
    createClient({
      url,
      userId: 'wes',
      deviceId: 'browser',
      getToken: async () => token,
      outbox: new IndexedDbOutboxStorage(name),
      reconnect: { minMs: 60_000, maxMs: 60_000 },
    })
  const tab = await connect()
  // The older record goes first, as any send left by an earlier run.
  await tab.chat(chatId).open()
  const sentOlder =
    tab.statusOf('older-sdk-1') === 'sending'
      ? tab.next('status', (s) => s.localId === 'older-sdk-1' && s.status === 'sent')
      : Promise.resolve()
  await sentOlder
  const down = tab.next('state', (s) => s === 'reconnecting')
  tab.mqtt.stream.destroy()
  await down
  const chat = tab.chat(chatId)
  // The tab closes before they are made: close() rejects their promises (disconnected).
  chat.edit(s1, 'edited in a closed tab').catch(() => {})
  chat.delete(s2).catch(() => {})
  await chat.send('sent after them').queued
  await tab.close()
  const kept = await raw('readonly', (s) => s.getAll())

  const again = await connect()
  // Everything made: the sends and the changes (which the sends do not wait for).
  const done = () => again.pending(chatId).length === 0 && again.pendingChanges(chatId).length === 0
  if (!done()) await again.next('status', done)
  await again.close()
  return {
    kept: kept.map((i) => [
      i.op ?? 'send',
      i.seq ?? null,
      i.text ?? null,
    ]),
    left: await raw('readonly', (s) => s.count()),
  }
}`

/**
 * The IndexedDB outbox in Chromium: an edit and a delete made offline in a tab that then closes
 * are kept in IndexedDB with a send after them, and the next run of the app makes them all
 * (sends in order); a record written by an earlier version of the SDK (no `op`) loads as a send.
 */
describe('offline edits and deletes in the IndexedDB outbox, in Chromium', () => {
  let t: TestNode
  let site: Server
  let origin: string
  let browser: Browser

  before(async () => {
    const sdk = await build({
      stdin: {
        contents: `export * from './index.ts'\nexport { IndexedDbOutboxStorage } from './indexeddb-outbox.ts'`,
        resolveDir: `${ROOT}/client-sdk/src`,
        loader: 'ts',
      },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    })
    const script = sdk.outputFiles[0]?.text ?? ''
    site = createServer((req, res) => {
      if (req.url === '/sdk.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
      else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE)
      else res.writeHead(404).end()
    })
    site.listen(0, '127.0.0.1')
    await once(site, 'listening')
    origin = `http://127.0.0.1:${(site.address() as { port: number }).port}`
    t = await startTestNode()
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
  })
  after(async () => {
    await browser?.close()
    site?.close()
    await t?.close()
  })

  it('keeps them across a closed tab and makes them, after an older record', async () => {
    // Two messages of wes's to change, sent from another device.
    const other = await createClient({
      url: t.mqttUrl,
      userId: 'wes',
      deviceId: 'laptop',
      getToken: () => t.token('wes'),
    })
    const chatId = (await other.direct('xia')).id
    const s1 = (await other.send(chatId, { text: 'to edit' }).sent).seq
    const s2 = (await other.send(chatId, { text: 'to delete' }).sent).seq
    await other.close()

    const page = await (await browser.newContext()).newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(origin)
    await page.waitForFunction('window.sdk !== undefined', null, { timeout: 15_000 })
    const args = { url: t.wsUrl, token: await t.token('wes'), chatId, s1, s2 }
    const stored = (await page.evaluate(`(${OFFLINE_TAB})(${JSON.stringify(args)})`)) as {
      kept: unknown[][]
      left: number
    }
    assert.deepEqual(stored.kept, [
      ['edit', s1, 'edited in a closed tab'],
      ['delete', s2, null],
      ['send', null, 'sent after them'],
    ])
    assert.equal(stored.left, 0)
    const messages = (await t.node.stores.messages.after(chatId, 0, 100)).filter((m) => m.kind === 'text')
    assert.deepEqual(
      messages.map((m) => [m.seq, m.text, m.editedAt !== null, m.deletedAt !== null]),
      [
        [s1, 'edited in a closed tab', true, false],
        [s2, null, false, true],
        [s2 + 1, 'from an older SDK', false, false],
        [s2 + 2, 'sent after them', false, false],
      ],
    )
    // The sends kept their order; the send did not wait for the changes of other messages
    // (the outbox keeps order per message), so no order between them is asserted.
    assert.deepEqual(errors, [])
  })
})
