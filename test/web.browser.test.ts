import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { type Browser, chromium, type Page } from 'playwright-core'
import sharp from 'sharp'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { ROOT } from './helpers/processes.ts'

const SHOTS = join(ROOT, 'test-output', 'browser')
const WAIT = { timeout: 15_000 }

/**
 * The web chat that `npm start` serves, in headless Chromium (Debian's, installed by the test
 * setup), as two people would use it: two browser profiles, Alice and Bob.
 */
describe('the web chat in a real browser', () => {
  let t: TestNode
  let browser: Browser
  let alice: Page
  let bob: Page
  const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) })

  before(async () => {
    mkdirSync(SHOTS, { recursive: true })
    // No JWT secret: the embedded default, whose generated secret signs dev tokens.
    t = await startTestNode({ NATTER_JWT_SECRET: '' })
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
    const page = async () => {
      const p = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage()
      await p.goto(t.httpUrl)
      return p
    }
    ;[alice, bob] = await Promise.all([page(), page()])
  })
  after(async () => {
    await browser?.close()
    await t?.close()
  })

  const signIn = async (page: Page, name: string) => {
    await page.fill('#name', name)
    await page.click('#login button')
    await page.waitForSelector('#connection[data-state="connected"]', WAIT)
  }
  const send = async (page: Page, text: string) => {
    await page.fill('#text', text)
    await page.press('#text', 'Enter')
  }
  const message = (page: Page, text: string) => page.locator('#messages li', { hasText: text })

  it('lets Alice and Bob chat both ways, with ticks, typing, presence and an image', async () => {
    await signIn(alice, 'alice')
    await signIn(bob, 'bob')

    await alice.fill('#with', 'bob')
    await alice.press('#with', 'Enter')
    await alice.waitForSelector('#conversation:not([hidden])', WAIT)
    assert.equal(await alice.textContent('#peer'), 'bob')
    await send(alice, 'hello bob')
    await message(alice, 'hello bob').waitFor(WAIT)

    await bob.locator('#chats li', { hasText: 'alice' }).click(WAIT)
    await message(bob, 'hello bob').waitFor(WAIT)
    // Bob has the chat open: Alice's message turns read on her screen.
    await alice.waitForSelector('#messages li.mine[data-status="read"]', WAIT)
    assert.equal(await alice.locator('#messages li.mine .ticks').first().getAttribute('title'), 'read')
    await alice.waitForSelector('#presence.online', WAIT)
    assert.equal(await alice.textContent('#presence'), 'online')

    await bob.locator('#text').pressSequentially('hi al')
    await alice.waitForFunction(
      `document.querySelector('#typing')?.textContent === 'bob is typing…'`,
      null,
      WAIT,
    )
    await bob.locator('#text').pressSequentially('ice')
    await bob.press('#text', 'Enter')
    await message(alice, 'hi alice').waitFor(WAIT)
    await alice.waitForFunction(`document.querySelector('#typing')?.textContent === ''`, null, WAIT)
    await bob.waitForSelector('#messages li.mine[data-status="read"]', WAIT)

    // Bob names himself: Alice's header, chat list and typing line show the name, live.
    await bob.fill('#display-name', 'Bob the Builder')
    await bob.press('#display-name', 'Enter')
    await bob.waitForFunction(
      `document.querySelector('#me')?.textContent === 'Signed in as Bob the Builder (bob)'`,
      null,
      WAIT,
    )
    await alice.waitForFunction(
      `document.querySelector('#peer')?.textContent === 'Bob the Builder'`,
      null,
      WAIT,
    )
    await alice.locator('#chats li .name', { hasText: 'Bob the Builder' }).waitFor(WAIT)
    await bob.locator('#text').pressSequentially('x')
    await alice.waitForFunction(
      `document.querySelector('#typing')?.textContent === 'Bob the Builder is typing…'`,
      null,
      WAIT,
    )
    await bob.fill('#text', '')
    await bob.evaluate(`window.natter.stopTyping(document.querySelector('#chats li.active').dataset.chatId)`)
    await alice.waitForFunction(`document.querySelector('#typing')?.textContent === ''`, null, WAIT)

    const image = await sharp({
      create: { width: 640, height: 400, channels: 3, background: { r: 240, g: 120, b: 40 } },
    })
      .png()
      .toBuffer()
    await alice.setInputFiles('#image', { name: 'sunset.png', mimeType: 'image/png', buffer: image })
    // Page code, run in the browser.
    const loaded = `[...document.querySelectorAll('#messages img.media')].some((i) => i.complete && i.naturalWidth > 0)`
    await bob.waitForFunction(loaded, null, WAIT)
    await alice.waitForFunction(loaded, null, WAIT)
    const width = await bob.$eval(
      '#messages img.media',
      (i) => (i as unknown as { naturalWidth: number }).naturalWidth,
    )
    assert.equal(width, 320, 'Bob sees the thumbnail')

    assert.deepEqual(
      await alice.$$eval('#messages li:not(.event) .text', (els) => els.map((e) => e.textContent)),
      ['hello bob', 'hi alice', ''],
    )
    await shot(alice, 'alice')
    await shot(bob, 'bob')

    // Offline, a message waits in the outbox (IndexedDB), survives a reload, and goes out once.
    await alice.context().setOffline(true)
    await alice.evaluate('window.natter.mqtt.stream.destroy()')
    await alice.waitForSelector('#connection[data-state="reconnecting"]', WAIT)
    // Sent through the page's client, to wait until the outbox has it in IndexedDB.
    await alice.evaluate(`window.natter
      .send(document.querySelector('#chats li.active').dataset.chatId, { text: 'written offline' })
      .queued`)
    await alice.waitForSelector('#messages li.mine[data-status="sending"] >> text=written offline', WAIT)
    const saved = await alice.evaluate(`new Promise((resolve, reject) => {
      const open = indexedDB.open('natter-outbox:alice/' + localStorage.getItem('natter:device:alice'))
      open.onerror = () => reject(open.error)
      open.onsuccess = () => {
        const count = open.result.transaction('items').objectStore('items').count()
        count.onsuccess = () => resolve(count.result)
      }
    })`)
    assert.equal(saved, 1)
    await alice.evaluate('window.natter.close()')
    assert.equal(await message(bob, 'written offline').count(), 0, 'nothing left the browser while offline')
    await alice.context().setOffline(false)
    await alice.reload()
    await signIn(alice, 'alice')
    await message(bob, 'written offline').waitFor(WAIT)
    await alice.locator('#chats li', { hasText: 'bob' }).click(WAIT)
    await alice.waitForSelector('#messages li.mine[data-status="read"] >> text=written offline', WAIT)
    assert.equal(await message(bob, 'written offline').count(), 1)

    await bob.context().close()
    await alice.waitForFunction(
      `/^last seen /.test(document.querySelector('#presence')?.textContent ?? '')`,
      null,
      WAIT,
    )
    await shot(alice, 'alice-bob-left')
  })

  it('keeps a message the server refuses, with its text and why, until Retry or Cancel', async () => {
    // Alice's chat with Bob is open from the test before. One character over the limit.
    const long = 'x'.repeat(4001)
    await send(alice, long)
    const failed = alice.locator('#messages li.mine[data-status="failed"]')
    await failed.waitFor(WAIT)
    assert.equal(await failed.locator('.text').textContent(), long)
    assert.match((await failed.locator('.failure').textContent()) ?? '', /4001 characters; the limit is 4000/)
    await shot(alice, 'refused-message')
    // Retry sends the same text again: refused again, still there.
    await failed.locator('button.retry').click()
    await alice.waitForSelector('#messages li.mine[data-status="failed"] button.retry', WAIT)
    await failed.locator('button.cancel').click()
    await failed.waitFor({ state: 'detached', ...WAIT })
    // What follows is stored as usual (Bob left in the test before: one tick, stored).
    await send(alice, 'after the refusal')
    await alice.waitForSelector('#messages li.mine[data-status="sent"] >> text=after the refusal', WAIT)
  })

  it('refuses dev tokens to anything but the embedded default', async () => {
    const secured = await startTestNode()
    try {
      const res = await fetch(`${secured.httpUrl}/dev/token`, {
        method: 'POST',
        body: '{"userId":"mallory"}',
      })
      assert.equal(res.status, 404)
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /embedded default/)
    } finally {
      await secured.close()
    }
  })
})
