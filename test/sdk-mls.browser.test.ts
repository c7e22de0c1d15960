import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { build } from 'esbuild'
import { type Browser, chromium, type Page } from 'playwright-core'
import sharp from 'sharp'
import { createClient, MemoryMlsStorage, type NatterClient } from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { ROOT } from './helpers/processes.ts'

const PAGE = `<!doctype html><meta charset="utf-8"><title>mls</title>
<script type="module">import * as sdk from '/sdk.js'; window.sdk = sdk</script>`

/** The page connects wes/browser with its MLS keys in IndexedDB (the code an app would write). */
const CONNECT = `async ({ url, token }) => {
  const { createClient, IndexedDbMlsStorage } = window.sdk
  window.client = await createClient({
    url,
    userId: 'wes',
    deviceId: 'browser',
    getToken: async () => token,
    mls: { storage: new IndexedDbMlsStorage('natter-mls:wes/browser') },
  })
  await window.client.keyPackagesReady()
}`

/** Waits in the page until the chat holds a text, and answers the texts held. */
const READ = `async ({ chatId, text }) => {
  const c = window.client
  await c.whenEncryptionReady(chatId)
  await c.open(chatId)
  const has = () => c.messages(chatId).some((m) => m.text === text)
  if (!has()) await c.next('message', has)
  return c.messages(chatId).filter((m) => m.kind === 'text').map((m) => [m.text, m.encrypted ?? false])
}`

/**
 * The SDK as an MLS client in Chromium: keys, group state and the messages read in IndexedDB,
 * kept across a reload of the page, talking with a Node client in an encrypted group.
 */
describe('an encrypted chat in Chromium, keys in IndexedDB', () => {
  let t: TestNode
  let site: Server
  let origin: string
  let browser: Browser
  let xia: NatterClient
  // The first test's tab and chat, which the media test goes on with.
  let page: Page
  let chatId: string

  before(async () => {
    const sdk = await build({
      stdin: {
        contents: `export * from './index.ts'\nexport { IndexedDbMlsStorage } from './indexeddb-outbox.ts'`,
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
    await xia?.close()
    await browser?.close()
    site?.close()
    await t?.close()
  })

  async function load(page: Page): Promise<void> {
    await page.goto(origin)
    await page.waitForFunction('window.sdk !== undefined', null, { timeout: 15_000 })
    await page.evaluate(`(${CONNECT})(${JSON.stringify({ url: t.wsUrl, token: await t.token('wes') })})`)
  }

  const read = (page: Page, chatId: string, text: string) =>
    page.evaluate(`(${READ})(${JSON.stringify({ chatId, text })})`) as Promise<[string, boolean][]>

  it('joins, decrypts and sends; after a reload the keys from IndexedDB read what follows', async () => {
    page = await (await browser.newContext()).newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await load(page)
    xia = await createClient({
      url: t.mqttUrl,
      userId: 'xia',
      deviceId: 'phone',
      getToken: () => t.token('xia'),
      mls: { storage: new MemoryMlsStorage() },
    })
    await xia.keyPackagesReady()
    chatId = (await xia.createGroup('browser test', ['wes'], { encrypted: true })).id
    await xia.send(chatId, { text: 'kilo from node' }).sent
    assert.deepEqual(await read(page, chatId, 'kilo from node'), [['kilo from node', true]])
    await page.evaluate(`window.client.send(${JSON.stringify(chatId)}, { text: 'lima from chromium' }).sent`)
    await xia.open(chatId)
    const fromBrowser = () => xia.messages(chatId).some((m) => m.text === 'lima from chromium')
    if (!fromBrowser()) await xia.next('message', fromBrowser)
    assert.equal(xia.messages(chatId).find((m) => m.text === 'lima from chromium')?.encrypted, true)

    // The tab goes away; the next one has the keys and the group state from IndexedDB.
    await page.evaluate('window.client.close()')
    await page.reload()
    await page.waitForFunction('window.sdk !== undefined', null, { timeout: 15_000 })
    await page.evaluate(`(${CONNECT})(${JSON.stringify({ url: t.wsUrl, token: await t.token('wes') })})`)
    await xia.send(chatId, { text: 'mike after the reload' }).sent
    const after = await read(page, chatId, 'mike after the reload')
    // What was read before the reload is read from IndexedDB (its keys are used up); what came
    // after is decrypted with the group state kept there.
    assert.deepEqual(after, [
      ['kilo from node', true],
      ['lima from chromium', true],
      ['mike after the reload', true],
    ])
    assert.deepEqual(errors, [])
  })

  it('encrypts an image in Chromium (measured there, XHR upload) and decrypts a file from Node', async () => {
    const png = await sharp(Buffer.alloc(64 * 48 * 3, 0x5a), { raw: { width: 64, height: 48, channels: 3 } })
      .png()
      .toBuffer()
    const UPLOAD = `async ({ chatId, b64 }) => {
      const c = window.client
      const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0))
      const progress = []
      const up = await c.uploadMedia(new Blob([bytes], { type: 'image/png' }), {
        chatId,
        name: 'photo.png',
        onProgress: (sent, total) => progress.push([sent, total]),
      })
      await c.send(chatId, { text: 'photo from chromium', media: [up.mediaId] }).sent
      return { id: up.mediaId, width: up.encrypted.width, height: up.encrypted.height, last: progress.at(-1) }
    }`
    const up = (await page.evaluate(
      `(${UPLOAD})(${JSON.stringify({ chatId, b64: png.toString('base64') })})`,
    )) as {
      id: string
      width: number
      height: number
      last: [number, number]
    }
    assert.deepEqual([up.width, up.height, up.last], [64, 48, [png.length + 16, png.length + 16]])
    const hasPhoto = () => xia.messages(chatId).some((m) => m.encryptedMedia?.[0]?.id === up.id)
    if (!hasPhoto()) await xia.next('message', hasPhoto)
    const photo = xia.messages(chatId).find((m) => m.encryptedMedia?.[0]?.id === up.id)?.encryptedMedia?.[0]
    assert.equal(photo?.name, 'photo.png')
    assert.ok(
      photo && Buffer.from(await xia.downloadMedia(photo)).equals(png),
      'Node decrypts what Chromium sent',
    )

    const sent = await xia.uploadMedia(Buffer.from('notes for the browser'), {
      chatId,
      contentType: 'text/plain',
      name: 'notes.txt',
    })
    await xia.send(chatId, { media: [sent.mediaId] }).sent
    const DOWNLOAD = `async ({ chatId, id }) => {
      const c = window.client
      const has = () => c.messages(chatId).some((m) => m.encryptedMedia?.[0]?.id === id)
      if (!has()) await c.next('message', has)
      const media = c.messages(chatId).find((m) => m.encryptedMedia?.[0]?.id === id).encryptedMedia[0]
      const bytes = await c.downloadMedia(media)
      const found = await c.search(chatId, 'chromi')
      return { text: new TextDecoder().decode(bytes), name: media.name, found: found.map((m) => m.text) }
    }`
    assert.deepEqual(await page.evaluate(`(${DOWNLOAD})(${JSON.stringify({ chatId, id: sent.mediaId })})`), {
      text: 'notes for the browser',
      name: 'notes.txt',
      found: ['photo from chromium', 'lima from chromium'],
    })
  })
})
