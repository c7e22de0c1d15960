import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  chromium,
  type Page,
} from 'playwright-core'
import sharp from 'sharp'
import { connectClient } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { ROOT } from './helpers/processes.ts'

const SHOTS = join(ROOT, 'test-output', 'browser')
const WAIT = { timeout: 15_000 }
// axe-core, the accessibility checker, injected into pages. (web/ is searched too: a worktree
// whose node_modules is shared may have the web chat's packages there.)
const AXE = readFileSync(
  createRequire(import.meta.url).resolve('axe-core/axe.min.js', { paths: [ROOT, join(ROOT, 'web')] }),
  'utf8',
)

/** What axe-core finds serious or critical on the page (rule, impact, the elements). */
async function accessibilityProblems(page: Page): Promise<string[]> {
  if (!(await page.evaluate('typeof window.axe'))?.toString().includes('object')) {
    await page.addScriptTag({ content: AXE })
  }
  const found = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
    r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.map((n) => n.target.join(' ') + ' ' + (n.failureSummary ?? '')).join('; ')))`)) as string[]
  return found
}

/** axe's page structure rules (moderate): one main landmark, one h1. Run after accessibilityProblems (it injects axe). */
function structureProblems(page: Page): Promise<string[]> {
  return page.evaluate(`axe
    .run(document, { runOnly: ['landmark-one-main', 'page-has-heading-one'] })
    .then((r) => r.violations.map((v) => v.id))`) as Promise<string[]>
}

/**
 * The web chat that `npm start` serves (web/, Preact over the client SDK), in headless Chromium
 * (Debian's, installed by the test setup), as people would use it: Alice, Bob and Carol, each in
 * their own browser profile, on a desktop window, and Bob once more on a phone in dark mode.
 */
describe('the web chat in a real browser', () => {
  let t: TestNode
  let browser: Browser
  let alice: Page
  let bob: Page
  const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) })
  const newPage = async (o: BrowserContextOptions = {}) => {
    const p = await (await browser.newContext({ viewport: { width: 1000, height: 700 }, ...o })).newPage()
    await p.goto(t.httpUrl)
    return p
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true })
    // No JWT secret: the embedded default, whose generated secret signs dev tokens.
    t = await startTestNode({ NATTER_JWT_SECRET: '' })
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
    ;[alice, bob] = await Promise.all([newPage(), newPage()])
  })
  after(async () => {
    await browser?.close()
    await t?.close()
  })

  const connected = (page: Page) => page.waitForSelector('#connection[data-state="connected"]', WAIT)
  const signIn = async (page: Page, name: string) => {
    await page.fill('#name', name)
    await page.click('#login button')
    await connected(page)
  }
  const send = async (page: Page, text: string) => {
    await page.fill('#text', text)
    await page.press('#text', 'Enter')
  }
  const message = (page: Page, text: string) => page.locator('#messages li', { hasText: text })
  const openChat = (page: Page, title: string) =>
    page
      .locator('#chats li', { hasText: title })
      .click(WAIT)
      .catch(async (e: Error) => {
        // What the list showed instead.
        process.stderr.write(`#chats: ${await page.$eval('#app', (x) => x.outerHTML).catch(() => 'none')}\n`)
        throw e
      })
  // Page code is given as strings: it runs in the browser.
  const textIs = (page: Page, selector: string, text: string) =>
    page.waitForFunction(
      `document.querySelector(${JSON.stringify(selector)})?.textContent === ${JSON.stringify(text)}`,
      null,
      WAIT,
    )
  const deviceOf = (page: Page): Promise<string> =>
    page.evaluate(`JSON.parse(sessionStorage.getItem('natter:session') ?? '{}').deviceId`)

  it('lets Alice and Bob chat both ways, with ticks, typing, presence and an image', async () => {
    await signIn(alice, 'alice')
    await signIn(bob, 'bob')
    // Signed in: the form is gone, not merely under the app.
    assert.equal(await alice.locator('#login').count(), 0)

    await alice.fill('#with', 'bob')
    await alice.press('#with', 'Enter')
    await alice.waitForSelector('#conversation', WAIT)
    await textIs(alice, '#peer', 'bob')
    await send(alice, 'hello bob')
    await message(alice, 'hello bob').waitFor(WAIT)

    // Bob's list shows the chat with a preview and an unread count before he opens it.
    await bob.locator('#chats li .preview', { hasText: 'hello bob' }).waitFor(WAIT)
    await bob.locator('#chats li .unread', { hasText: '1' }).waitFor(WAIT)
    await openChat(bob, 'alice')
    await message(bob, 'hello bob').waitFor(WAIT)
    // Bob has the chat open: Alice's message turns read on her screen.
    await alice.waitForSelector('#messages li.mine[data-status="read"]', WAIT)
    assert.equal(await alice.locator('#messages li.mine .ticks').first().getAttribute('title'), 'read')
    await alice.waitForSelector('#presence.online', WAIT)
    assert.equal(await alice.textContent('#presence'), 'online')
    assert.equal(await bob.locator('#chats li .unread').count(), 0)

    await bob.locator('#text').pressSequentially('hi al')
    await textIs(alice, '#typing', 'bob is typing…')
    await bob.locator('#text').pressSequentially('ice')
    await bob.press('#text', 'Enter')
    await message(alice, 'hi alice').waitFor(WAIT)
    await textIs(alice, '#typing', '')
    await bob.waitForSelector('#messages li.mine[data-status="read"]', WAIT)

    // Bob names himself in his profile panel: Alice's header, chat list and typing line show the
    // name, live.
    await bob.click('#profile-button')
    await bob.fill('#display-name', 'Bob the Builder')
    await bob.press('#display-name', 'Enter')
    await textIs(bob, '#me', 'Signed in as Bob the Builder (bob)')
    await textIs(alice, '#peer', 'Bob the Builder')
    await alice.locator('#chats li .name', { hasText: 'Bob the Builder' }).waitFor(WAIT)
    await bob.locator('#text').pressSequentially('x')
    await textIs(alice, '#typing', 'Bob the Builder is typing…')
    await bob.fill('#text', '')
    await bob.evaluate(`window.natter.stopTyping(document.querySelector('#chats li.active').dataset.chatId)`)
    await textIs(alice, '#typing', '')

    // Bob picks a photo: Alice sees it in her chat list and the chat's header, live; before, an
    // initials circle.
    await textIs(alice, '#conversation header .avatar', 'BB')
    // A diagonal gradient, green to blue: a photo, not a flat colour like the initials circle.
    const pixels = Buffer.alloc(200 * 200 * 3)
    for (let i = 0; i < 200 * 200; i++) {
      const d = ((i % 200) + Math.floor(i / 200)) / 400
      pixels.set([40, Math.round(200 - 120 * d), Math.round(90 + 160 * d)], i * 3)
    }
    const face = await sharp(pixels, { raw: { width: 200, height: 200, channels: 3 } })
      .png()
      .toBuffer()
    await bob.setInputFiles('#avatar-file', { name: 'me.png', mimeType: 'image/png', buffer: face })
    await textIs(bob, '#profile-status', 'Photo saved')
    const avatarShown = (where: string) =>
      `[...document.querySelectorAll(${JSON.stringify(`${where} .avatar img`)})].some((i) => i.complete && i.naturalWidth > 0)`
    await alice.waitForFunction(avatarShown('#chats li'), null, WAIT)
    await alice.waitForFunction(avatarShown('#conversation header'), null, WAIT)
    await bob.waitForFunction(avatarShown('#profile-panel'), null, WAIT)
    await shot(bob, 'profile-panel')
    assert.deepEqual(await accessibilityProblems(bob), [])
    await bob.click('#profile-panel button.close')

    const image = await sharp({
      create: { width: 640, height: 400, channels: 3, background: { r: 240, g: 120, b: 40 } },
    })
      .png()
      .toBuffer()
    await alice.setInputFiles('#attach', { name: 'sunset.png', mimeType: 'image/png', buffer: image })
    // Page code, run in the browser.
    const loaded = `[...document.querySelectorAll('#messages img.media')].some((i) => i.complete && i.naturalWidth > 0)`
    await bob.waitForFunction(loaded, null, WAIT)
    await alice.waitForFunction(loaded, null, WAIT)
    const width = await bob.$eval(
      '#messages img.media',
      (i) => (i as unknown as { naturalWidth: number }).naturalWidth,
    )
    assert.equal(width, 320, 'Bob sees the thumbnail')
    // The newest image is not cut off: both are scrolled to the very bottom once it loaded.
    for (const p of [alice, bob]) {
      await p.waitForFunction(
        `(() => { const l = document.querySelector('#messages'); return l.scrollHeight - l.scrollTop - l.clientHeight < 2 })()`,
        null,
        WAIT,
      )
    }

    assert.deepEqual(await alice.$$eval('#messages li.msg .text', (els) => els.map((e) => e.textContent)), [
      'hello bob',
      'hi alice',
      '',
    ])
    await shot(alice, 'alice')
    await shot(bob, 'bob')
    assert.deepEqual(await accessibilityProblems(alice), [])

    // Offline: the banner says so within 5 s; a message waits in the outbox (IndexedDB),
    // survives a reload, and goes out once.
    const device = await deviceOf(alice)
    const dropped = Date.now()
    await alice.context().setOffline(true)
    await alice.waitForSelector('#connection[data-state="offline"]', { timeout: 5000 })
    assert.ok(Date.now() - dropped < 5000, 'offline shown within 5 s')
    await shot(alice, 'alice-offline')
    // Sent through the page's client, to wait until the outbox has it in IndexedDB.
    await alice.evaluate(`window.natter
      .send(document.querySelector('#chats li.active').dataset.chatId, { text: 'written offline' })
      .queued`)
    await alice.waitForSelector('#messages li.mine[data-status="sending"] >> text=written offline', WAIT)
    const saved = await alice.evaluate(`new Promise((resolve, reject) => {
      const open = indexedDB.open('natter-outbox:alice/${device}')
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
    await alice.fill('#text', 'a draft')
    // A reload keeps the tab signed in, as the same device, and the draft.
    await alice.reload()
    await connected(alice)
    assert.equal(await deviceOf(alice), device)
    await message(bob, 'written offline').waitFor(WAIT)
    await openChat(alice, 'Bob the Builder')
    await alice.waitForSelector('#messages li.mine[data-status="read"] >> text=written offline', WAIT)
    await alice.waitForFunction(`document.querySelector('#text').value === 'a draft'`, null, WAIT)
    await alice.fill('#text', '')
    assert.equal(await message(bob, 'written offline').count(), 1)

    // A second tab of Alice's is a second device: both stay connected.
    const tab = await alice.context().newPage()
    await tab.goto(t.httpUrl)
    await signIn(tab, 'alice')
    assert.notEqual(await deviceOf(tab), device)
    // The server holds both devices connected at once (one device id would cut the other).
    const listed = (await tab.evaluate(`window.natter.request('devices.list')`)) as {
      devices: { deviceId: string; connected: boolean }[]
    }
    assert.deepEqual(
      listed.devices
        .filter((d) => d.connected)
        .map((d) => d.deviceId)
        .sort(),
      [device, await deviceOf(tab)].sort(),
    )
    assert.equal(await alice.getAttribute('#connection', 'data-state'), 'connected')
    assert.equal(await tab.getAttribute('#connection', 'data-state'), 'connected')
    await tab.close()

    await bob.context().close()
    await alice.waitForFunction(
      `/^last seen /.test(document.querySelector('#presence')?.textContent ?? '')`,
      null,
      WAIT,
    )
    await shot(alice, 'alice-bob-left')
  })

  it('keeps a message the server refuses, with its text and why, until Retry or Cancel', async () => {
    // Alice's chat with Bob is open from the test before. One character over the limit: the
    // composer counts as the server does (graphemes: each family emoji is one) and does not send.
    const long = 'x'.repeat(4001)
    // The list redraws as the test before ends (a read receipt, a profile): wait for the row.
    const chatId = await alice.getAttribute('#chats li.active', 'data-chat-id', WAIT)
    await alice.fill('#text', `${'x'.repeat(3998)}👨‍👩‍👧‍👦👨‍👩‍👧‍👦`)
    await textIs(alice, '#char-count', '4,000 of 4,000 characters')
    assert.equal(await alice.isEnabled('#composer button[type="submit"]'), true)
    await alice.fill('#text', long)
    await textIs(alice, '#char-count', '1 character over the limit of 4,000')
    assert.equal(await alice.isDisabled('#composer button[type="submit"]'), true)
    await alice.press('#text', 'Enter')
    assert.equal(await alice.inputValue('#text'), long, 'not sent, kept')
    await shot(alice, 'composer-over-limit')
    // Zero-width characters alone are nothing to send.
    await alice.fill('#text', '\u200b\u200b\u2060')
    await alice.press('#text', 'Enter')
    assert.equal(await alice.inputValue('#text'), '\u200b\u200b\u2060', 'not sent')
    await alice.fill('#text', '')
    assert.equal(await alice.locator('#messages li.pending').count(), 0)
    // The server refuses what another client sends over its limit: kept with its text and why.
    await alice.evaluate(`window.natter.send(${JSON.stringify(chatId)}, { text: 'x'.repeat(4001) }).queued`)
    const failed = alice.locator('#messages li.mine[data-status="failed"]')
    await failed.waitFor(WAIT)
    assert.equal(await failed.locator('.text').textContent(), long)
    assert.match((await failed.locator('.failure').textContent()) ?? '', /4001 characters; the limit is 4000/)
    await shot(alice, 'refused-message')
    // Retry sends the same text again: refused again, still there. The failed state is on screen
    // before and after, so the wait is for the SDK's second refusal, not for a selector.
    await alice.evaluate(`{
      window.refusedAgain = false
      window.natter.on('status', (s) => { if (s.status === 'failed') window.refusedAgain = true })
    }`)
    await failed.locator('button.retry').click()
    await alice.waitForFunction('window.refusedAgain === true', undefined, WAIT)
    await alice.waitForSelector('#messages li.mine[data-status="failed"] button.retry', WAIT)
    // Edit puts its text in the composer; sent shorter, it goes (the same message: chat.retry).
    await failed.locator('button.edit-unsent').click()
    await alice.locator('.composing[data-mode="fix"]').waitFor(WAIT)
    // The composer takes the text in the render after the mode: wait for it, then compare.
    await alice.waitForFunction(
      `document.querySelector('#text')?.value.length === ${long.length}`,
      undefined,
      WAIT,
    )
    assert.equal(await alice.inputValue('#text'), long)
    await send(alice, 'shorter now')
    await alice.waitForSelector('#messages li.mine[data-status="sent"] >> text=shorter now', WAIT)
    await failed.waitFor({ state: 'detached', ...WAIT })
    // What follows is stored as usual (Bob left in the test before: one tick, stored).
    await send(alice, 'after the refusal')
    await alice.waitForSelector('#messages li.mine[data-status="sent"] >> text=after the refusal', WAIT)

    // An edit the server refuses (over the limit) stays on its message, with why and its text,
    // until Retry or Cancel; the message keeps its text meanwhile.
    const target = message(alice, 'after the refusal').first()
    await target.locator('.menu-button').click()
    await target.locator('button.edit').click()
    await alice.locator('.composing[data-mode="edit"]').waitFor(WAIT)
    // The same text again is no edit: nothing is sent, no "edited" mark.
    await send(alice, 'after the refusal')
    assert.equal(await alice.locator('.composing').count(), 0)
    assert.equal(
      await alice.evaluate(`window.natter.chat(${JSON.stringify(chatId)}).pendingChanges.length`),
      0,
    )
    assert.equal(await target.locator('.edited').count(), 0)
    // Over the limit, from another client: refused.
    const seq = Number(await target.getAttribute('data-seq'))
    await alice.evaluate(
      `window.natter.edit(${JSON.stringify(chatId)}, ${seq}, 'x'.repeat(4001)).catch(() => {})`,
    )
    const change = target.locator('.change-failed[data-op="edit"]')
    await change.waitFor(WAIT)
    assert.match(
      (await change.locator('.failure').textContent()) ?? '',
      /^Edit not saved: .*4001 characters; the limit is 4000/,
    )
    assert.equal(await change.locator('.change-text').textContent(), long)
    assert.equal(await target.locator(':scope > .text').textContent(), 'after the refusal')
    assert.equal(await alice.locator('#send-error').count(), 0, 'said once, on the message')
    assert.equal(
      await alice.evaluate(`window.natter.chat(document.querySelector('#chats li.active').dataset.chatId)
        .pendingChanges.filter((c) => c.failed).length`),
      1,
    )
    await shot(alice, 'refused-edit')
    assert.deepEqual(await accessibilityProblems(alice), [])
    // Retry makes it again: refused again, still there.
    await change.locator('button.retry').click()
    await target.locator('.change-failed[data-op="edit"] button.retry').waitFor(WAIT)
    await change.locator('button.cancel').click()
    await target.locator('.change').waitFor({ state: 'detached', ...WAIT })
    assert.equal(await target.locator(':scope > .text').textContent(), 'after the refusal')
    assert.equal(await target.locator('.edited').count(), 0)
  })

  it('replies, edits and deletes from the message menu; multi-line text, links and long words', async () => {
    bob = await newPage()
    await signIn(bob, 'bob')
    await openChat(bob, 'alice')
    // Shift+Enter is a new line, Enter sends.
    await alice.fill('#text', 'line one')
    await alice.press('#text', 'Shift+Enter')
    await alice.locator('#text').pressSequentially('see https://example.com/a?b=1.')
    await alice.press('#text', 'Enter')
    const first = message(bob, 'line one')
    await first.waitFor(WAIT)
    assert.equal(await first.locator('.text').textContent(), 'line one\nsee https://example.com/a?b=1.')
    assert.equal(await first.locator('.text a').getAttribute('href'), 'https://example.com/a?b=1')
    assert.equal(await first.locator('.text a').getAttribute('rel'), 'noopener noreferrer')

    // Bob replies to it from the menu: both see the quote.
    await first.locator('.menu-button').click()
    await first.locator('button.reply').click()
    await bob.locator('.composing[data-mode="reply"]').waitFor(WAIT)
    await send(bob, 'a reply')
    const reply = message(alice, 'a reply')
    await reply.waitFor(WAIT)
    assert.match((await reply.locator('.quote').textContent()) ?? '', /line one/)

    const mine = message(alice, 'line one').first()
    // Each message says who wrote it to screen readers, in the direct chat too.
    assert.equal(await mine.locator('.spoken-sender').textContent(), 'You: ')
    assert.equal(await first.first().locator('.spoken-sender').textContent(), 'alice: ')
    // By keyboard the menu is a menu: the focus moves into it, arrows move, Escape closes it and
    // gives the focus back to its button.
    const focused = (page: Page, cls: string) =>
      page.waitForFunction(`document.activeElement?.classList.contains(${JSON.stringify(cls)})`, null, WAIT)
    await mine.locator('.menu-button').focus()
    await alice.keyboard.press('Enter')
    await focused(alice, 'reply')
    await alice.keyboard.press('ArrowDown')
    await focused(alice, 'edit')
    await alice.keyboard.press('ArrowUp')
    await alice.keyboard.press('ArrowUp')
    await focused(alice, 'delete')
    await alice.keyboard.press('Escape')
    await mine.locator('[role="menu"]').waitFor({ state: 'detached', ...WAIT })
    await focused(alice, 'menu-button')
    // One main landmark and one h1 (axe's moderate rules, not in accessibilityProblems).
    assert.deepEqual(await accessibilityProblems(alice), [])
    assert.deepEqual(await structureProblems(alice), [])

    // Alice edits her message: Bob sees the new text and the mark.
    await mine.locator('.menu-button').click()
    await mine.locator('button.edit').click()
    await alice.waitForFunction(
      `document.querySelector('#text').value === ${JSON.stringify('line one\nsee https://example.com/a?b=1.')}`,
      null,
      WAIT,
    )
    await send(alice, 'line one, edited')
    const edited = bob.locator('#messages li.msg', { hasText: 'line one, edited' }).first()
    await edited.locator('.edited').waitFor(WAIT)
    // The quote follows the edit.
    await alice.locator('#messages .quote', { hasText: 'line one, edited' }).waitFor(WAIT)

    // Alice deletes it: styled as deleted on both screens, and the quote says so.
    const again = message(alice, 'line one, edited').first()
    await again.locator('.menu-button').click()
    await again.locator('button.delete').click()
    await bob.locator('#messages li.msg.deleted', { hasText: 'This message was deleted' }).waitFor(WAIT)
    await alice.locator('#messages li.msg.deleted').waitFor(WAIT)
    await bob.locator('#messages .quote', { hasText: 'Message deleted' }).waitFor(WAIT)

    // A long word wraps inside its bubble: nothing scrolls sideways.
    await send(alice, `https://example.com/${'a'.repeat(300)}`)
    await message(bob, 'aaaaaaaaaa').waitFor(WAIT)
    for (const p of [alice, bob]) {
      const [scroll, client] = await p.$eval('#messages', (e) => [e.scrollWidth, e.clientWidth])
      assert.ok((scroll ?? 0) <= (client ?? 0), `no sideways scroll (${scroll} > ${client})`)
    }
    await shot(bob, 'menu-edit-delete')

    // Search finds messages on the server, with sender and time.
    await alice.click('#search-button')
    await alice.fill('#search-query', 'reply')
    await alice.press('#search-query', 'Enter')
    const found = alice.locator('#search-results li', { hasText: 'a reply' })
    await found.waitFor(WAIT)
    await found.locator('.sender', { hasText: 'Bob the Builder' }).waitFor(WAIT)
    await shot(alice, 'search')
    await alice.click('#search-button')
  })

  it('shows an upload at once in the image’s shape, with progress; Cancel aborts it and nothing is sent', async () => {
    // The chat with Bob is open on both screens. Alice's uploads crawl at 256 KB/s.
    const cdp = await alice.context().newCDPSession(alice)
    await cdp.send('Network.enable')
    const throttle = (uploadThroughput: number) =>
      cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 0,
        downloadThroughput: -1,
        uploadThroughput,
      })
    await throttle(256 * 1024)
    // Noise does not compress: a PNG of about 2.9 MB.
    const noise = await sharp(randomBytes(1200 * 800 * 3), { raw: { width: 1200, height: 800, channels: 3 } })
      .png()
      .toBuffer()
    const abortedPut = new Promise<string>((resolve) =>
      alice.on('requestfailed', (r) => {
        if (r.method() === 'PUT') resolve(r.failure()?.errorText ?? '')
      }),
    )
    const before = await bob.locator('#messages li.msg').count()
    await alice.setInputFiles('#attach', { name: 'noise.png', mimeType: 'image/png', buffer: noise })
    const bubble = alice.locator('#messages li.upload')
    await bubble.locator('.upload-image img').waitFor(WAIT)
    // The bubble has the image's own shape (1200 × 800) while the bytes go.
    const box = await bubble.locator('.upload-image').boundingBox()
    assert.ok(box && Math.abs(box.width / box.height - 1.5) < 0.05, `shaped ${box?.width} × ${box?.height}`)
    await alice.waitForFunction(
      `(() => { const p = document.querySelector('#messages li.upload progress'); return !!p && p.value > 0 && p.value < p.max })()`,
      null,
      WAIT,
    )
    assert.match((await bubble.locator('.upload-percent').textContent()) ?? '', /^\d+%$/)
    await shot(alice, 'upload-progress')
    assert.deepEqual(await accessibilityProblems(alice), [])
    await bubble.locator('button.cancel-upload').click()
    await bubble.waitFor({ state: 'detached', ...WAIT })
    assert.match(await abortedPut, /ERR_ABORTED/)
    await throttle(-1)
    await cdp.detach()
    // What Alice sends next is the only thing Bob gets: nothing came of the cancelled upload.
    await send(alice, 'after the cancel')
    await message(bob, 'after the cancel').waitFor(WAIT)
    assert.equal(await bob.locator('#messages li.msg').count(), before + 1)
    assert.equal(await alice.locator('#messages li.pending, #messages li.upload').count(), 0)
  })

  it('shows files as cards with name, size, type and a download, for sender and receiver', async () => {
    const text = 'shopping list\nmilk\n'
    await alice.setInputFiles('#attach', [
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from(text) },
      { name: 'report.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.4\n%%EOF\n') },
    ])
    // The sent messages' cards (data-seq), not the sender's upload bubbles before them, which show
    // the type the file declared until it is checked.
    for (const p of [alice, bob]) {
      const card = p.locator('#messages li.msg[data-seq] .file-card', { hasText: 'notes.txt' })
      await card.waitFor(WAIT)
      assert.equal(await card.locator('.file-icon').textContent(), 'TXT')
      assert.equal(await card.locator('.file-size').textContent(), '19 B · text/plain')
      // The link downloads the file's own bytes.
      const href = await card.locator('a.file-download').getAttribute('href')
      assert.equal(await p.evaluate(`fetch(${JSON.stringify(href)}).then((r) => r.text())`), text)
      const pdf = p.locator('#messages li.msg[data-seq] .file-card', { hasText: 'report.pdf' })
      await pdf.waitFor(WAIT)
      assert.equal(await pdf.locator('.file-icon').textContent(), 'PDF')
    }
    // Text that calls itself a PNG does not decode: it goes as a file, never a broken image.
    await alice.setInputFiles('#attach', {
      name: 'fake.png',
      mimeType: 'image/png',
      buffer: Buffer.from('not an image'),
    })
    for (const p of [alice, bob]) {
      const card = p.locator('#messages li.msg[data-seq] .file-card', { hasText: 'fake.png' })
      await card.waitFor(WAIT)
      assert.equal(await card.locator('.file-size').textContent(), '12 B · application/octet-stream')
      const broken = await p.$$eval(
        '#messages img.media',
        (imgs) =>
          imgs.filter(
            (i) =>
              (i as unknown as { complete: boolean; naturalWidth: number }).complete &&
              (i as unknown as { naturalWidth: number }).naturalWidth === 0,
          ).length,
      )
      assert.equal(broken, 0, 'no broken image')
    }
    await shot(bob, 'file-cards')
    assert.deepEqual(await accessibilityProblems(bob), [])
  })

  it('creates and runs a group of three: sender names, members, admins, add, remove, leave', async () => {
    const carol = await newPage()
    await signIn(carol, 'carol')
    await alice.click('#new-group-button')
    await alice.fill('#group-name', 'Trip')
    await alice.fill('#group-members', 'bob, carol')
    // A double click creates one group: the button waits for the answer.
    await alice.dblclick('#new-group button[type="submit"]')
    await textIs(alice, '#peer', 'Trip')
    await message(alice, 'alice created the group “Trip”').waitFor(WAIT)
    const trips = (await alice.evaluate(`window.natter.listChats()`)) as { name: string | null }[]
    assert.equal(trips.filter((c) => c.name === 'Trip').length, 1, 'one group for a double click')
    await send(alice, 'who is in?')

    // Carol has not opened it: preview with the sender and an unread count.
    await carol.locator('#chats li .preview', { hasText: 'alice: who is in?' }).waitFor(WAIT)
    await carol.locator('#chats li .unread', { hasText: '1' }).waitFor(WAIT)
    await openChat(bob, 'Trip')
    await send(bob, 'me!')
    await openChat(carol, 'Trip')
    await send(carol, 'carol was here')
    await carol.waitForSelector('#messages li.msg.mine[data-seq] >> text=carol was here', WAIT)
    const fromBob = message(carol, 'me!')
    await fromBob.waitFor(WAIT)
    // Names and avatars arrive with the profiles, a moment after the messages.
    await fromBob.locator('.sender', { hasText: 'Bob the Builder' }).waitFor(WAIT)
    await carol.waitForFunction(
      `[...document.querySelectorAll('#messages li.msg .sender .avatar img')].some((i) => i.complete && i.naturalWidth > 0)`,
      null,
      WAIT,
    )
    assert.equal(await message(carol, 'who is in?').locator('.sender .avatar').textContent(), 'A')
    assert.equal(await message(carol, 'who is in?').locator('.sender-name').textContent(), 'alice')
    assert.match((await carol.textContent('#group-summary')) ?? '', /3 members, 1 admin/)

    await alice.click('#info')
    const admin = alice.locator('#members li', { hasText: 'alice' })
    assert.equal(await admin.locator('.role').textContent(), 'admin')
    await alice.locator('#members li[data-user-id="bob"] .avatar img').waitFor(WAIT)

    // Carol writes while her network is down; Alice removes her meanwhile. Back online, Carol's
    // message is refused: it stays with its text, and nothing in the chat offers to act.
    await carol.context().setOffline(true)
    await carol.waitForSelector('#connection[data-state="offline"]', WAIT)
    await send(carol, 'count me in too')
    await carol.locator('#messages li.pending', { hasText: 'count me in too' }).waitFor(WAIT)
    // And deletes a message of hers: it waits in the outbox, said on the message.
    const hers = message(carol, 'carol was here').first()
    await hers.locator('.menu-button').click()
    await hers.locator('button.delete').click()
    await hers.locator('.change-pending[data-op="delete"]').waitFor(WAIT)
    await alice.click('button[aria-label="Remove carol"]')
    await message(alice, 'alice removed carol').waitFor(WAIT)
    await carol.context().setOffline(false)
    await carol.locator('.removed').waitFor(WAIT)
    const refused = carol.locator('#messages li.pending[data-status="failed"]', {
      hasText: 'count me in too',
    })
    await refused.waitFor(WAIT)
    assert.equal(await refused.locator('.text').textContent(), 'count me in too')
    assert.equal(await refused.locator('button.retry').count(), 0, 'nothing to retry in a chat one left')
    assert.equal(
      await refused.locator('.failure').textContent(),
      'Not sent: you are no longer a member of this chat.',
    )
    // The delete is refused too: the message stays as it was, the delete with why, to remove.
    const undone = hers.locator('.change-failed[data-op="delete"]')
    await undone.waitFor(WAIT)
    await textIs(
      carol,
      '#messages li.msg.mine .change-failed[data-op="delete"] .failure',
      'Not deleted: you are no longer a member of this chat.',
    )
    assert.equal(await undone.locator('button.retry').count(), 0, 'nothing to retry in a chat one left')
    assert.equal(await hers.locator(':scope > .text').textContent(), 'carol was here')
    assert.equal(await message(alice, 'carol was here').count(), 1, 'not deleted for the others')
    assert.equal(await carol.textContent('#group-summary'), 'You are no longer a member')
    assert.equal(await carol.locator('#composer').count(), 0, 'a removed member cannot write')
    assert.equal(await carol.locator('#attach').count(), 0, 'nor attach')
    assert.equal(await carol.locator('#messages .menu-button').count(), 0, 'nor reply, edit or delete')
    await carol.click('#info')
    await carol.locator('#members li', { hasText: 'Bob the Builder' }).waitFor(WAIT)
    assert.equal(await carol.locator('#group-info button').count(), 0, 'no add, remove or leave')
    assert.equal(await carol.locator('#add-member').count(), 0)
    await shot(carol, 'group-removed')
    assert.deepEqual(await accessibilityProblems(carol), [])
    await undone.locator('button.cancel').click()
    await hers.locator('.change').waitFor({ state: 'detached', ...WAIT })

    await alice.fill('#add-user', 'carol')
    await alice.press('#add-user', 'Enter')
    await message(alice, 'alice added carol').waitFor(WAIT)
    await alice.locator('#members li', { hasText: 'carol' }).waitFor(WAIT)
    // Added back, Carol's open chat is writable again, without reopening it.
    await carol.locator('#composer').waitFor(WAIT)
    // Her message refused while out says why in plain words (not "no chat g_…"), to retry now.
    assert.equal(
      await refused.locator('.failure').textContent(),
      'Not sent: this chat is gone, or you are no longer in it.',
    )
    assert.equal(await refused.locator('button.retry').count(), 1)
    assert.notEqual(await carol.textContent('#group-summary'), 'You are no longer a member')
    await send(carol, 'back again')
    await message(alice, 'back again').waitFor(WAIT)
    // Alice makes Carol an admin; Carol renames the group, for everyone; Alice makes her a
    // member again.
    await alice.dblclick('button[aria-label="Make admin: carol"]')
    await message(carol, 'alice made carol an admin').waitFor(WAIT)
    await carol.click('#info')
    await carol.fill('#group-title', 'Trip 2')
    await carol.press('#group-title', 'Enter')
    await textIs(alice, '#peer', 'Trip 2')
    await message(alice, 'carol renamed the group to “Trip 2”').waitFor(WAIT)
    await textIs(bob, '#peer', 'Trip 2')
    await alice.click('button[aria-label="Remove admin: carol"]')
    await message(carol, 'alice made carol a member, not an admin').waitFor(WAIT)
    await carol.locator('#rename-group').waitFor({ state: 'detached', ...WAIT })
    assert.equal(await alice.locator('#send-error').count(), 0, 'no error from the double click')

    await bob.click('#info')
    await bob.click('#leave')
    await bob.locator('#conversation').waitFor({ state: 'detached', ...WAIT })
    await message(alice, 'Bob the Builder left').waitFor(WAIT)
    await alice.locator('#members li', { hasText: 'Bob the Builder' }).waitFor({ state: 'detached', ...WAIT })
    await shot(alice, 'group')
    assert.deepEqual(await accessibilityProblems(alice), [])
    // The last admin leaves: the server makes the longest-standing member admin, and says so.
    await alice.click('#leave')
    await message(carol, 'alice left; carol is now an admin').waitFor(WAIT)
    await textIs(carol, '#group-summary', '1 member, 1 admin')
    await shot(carol, 'group-promoted')
    await carol.context().close()
  })

  it('loads older messages as the reader scrolls up, a page at a time', async (ctx) => {
    await alice.evaluate(`(async () => {
      const chat = await window.natter.direct('dave')
      const state = window.natter.chat(chat.id)
      const sent = []
      for (let i = 1; i <= 130; i++) sent.push(state.send('number ' + i).sent)
      await Promise.all(sent)
    })()`)
    const dave = await newPage()
    await signIn(dave, 'dave')
    const opened = Date.now()
    await openChat(dave, 'alice')
    await message(dave, 'number 130').waitFor(WAIT)
    const shown = () => dave.locator('#messages li.msg').count()
    const firstPage = await shown()
    assert.ok(firstPage <= 51, `one page at first (${firstPage})`)
    const rendered = Date.now() - opened
    for (let i = 0; i < 6 && (await shown()) < 130; i++) {
      const n = await shown()
      await dave.$eval('#messages', (e) => {
        e.scrollTop = 0
      })
      await dave.waitForFunction(
        `document.querySelectorAll('#messages li.msg').length > ${n} || !!document.querySelector('#messages li.start')`,
        null,
        WAIT,
      )
    }
    assert.equal(await shown(), 130)
    // The reader stays where they were: not thrown to the top or the bottom.
    const top = await dave.$eval('#messages', (e) => e.scrollTop)
    assert.ok(top > 0, 'the view kept its place after loading older messages')
    await shot(dave, 'older-messages')
    ctx.diagnostic(`first page shown ${rendered} ms after opening`)

    // Scrolled up, Dave is told of new messages below rather than pulled down; a click jumps.
    const daveChat = await dave.evaluate(`document.querySelector('#chats li.active').dataset.chatId`)
    await alice.evaluate(`Promise.all([
      window.natter.send(${JSON.stringify(daveChat)}, { text: 'number 131' }).sent,
      window.natter.send(${JSON.stringify(daveChat)}, { text: 'number 132' }).sent,
    ])`)
    await message(dave, 'number 132').waitFor(WAIT)
    await textIs(dave, '#jump-latest', '2 new messages ↓')
    assert.equal(await dave.$eval('#messages', (e) => e.scrollTop), top, 'not moved')
    await shot(dave, 'jump-to-latest')
    await dave.click('#jump-latest')
    await dave.waitForFunction(
      `(() => { const l = document.querySelector('#messages'); return l.scrollHeight - l.scrollTop - l.clientHeight < 2 })()`,
      null,
      WAIT,
    )
    await dave.locator('#jump-latest').waitFor({ state: 'detached', ...WAIT })
    // Alice's tab title counts what she has not read: Dave's answer in a chat she has not open.
    const unreadIn = (title: string) => Number(/^\((\d+)\) Natter$/.exec(title)?.[1] ?? 0)
    const before = unreadIn(await alice.title())
    await send(dave, 'got them')
    await alice.waitForFunction(`document.title === ${JSON.stringify(`(${before + 1}) Natter`)}`, null, WAIT)
    await dave.context().close()
  })

  it('keeps the message being read in place while older pages and their images load above it', async (ctx) => {
    // 130 messages from Alice to Olga, every tenth with an image of its own height.
    const images: string[] = []
    for (let i = 0; i < 13; i++) {
      const png = await sharp({
        create: { width: 400, height: 120 + i * 20, channels: 3, background: { r: 20 * i, g: 90, b: 160 } },
      })
        .png()
        .toBuffer()
      images.push(png.toString('base64'))
    }
    await alice.evaluate(`(async () => {
      const chat = await window.natter.direct('olga')
      const state = window.natter.chat(chat.id)
      const images = ${JSON.stringify(images)}
      const sent = []
      for (let i = 1; i <= 130; i++) {
        if (i % 10 === 5) {
          const bytes = Uint8Array.from(atob(images[(i - 5) / 10]), (c) => c.charCodeAt(0))
          const { mediaId } = await window.natter.uploadMedia(bytes, {
            chatId: chat.id,
            contentType: 'image/png',
            name: 'picture ' + i + '.png',
          })
          sent.push(state.send({ text: 'picture ' + i, media: [mediaId] }).sent)
        } else {
          sent.push(state.send('line ' + i).sent)
        }
      }
      await Promise.all(sent)
    })()`)
    const olga = await newPage()
    // Images come late, as on a slow network: each after the page laid out the rest.
    await olga.route(
      (url) => !url.pathname.startsWith('/assets/'),
      async (route) => {
        if (route.request().resourceType() !== 'image') return route.fallback()
        await new Promise((r) => setTimeout(r, 400))
        return route.fallback()
      },
    )
    await signIn(olga, 'olga')
    await openChat(olga, 'alice')
    await message(olga, 'line 130').waitFor(WAIT)
    const imagesDone = `(() => {
      const list = document.querySelector('#messages')
      const imgs = [...list.querySelectorAll('img.media')]
      return !list.querySelector('.media-placeholder') && imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0)
    })()`
    // At the bottom, the newest images loading late push nothing out of view.
    await olga.waitForFunction(imagesDone, null, WAIT)
    await olga.waitForFunction(
      `(() => { const l = document.querySelector('#messages'); return l.scrollHeight - l.scrollTop - l.clientHeight < 2 })()`,
      null,
      WAIT,
    )
    // Page code: where the message with this seq is, px from the list's top edge.
    const topOf = (seq: string) =>
      olga.evaluate(`(() => {
        const list = document.querySelector('#messages')
        const el = list.querySelector('li[data-seq="${seq}"]')
        return el.getBoundingClientRect().top - list.getBoundingClientRect().top
      })()`) as Promise<number>
    let worst = 0
    for (let page = 1; page <= 2; page++) {
      const before = await olga.locator('#messages li.msg').count()
      // The reader scrolls near the top: the first message in view is the one read.
      const anchor = (await olga.evaluate(`(() => {
        const list = document.querySelector('#messages')
        list.scrollTop = 60
        const top = list.getBoundingClientRect().top
        const el = [...list.querySelectorAll('li[data-seq]')].find((e) => e.getBoundingClientRect().bottom > top)
        return el.dataset.seq
      })()`)) as string
      const was = await topOf(anchor)
      // Until the page and its images are in, how far the message moved at most in what was laid
      // out: sampled whenever a message changed size, after the app's own ResizeObserver (the
      // first made, so the first called) put the view back, and after every render.
      await olga.evaluate(`(() => {
        const list = document.querySelector('#messages')
        const el = list.querySelector('li[data-seq="${anchor}"]')
        window.moved = 0
        const sample = () => {
          const at = el.getBoundingClientRect().top - list.getBoundingClientRect().top
          window.moved = Math.max(window.moved, Math.abs(at - ${was}))
        }
        const sizes = new ResizeObserver(sample)
        for (const item of list.children) sizes.observe(item)
        const added = new MutationObserver((records) => {
          for (const r of records) for (const n of r.addedNodes) sizes.observe(n)
          // After the render's layout effects, which ran before this callback.
          sample()
        })
        added.observe(list, { childList: true })
        window.stopSampling = () => {
          sizes.disconnect()
          added.disconnect()
        }
      })()`)
      await olga.waitForFunction(
        `document.querySelectorAll('#messages li.msg').length > ${before}`,
        null,
        WAIT,
      )
      await olga.waitForFunction(imagesDone, null, WAIT)
      // Two frames more: anything the images' loading moved has been put back.
      await olga.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))')
      await olga.evaluate('window.stopSampling()')
      const now = await topOf(anchor)
      const framed = (await olga.evaluate('window.moved')) as number
      worst = Math.max(worst, framed)
      ctx.diagnostic(
        `page ${page}: ${(await olga.locator('#messages li.msg').count()) - before} older messages above; message ${anchor} moved ${Math.abs(now - was).toFixed(2)} px (at most ${framed.toFixed(2)} px in any layout)`,
      )
      assert.ok(Math.abs(now - was) < 2, `message ${anchor} moved from ${was} to ${now} px`)
      assert.ok(framed < 2, `message ${anchor} moved ${framed} px on the way`)
    }
    await shot(olga, 'older-pages-anchored')
    ctx.diagnostic(`largest move seen in any layout: ${worst.toFixed(2)} px`)
    await olga.context().close()
  })

  it('jumps from a search result to a message older than the first page, by keyboard', async () => {
    await alice.evaluate(`(async () => {
      const chat = await window.natter.direct('gina')
      const state = window.natter.chat(chat.id)
      await state.send('the needle in the haystack').sent
      const sent = []
      for (let i = 1; i <= 120; i++) sent.push(state.send('hay ' + i).sent)
      await Promise.all(sent)
    })()`)
    const gina = await newPage()
    await signIn(gina, 'gina')
    await openChat(gina, 'alice')
    await message(gina, 'hay 120').waitFor(WAIT)
    assert.equal(await message(gina, 'the needle').count(), 0, 'not on the first page')
    await gina.click('#search-button')
    await gina.waitForFunction(`document.activeElement?.id === 'search-query'`, null, WAIT)
    // The search field has the focus: typing goes in, Enter searches.
    await gina.keyboard.type('needle')
    await gina.keyboard.press('Enter')
    await gina.locator('#search-results button.result', { hasText: 'the needle' }).waitFor(WAIT)
    await shot(gina, 'search-results')
    assert.deepEqual(await accessibilityProblems(gina), [])
    // ArrowDown to the result, Enter: the search closes and the message is shown, highlighted.
    await gina.keyboard.press('ArrowDown')
    await gina.keyboard.press('Enter')
    await gina.locator('#search').waitFor({ state: 'detached', ...WAIT })
    const found = gina.locator('#messages li.msg.highlight', { hasText: 'the needle in the haystack' })
    await found.waitFor(WAIT)
    const [item, list] = await Promise.all([found.boundingBox(), gina.locator('#messages').boundingBox()])
    assert.ok(
      item && list && item.y >= list.y && item.y + item.height <= list.y + list.height,
      `in view: ${JSON.stringify({ item, list })}`,
    )
    assert.equal(
      await gina.evaluate(`document.activeElement?.textContent?.includes('the needle in the haystack')`),
      true,
      'the message has the focus',
    )
    await shot(gina, 'search-jump')
    // The highlight is brief.
    await gina.locator('#messages li.msg.highlight').waitFor({ state: 'detached', ...WAIT })
    await gina.context().close()
  })

  it('renders a burst of 300 messages within 300 ms of the last arriving, with read receipts debounced', async (ctx) => {
    const erin = await newPage()
    await signIn(erin, 'erin')
    const chatId = (await alice.evaluate(`window.natter.direct('erin').then((c) => c.id)`)) as string
    await alice.evaluate(`window.natter.chat(${JSON.stringify(chatId)}).send('ready?').sent`)
    await openChat(erin, 'alice')
    await message(erin, 'ready?').waitFor(WAIT)
    await erin.evaluate(`(() => {
      const natter = window.natter
      window.reads = 0
      const markRead = natter.markRead.bind(natter)
      natter.markRead = (...a) => {
        window.reads++
        return markRead(...a)
      }
      window.arrived = []
      natter.on('message.new', () => window.arrived.push(performance.now()))
      const list = document.querySelector('#messages')
      new MutationObserver(() => {
        if (list.querySelectorAll('li.msg').length >= 301 && !window.allShown) window.allShown = performance.now()
      }).observe(list, { childList: true })
    })()`)
    await alice.evaluate(`(async () => {
      const chat = window.natter.chat(${JSON.stringify(chatId)})
      const sent = []
      for (let i = 1; i <= 300; i++) sent.push(chat.send('burst ' + i).sent)
      await Promise.all(sent)
    })()`)
    await erin.waitForFunction('window.allShown', null, { timeout: 30_000 })
    const [first, last, shown] = (await erin.evaluate(
      '[window.arrived[0], window.arrived[window.arrived.length - 1], window.allShown]',
    )) as number[]
    const lag = (shown ?? 0) - (last ?? 0)
    ctx.diagnostic(
      `300 messages arrived over ${Math.round((last ?? 0) - (first ?? 0))} ms; all shown ${Math.round(lag)} ms after the last`,
    )
    assert.ok(lag < 300, `shown ${lag} ms after the last arrived`)
    // The read receipts of the burst: debounced to a few requests, not one per message. Counted
    // once the chat is read up to its last message, which the last of them does.
    await erin.waitForFunction(
      `(() => { const c = window.natter.chat(${JSON.stringify(chatId)}); return c.lastSeq > 300 && c.readSeq === c.lastSeq })()`,
      null,
      WAIT,
    )
    const reads = (await erin.evaluate('window.reads')) as number
    ctx.diagnostic(`read requests for the burst: ${reads}`)
    assert.ok(reads >= 1 && reads <= 10, `${reads} read requests`)
    await alice.waitForSelector('#chats li .preview >> text=You: burst 300', WAIT)
    await erin.context().close()
  })

  it('says the connection is gone within 5 s when the network goes silent, and comes back', async () => {
    // No offline event, no closed socket: the WebSocket's packets stop going through either way.
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    let silent = false
    const page = await context.newPage()
    await page.routeWebSocket(/\/mqtt$/, (ws) => {
      const server = ws.connectToServer()
      ws.onMessage((m) => {
        if (!silent) server.send(m)
      })
      server.onMessage((m) => {
        if (!silent) ws.send(m)
      })
    })
    await page.goto(t.httpUrl)
    await signIn(page, 'frank')
    const dropped = Date.now()
    silent = true
    await page.waitForSelector('#connection:not([data-state="connected"])', { timeout: 5000 })
    const after = Date.now() - dropped
    assert.ok(after < 5000, `the banner changed ${after} ms after the network went silent`)
    await shot(page, 'silent-network')
    silent = false
    await page.waitForSelector('#connection[data-state="connected"]', { timeout: 30_000 })
    await context.close()
  })

  it('after a reload without a network, shows the chat with its queued message and sends it once back', async (ctx) => {
    const [kate, liam] = await Promise.all([newPage(), newPage()])
    try {
      await signIn(kate, 'kate')
      await signIn(liam, 'liam')
      await kate.fill('#with', 'liam')
      await kate.press('#with', 'Enter')
      await send(kate, 'hello liam')
      await openChat(liam, 'kate')
      await message(liam, 'hello liam').waitFor(WAIT)
      const device = await deviceOf(kate)

      await kate.context().setOffline(true)
      await kate.waitForSelector('#connection[data-state="offline"]', WAIT)
      await send(kate, 'written offline, then reloaded')
      await kate
        .locator('#messages li.pending[data-status="sending"]', { hasText: 'then reloaded' })
        .waitFor(WAIT)
      // In IndexedDB before the reload.
      await kate.waitForFunction(
        `new Promise((resolve) => {
          const open = indexedDB.open('natter-outbox:kate/${device}')
          open.onerror = () => resolve(false)
          open.onsuccess = () => {
            const count = open.result.transaction('items').objectStore('items').count()
            count.onsuccess = () => resolve(count.result === 1)
          }
        })`,
        null,
        WAIT,
      )
      // Closed first: back online for the reload, this page's client would send it at once.
      await kate.evaluate('window.natter.close()')
      // The page asks whether the server answers when the browser comes back online: done.
      await Promise.all([kate.waitForResponse('**/web/config.json'), kate.context().setOffline(false)])
      // Chromium cannot reload an uncached page offline (no service worker here): the page and its
      // scripts load, and the network drops as the page makes its first request (for the config);
      // the config, tokens and the WebSocket then find no network.
      await kate.route('**/web/config.json', async (route) => {
        await kate.context().setOffline(true)
        await route.abort('internetdisconnected')
      })
      await kate.reload()
      await kate.waitForSelector('#connection[data-state="offline"]', WAIT)
      assert.equal(await kate.evaluate('navigator.onLine'), false)
      assert.equal(await deviceOf(kate), device, 'the same device, its outbox with it')
      // The chat, named, with the message waiting: in the list and in the conversation.
      await kate.locator('#chats li .name', { hasText: 'liam' }).waitFor(WAIT)
      await kate
        .locator('#chats li .preview', { hasText: 'Waiting: written offline, then reloaded' })
        .waitFor(WAIT)
      const waiting = kate.locator('#messages li.pending[data-status="sending"]', {
        hasText: 'then reloaded',
      })
      await waiting.waitFor(WAIT)
      await shot(kate, 'offline-reload')
      assert.deepEqual(await accessibilityProblems(kate), [])
      assert.equal(await message(liam, 'then reloaded').count(), 0)

      // The network is back: the browser's online event makes the client connect at once.
      await kate.unrouteAll()
      const back = Date.now()
      await kate.context().setOffline(false)
      await message(liam, 'written offline, then reloaded').waitFor(WAIT)
      ctx.diagnostic(`received ${Date.now() - back} ms after the network came back`)
      await connected(kate)
      await kate.locator('#messages li.msg.mine[data-seq]', { hasText: 'then reloaded' }).waitFor(WAIT)
      await message(kate, 'hello liam').waitFor(WAIT)
      assert.equal(await kate.locator('#messages li.pending').count(), 0)
      assert.equal(await message(liam, 'then reloaded').count(), 1, 'sent once')
    } finally {
      await kate.unrouteAll({ behavior: 'ignoreErrors' })
      await kate.context().close()
      await liam.context().close()
    }
  })

  it('fits a phone in dark mode: one pane at a time, the list or the chat', async () => {
    const phone = await newPage({
      viewport: { width: 390, height: 844 },
      colorScheme: 'dark',
      isMobile: true,
    })
    await signIn(phone, 'bob')
    const bg = await phone.evaluate('getComputedStyle(document.body).backgroundColor')
    assert.equal(bg, 'rgb(13, 17, 23)', 'dark background')
    assert.equal(await phone.locator('#sidebar').isVisible(), true)
    await shot(phone, 'phone-list-dark')
    assert.deepEqual(await accessibilityProblems(phone), [])
    await phone.click('#profile-button')
    await phone.locator('#profile-panel .avatar img').waitFor(WAIT)
    await shot(phone, 'phone-profile-dark')
    assert.deepEqual(await accessibilityProblems(phone), [])
    await phone.click('#profile-panel button.close')
    await openChat(phone, 'alice')
    await message(phone, 'a reply').waitFor(WAIT)
    assert.equal(await phone.locator('#sidebar').isVisible(), false, 'the list gives way to the chat')
    const width = await phone.$eval('#messages', (e) => e.getBoundingClientRect().width)
    assert.ok(width >= 380, `the conversation has the whole width (${width})`)
    await shot(phone, 'phone-chat-dark')
    assert.deepEqual(await accessibilityProblems(phone), [])
    // A file card's type is not broken mid-word, though the bubble breaks long URLs anywhere.
    const pdfType = phone
      .locator('#messages li.msg[data-seq] .file-card', { hasText: 'report.pdf' })
      .locator('.file-size')
    await pdfType.scrollIntoViewIfNeeded()
    const typeLines = await pdfType.evaluate(`(() => {
      const el = [...document.querySelectorAll('#messages li.msg[data-seq] .file-card .file-size')].find((e) =>
        e.textContent.includes('application/pdf'),
      )
      const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT)
      for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        const at = n.data.indexOf('application/pdf')
        if (at < 0) continue
        const r = document.createRange()
        r.setStart(n, at)
        r.setEnd(n, at + 'application/pdf'.length)
        return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size
      }
      return -1
    })()`)
    assert.equal(typeLines, 1, 'application/pdf on one line')
    await phone.click('#back')
    await phone.locator('#sidebar').waitFor({ state: 'visible', ...WAIT })
    // A group's name keeps the header: its Search and Members buttons are icons on a phone.
    await phone.evaluate(`window.natter.createGroup('Weekend plans', ['alice'])`)
    await openChat(phone, 'Weekend plans')
    await textIs(phone, '#group-summary', '2 members, 1 admin')
    const title = await phone.$eval('#peer', (e) => [e.clientWidth, e.scrollWidth])
    assert.ok((title[1] ?? 0) <= (title[0] ?? 0), `the group's name is not cut (${title[1]} > ${title[0]})`)
    assert.ok((title[0] ?? 0) >= 150, `the name has room (${title[0]} px)`)
    await shot(phone, 'phone-group-header-dark')
    assert.deepEqual(await accessibilityProblems(phone), [])
    await phone.context().close()
  })

  it('serves the app minified, precompressed, content-hashed and cached for good; favicon and HEAD /', async (ctx) => {
    const get = (path: string, encoding = 'br, gzip', method = 'GET') =>
      fetch(`${t.httpUrl}${path}`, { method, headers: { 'accept-encoding': encoding } })
    const page = await get('/')
    assert.equal(page.status, 200)
    assert.equal(page.headers.get('cache-control'), 'no-cache')
    assert.equal(page.headers.get('content-encoding'), 'br')
    const html = await page.text()
    const js = /src="(\/assets\/app-[\w-]+\.js)"/.exec(html)?.[1]
    const css = /href="(\/assets\/style-[\w-]+\.css)"/.exec(html)?.[1]
    assert.ok(js && css, html)
    let transferred = Number(page.headers.get('content-length'))
    for (const path of [js, css]) {
      const br = await get(path)
      assert.equal(br.headers.get('cache-control'), 'public, max-age=31536000, immutable')
      assert.equal(br.headers.get('content-encoding'), 'br')
      assert.equal(br.headers.get('vary'), 'accept-encoding')
      transferred += Number(br.headers.get('content-length'))
      const gz = await get(path, 'gzip')
      assert.equal(gz.headers.get('content-encoding'), 'gzip')
      const plain = await get(path, 'identity')
      assert.equal(plain.headers.get('content-encoding'), null)
      assert.equal(await plain.text(), await br.text(), 'the same file in every encoding')
      assert.ok(Number(gz.headers.get('content-length')) < Number(plain.headers.get('content-length')) / 2)
    }
    // One file: the SDK's MLS client (ts-mls) in it, since every signed-in tab runs it and a tab
    // reloaded offline has no chunk to fetch (broker/web-app.ts).
    const app = await (await get(js, 'identity')).text()
    assert.doesNotMatch(app, /"\.\/chunk-[\w-]+\.js"/, 'no chunk imported')
    ctx.diagnostic(`the first load transfers ${transferred} bytes (brotli)`)
    assert.ok(transferred < 250_000, `the first load transfers ${transferred} bytes compressed`)
    // /app.js of pages cached before the hashed names loads the hashed app (from where chunks, if
    // any, would resolve under /assets/).
    const legacy = await get('/app.js', 'identity')
    assert.equal(legacy.headers.get('cache-control'), 'no-cache')
    assert.equal((await legacy.text()).trim(), `import ${JSON.stringify(js)}`)
    assert.equal((await get('/assets/app-nothere.js')).status, 404)
    const icon = await get('/favicon.ico')
    assert.equal(icon.status, 200)
    assert.match(icon.headers.get('content-type') ?? '', /^image\//)
    const head = await get('/', 'identity', 'HEAD')
    assert.equal(head.status, 200)
    assert.equal(await head.text(), '')
  })

  it('says on the sign-in screen when the server cannot be reached, and signs in once it answers', async () => {
    const gone = await startTestNode({ NATTER_JWT_SECRET: '' })
    const port = new URL(gone.httpUrl).port
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    const page = await context.newPage()
    await page.goto(gone.httpUrl)
    await page.locator('#name').waitFor(WAIT)
    await gone.close()
    await page.fill('#name', 'henry')
    await page.click('#login button')
    await page.waitForSelector('#connection[data-state="unreachable"]', WAIT)
    assert.match((await page.textContent('#connection')) ?? '', /reach the server/)
    assert.match((await page.textContent('#login-error')) ?? '', /reach the server/)
    assert.equal(await page.isEnabled('#login button'), true, 'no endless spinner')
    await shot(page, 'signin-unreachable')
    assert.deepEqual(await accessibilityProblems(page), [])
    // The browser's own offline says so too.
    await context.setOffline(true)
    await page.waitForSelector('#connection[data-state="offline"]', WAIT)
    await context.setOffline(false)
    // The server is back on the same address: the tab signs in by itself.
    const back = await startTestNode({ NATTER_JWT_SECRET: '', NATTER_HTTP_PORT: port })
    try {
      await page.waitForSelector('#connection[data-state="connected"]', { timeout: 30_000 })
      await textIs(page, '#me', 'Signed in as henry')
    } finally {
      await context.close()
      await back.close()
    }
  })

  it('lets a new user with no chat set a profile photo that a later chat partner sees', async () => {
    const [iris, jack] = await Promise.all([newPage(), newPage()])
    try {
      await signIn(iris, 'iris')
      await signIn(jack, 'jack')
      assert.equal(await iris.locator('#chats li').count(), 0, 'Iris has no chat yet')
      await iris.click('#profile-button')
      const photo = await sharp({
        create: { width: 120, height: 120, channels: 3, background: { r: 30, g: 140, b: 90 } },
      })
        .png()
        .toBuffer()
      await iris.setInputFiles('#avatar-file', { name: 'iris.png', mimeType: 'image/png', buffer: photo })
      await textIs(iris, '#profile-status', 'Photo saved')
      assert.equal(await iris.locator('#profile-panel .error').count(), 0)
      await iris.locator('#profile-panel .avatar img').waitFor(WAIT)
      await shot(iris, 'profile-photo-before-any-chat')
      assert.deepEqual(await accessibilityProblems(iris), [])
      await iris.click('#profile-panel button.close')
      // Her first chat: Jack sees her photo in his list and the chat's header.
      await iris.fill('#with', 'jack')
      await iris.press('#with', 'Enter')
      await iris.waitForSelector('#conversation', WAIT)
      await send(iris, 'hi jack')
      await openChat(jack, 'iris')
      const shown = (where: string) =>
        `[...document.querySelectorAll(${JSON.stringify(`${where} .avatar img`)})].some((i) => i.complete && i.naturalWidth > 0)`
      await jack.waitForFunction(shown('#chats li'), null, WAIT)
      await jack.waitForFunction(shown('#conversation header'), null, WAIT)
    } finally {
      await iris.context().close()
      await jack.context().close()
    }
  })

  it('marks an encrypted chat made elsewhere with the lock (test/web-mls.browser.test.ts uses them)', async () => {
    // Made over HTTP, so nobody's device opened its MLS group yet: the chat is there, marked.
    const minted = await fetch(`${t.httpUrl}/dev/token`, {
      method: 'POST',
      body: JSON.stringify({ userId: 'nora' }),
    })
    const { token } = (await minted.json()) as { token: string }
    const res = await fetch(`${t.httpUrl}/v1/chat.create`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sealed', members: ['otto'], encrypted: true }),
    })
    assert.equal(res.status, 200)
    const otto = await newPage()
    try {
      await signIn(otto, 'otto')
      await openChat(otto, 'sealed')
      await otto.locator('#chats li svg.lock[aria-label="End-to-end encrypted"]').waitFor(WAIT)
      await textIs(otto, '#e2ee-badge .badge-label', 'End-to-end encrypted')
      assert.deepEqual(await accessibilityProblems(otto), [])
    } finally {
      await otto.context().close()
    }
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

/**
 * The web chat within the server's limits, on a node with the production device cap (10 per
 * user; the other nodes' test limits raise it) and download URLs that expire after 10 s.
 */
describe('the web chat within the server’s device cap and URL lifetimes', () => {
  let t: TestNode
  let browser: Browser
  const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) })
  const connected = (page: Page) => page.waitForSelector('#connection[data-state="connected"]', WAIT)
  const open = async (context: BrowserContext) => {
    const p = await context.newPage()
    await p.goto(t.httpUrl)
    return p
  }
  const signIn = async (page: Page, name: string) => {
    await page.fill('#name', name)
    await page.click('#login button')
    await connected(page)
  }
  const deviceOf = (page: Page): Promise<string> =>
    page.evaluate(`JSON.parse(sessionStorage.getItem('natter:session') ?? '{}').deviceId`)
  const textIs = (page: Page, selector: string, text: string) =>
    page.waitForFunction(
      `document.querySelector(${JSON.stringify(selector)})?.textContent === ${JSON.stringify(text)}`,
      null,
      WAIT,
    )
  /** A dev token (the node's secret is the embedded default's own, not TestNode's). */
  const token = async (userId: string) => {
    const res = await fetch(`${t.httpUrl}/dev/token`, { method: 'POST', body: JSON.stringify({ userId }) })
    return ((await res.json()) as { token: string }).token
  }
  /** The user's devices as the server lists them (devices.list over HTTP). */
  const devices = async (userId: string) => {
    const res = await fetch(`${t.httpUrl}/v1/devices.list`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(userId)}` },
      body: '{}',
    })
    const body = (await res.json()) as { result: { devices: { deviceId: string; connected: boolean }[] } }
    return body.result.devices
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true })
    t = await startTestNode({
      NATTER_JWT_SECRET: '',
      NATTER_MAX_DEVICES_PER_USER: '10',
      NATTER_MEDIA_DOWNLOAD_URL_SECONDS: '10',
      NATTER_MEDIA_MAX_FILE_BYTES: '150000',
      NATTER_MAX_TEXT_CHARS: '500',
    })
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
  })
  after(async () => {
    await browser?.close()
    await t?.close()
  })

  it('counts against the server’s own text limit (NATTER_MAX_TEXT_CHARS), not a built-in one', async () => {
    const config = (await (await fetch(`${t.httpUrl}/web/config.json`)).json()) as { maxTextChars: number }
    assert.equal(config.maxTextChars, 500)
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    try {
      const page = await open(context)
      await signIn(page, 'pia')
      await page.fill('#with', 'quin')
      await page.press('#with', 'Enter')
      await page.waitForSelector('#text', WAIT)
      await page.fill('#text', 'y'.repeat(500))
      await textIs(page, '#char-count', '500 of 500 characters')
      await page.fill('#text', 'y'.repeat(501))
      await textIs(page, '#char-count', '1 character over the limit of 500')
      assert.equal(await page.isDisabled('#composer button[type="submit"]'), true)
    } finally {
      await context.close()
    }
  })

  it('never locks a user out: 12 sign-ins and sign-outs, 11 tabs in turn, two tabs at once on two devices', async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    try {
      const page = await open(context)
      // Each sign-out revokes the tab's device: the server forgets it, the cap is never reached.
      for (let i = 0; i < 12; i++) {
        await signIn(page, 'dora')
        const device = await deviceOf(page)
        assert.ok((await devices('dora')).some((d) => d.deviceId === device && d.connected))
        await page.click('#sign-out')
        await page.waitForSelector('#login', WAIT)
        assert.equal(
          (await devices('dora')).some((d) => d.deviceId === device),
          false,
          `sign-out ${i + 1} revoked ${device}`,
        )
      }
      await page.close()
      // Tabs closed without signing out: each next tab takes the closed one's device again.
      const seen = new Set<string>()
      for (let i = 0; i < 11; i++) {
        const tab = await open(context)
        await signIn(tab, 'dora')
        seen.add(await deviceOf(tab))
        await tab.close()
      }
      assert.equal(seen.size, 1, 'one device for tabs opened one after another')
      // Two tabs at once are two devices, both connected.
      const [one, two] = [await open(context), await open(context)]
      await signIn(one, 'dora')
      await signIn(two, 'dora')
      const [a, b] = [await deviceOf(one), await deviceOf(two)]
      assert.notEqual(a, b)
      assert.ok(seen.has(a), 'the first takes the pooled device')
      const listed = await devices('dora')
      assert.deepEqual(
        listed
          .filter((d) => d.connected)
          .map((d) => d.deviceId)
          .sort(),
        [a, b].sort(),
      )
      assert.ok(listed.length <= 2, `${listed.length} devices kept`)
      assert.equal(await one.getAttribute('#connection', 'data-state'), 'connected')
    } finally {
      await context.close()
    }
  })

  it('says in plain words when the device cap is reached, and signs out the other web sessions', async () => {
    // Ten web sessions of another browser, closed without signing out (persistent sessions).
    const eve = await token('eve')
    for (let i = 0; i < 10; i++) {
      const c = await connectClient(t.mqttUrl, { clientId: `eve/web-old${i}`, password: eve, clean: false })
      await c.endAsync()
    }
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    try {
      const page = await open(context)
      await page.fill('#name', 'eve')
      await page.click('#login button')
      await page.waitForSelector('#free-devices', WAIT)
      assert.match((await page.textContent('#login-error')) ?? '', /too many devices or browser tabs/)
      await shot(page, 'device-cap')
      assert.deepEqual(await accessibilityProblems(page), [])
      assert.deepEqual(await structureProblems(page), [])
      await page.click('#free-devices')
      await connected(page)
      const listed = await devices('eve')
      assert.deepEqual(
        listed.map((d) => d.deviceId),
        [await deviceOf(page)],
      )
    } finally {
      await context.close()
    }
  })

  it('sends a message written offline in a tab closed since, from the next tab', async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    const other = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    try {
      const [fay, gus] = [await open(context), await open(other)]
      await signIn(fay, 'fay')
      await signIn(gus, 'gus')
      await fay.fill('#with', 'gus')
      await fay.press('#with', 'Enter')
      await fay.waitForSelector('#conversation', WAIT)
      await context.setOffline(true)
      await fay.waitForSelector('#connection[data-state="offline"]', WAIT)
      await fay.fill('#text', 'sent from a closed tab')
      await fay.press('#text', 'Enter')
      await fay.waitForSelector(
        '#messages li.mine[data-status="sending"] >> text=sent from a closed tab',
        WAIT,
      )
      // Waiting, it shows a drawn clock (an emoji clock needs a font many systems lack).
      assert.equal(await fay.locator('#messages li.mine[data-status="sending"] .ticks svg.clock').count(), 1)
      await shot(fay, 'sending-clock')
      // The outbox has it (IndexedDB): closing the tab now asks first.
      assert.equal(await fay.evaluate('window.natter.pending(window.natter.chats()[0].id).length'), 1)
      let asked = false
      fay.once('dialog', (d) => {
        asked = d.type() === 'beforeunload'
        void d.accept()
      })
      await fay.close({ runBeforeUnload: true })
      if (!fay.isClosed()) await fay.waitForEvent('close', WAIT)
      assert.ok(asked, 'warned before closing with a message unsent')
      await context.setOffline(false)
      const next = await open(context)
      await signIn(next, 'fay')
      await gus.locator('#chats li .preview', { hasText: 'sent from a closed tab' }).waitFor(WAIT)
    } finally {
      await context.close()
      await other.close()
    }
  })

  it('says a refused upload in plain words; stops a removed member’s uploads and typing at once', async () => {
    const [one, two] = [await browser.newContext(), await browser.newContext()]
    try {
      const [jon, kim] = [await open(one), await open(two)]
      await signIn(jon, 'jon')
      await signIn(kim, 'kim')
      await jon.evaluate(`window.natter.createGroup('Uploads', ['kim'])`)
      const openChat = (page: Page) => page.locator('#chats li', { hasText: 'Uploads' }).click(WAIT)
      await openChat(jon)
      await openChat(kim)
      await kim.locator('#text').pressSequentially('still typ')
      await jon.waitForFunction(
        `document.querySelector('#typing')?.textContent === 'kim is typing…'`,
        null,
        WAIT,
      )
      // Kim's upload is held on its way (the PUT does not reach the server).
      let held: (() => void) | undefined
      const putSeen = new Promise<void>((resolve) => {
        void kim.route('**/*', (route) => {
          if (route.request().method() !== 'PUT') return route.continue()
          held = () => void route.abort().catch(() => {})
          resolve()
          return undefined
        })
      })
      // Over the server's file limit (150 kB here): refused in plain words, not in bytes.
      await kim.setInputFiles('#attach', {
        name: 'huge.bin',
        mimeType: 'application/octet-stream',
        buffer: randomBytes(200_000),
      })
      const huge = kim.locator('#messages li.upload[data-status="failed"]')
      await textIs(
        kim,
        '#messages li.upload[data-status="failed"] .failure',
        'This file is larger than the server takes.',
      )
      await huge.locator('button.cancel').click()
      await huge.waitFor({ state: 'detached', ...WAIT })
      await kim.setInputFiles('#attach', {
        name: 'big.bin',
        mimeType: 'application/octet-stream',
        buffer: randomBytes(100_000),
      })
      await kim.locator('#messages li.upload').waitFor(WAIT)
      await putSeen
      await jon.click('#info')
      await jon.click('button[aria-label="Remove kim"]')
      await jon.locator('#messages li.event', { hasText: 'jon removed kim' }).waitFor(WAIT)
      // Typing ends with the removal, not seconds later when its notice would expire.
      await jon.waitForFunction(`document.querySelector('#typing')?.textContent === ''`, null, {
        timeout: 1500,
      })
      await kim.locator('#messages li.upload').waitFor({ state: 'detached', ...WAIT })
      // Said with who did it: the kept timeline ends with the event.
      await kim.locator('.removed', { hasText: 'jon removed you from this chat.' }).waitFor(WAIT)
      held?.()
      assert.equal(await jon.locator('#messages li.msg .file-card').count(), 0, 'nothing was sent')
    } finally {
      await one.close()
      await two.close()
    }
  })

  it('opens an image whose download URL expired since it was shown with a fresh URL', async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    try {
      const [hal, ida] = [await open(context), await open(context)]
      await signIn(hal, 'hal')
      await signIn(ida, 'ida')
      await hal.fill('#with', 'ida')
      await hal.press('#with', 'Enter')
      await hal.waitForSelector('#conversation', WAIT)
      const image = await sharp({
        create: { width: 64, height: 48, channels: 3, background: { r: 20, g: 120, b: 240 } },
      })
        .png()
        .toBuffer()
      await hal.setInputFiles('#attach', { name: 'blue.png', mimeType: 'image/png', buffer: image })
      const link = hal.locator('#messages li.msg[data-seq] a.media-link')
      await link.waitFor(WAIT)
      const shownAt = Date.now()
      const stale = await link.getAttribute('href')
      // The URLs last 10 s (NATTER_MEDIA_DOWNLOAD_URL_SECONDS): past that, the shown one is refused.
      await hal.waitForFunction(`Date.now() > ${shownAt + 11_000}`, null, { timeout: 20_000, polling: 500 })
      assert.notEqual((await fetch(stale ?? '')).status, 200, 'the shown URL has expired')
      const [tab] = await Promise.all([context.waitForEvent('page', WAIT), link.click()])
      await tab.waitForURL((u) => u.href !== 'about:blank', WAIT)
      assert.notEqual(tab.url(), stale)
      const res = await fetch(tab.url())
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'image/png')
    } finally {
      await context.close()
    }
  })
})
