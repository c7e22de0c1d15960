import assert from 'node:assert/strict'
import { mkdirSync, readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import type { Browser, BrowserContextOptions, Page, Route } from 'playwright-core'
import sharp from 'sharp'
import { startTestNode, type TestNode } from './helpers/node.ts'
import {
  accessibilityProblems,
  connected,
  launchChromium,
  message,
  newChatPage,
  openChat,
  SAFETY_NUMBER,
  SHOTS,
  safetyNumberOf,
  send,
  shot,
  signIn,
  storedHistory,
  WAIT,
} from './helpers/web-chat-pages.ts'

/**
 * The web chat as an MLS client (docs/e2ee.md): in headless Chromium, Alice and Bob each in their
 * own browser profile (keys in that profile's IndexedDB), Carol on a phone in dark mode. They make
 * and use an end-to-end encrypted group through the page only, compare safety numbers, see a
 * new device of Bob's announced, and read again after a reload; the server holds ciphertext only.
 */
describe('the web chat in encrypted chats', () => {
  let t: TestNode
  let browser: Browser
  let alice: Page
  let bob: Page
  let chatId = ''
  const errors: string[] = []
  const newPage = (o: BrowserContextOptions = {}) => newChatPage(browser, t, errors, o)
  /** The chat as the server keeps it (history over HTTP, with a dev token). */
  const stored = (userId: string) => storedHistory(t, userId, chatId)

  before(async () => {
    mkdirSync(SHOTS, { recursive: true })
    // The embedded default: its generated secret signs dev tokens.
    t = await startTestNode({ NATTER_JWT_SECRET: '' })
    browser = await launchChromium()
    ;[alice, bob] = await Promise.all([newPage(), newPage()])
  })
  after(async () => {
    await browser?.close()
    await t?.close()
  })

  it('makes an encrypted group from the page, and both write and read in it, with the lock shown', async () => {
    await Promise.all([signIn(alice, 'alice'), signIn(bob, 'bob')])
    await alice.click('#new-group-button')
    await alice.fill('#group-name', 'Secret plans')
    await alice.fill('#group-members', 'bob')
    await alice.check('#group-encrypted')
    assert.match(
      (await alice.textContent('#group-encrypted-help')) ?? '',
      /server cannot.*before they joined/s,
      'the toggle says what it means',
    )
    await shot(alice, 'e2ee-new-group')
    assert.deepEqual(await accessibilityProblems(alice), [])
    await alice.click('#new-group button[type="submit"]')
    await alice.locator('#e2ee-badge').waitFor(WAIT)
    chatId = (await alice.getAttribute('#chats li.active', 'data-chat-id')) ?? ''
    assert.match(chatId, /^e_/)
    await send(alice, 'the key is under the mat')
    await alice.waitForSelector(
      '#messages li.mine[data-status="sent"], #messages li.mine[data-status="delivered"]',
      WAIT,
    )

    // Bob's list marks the chat with a lock that says what it means.
    const row = bob.locator(`#chats li[data-chat-id="${chatId}"]`)
    await row.locator('svg.lock[aria-label="End-to-end encrypted"]').waitFor(WAIT)
    await openChat(bob, 'Secret plans')
    await message(bob, 'the key is under the mat').waitFor(WAIT)
    assert.equal(await bob.locator('#messages .undecryptable').count(), 0)
    await send(bob, 'got it, see you at nine')
    await message(alice, 'got it, see you at nine').waitFor(WAIT)
    await alice.waitForSelector('#messages li.mine[data-status="read"]', WAIT)
    assert.match((await alice.textContent('#e2ee-badge')) ?? '', /End-to-end encrypted/)
    assert.equal(await alice.locator('#messages li.e2ee-intro').count(), 1)

    // No edit (the server refuses it in encrypted chats); reply and delete stay.
    const mine = alice.locator('#messages li.msg.mine', { hasText: 'the key is under the mat' })
    await mine.locator('.menu-button').click()
    await mine.locator('.menu-items .reply').waitFor(WAIT)
    assert.equal(await mine.locator('.menu-items .edit').count(), 0)
    assert.equal(await mine.locator('.menu-items .delete').count(), 1)
    await alice.keyboard.press('Escape')
    // Search runs on the device, over what it decrypted, and jumps to the message.
    await bob.click('#search-button')
    await bob.locator('#search-local').waitFor(WAIT)
    await bob.fill('#search-query', 'mat')
    await bob.press('#search-query', 'Enter')
    await bob.locator('#search-results button.result', { hasText: 'the key is under the mat' }).click(WAIT)
    await bob.locator('#messages li.msg.highlight', { hasText: 'the key is under the mat' }).waitFor(WAIT)

    // An image: encrypted on Alice's device, decrypted on Bob's, shown from a blob: URL.
    const image = await sharp({
      create: { width: 480, height: 300, channels: 3, background: { r: 40, g: 120, b: 240 } },
    })
      .png()
      .toBuffer()
    await alice.setInputFiles('#attach', { name: 'floor-plan.png', mimeType: 'image/png', buffer: image })
    const loaded = `[...document.querySelectorAll('#messages img.media')].some((i) => i.complete && i.naturalWidth === 480 && i.src.startsWith('blob:'))`
    await bob.waitForFunction(loaded, null, WAIT)
    await alice.waitForFunction(loaded, null, WAIT)
    assert.equal(await bob.getAttribute('#messages img.media', 'alt'), 'floor-plan.png')
    // The chat list names it a photo: the kind is inside the encrypted message, not left unknown.
    await bob
      .locator(`#chats li[data-chat-id="${chatId}"] .preview`, { hasText: 'alice: Photo' })
      .waitFor(WAIT)
    // A file: a card whose Download decrypts it.
    await alice.setInputFiles('#attach', {
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('meet at nine, bring the map'),
    })
    const card = bob.locator('#messages .file-card', { hasText: 'notes.txt' })
    await card.waitFor(WAIT)
    const [download] = await Promise.all([bob.waitForEvent('download', WAIT), card.locator('button').click()])
    assert.equal(download.suggestedFilename(), 'notes.txt')
    assert.equal(readFileSync((await download.path()) ?? '', 'utf8'), 'meet at nine, bring the map')
    await shot(bob, 'e2ee-chat')
    assert.deepEqual(await accessibilityProblems(bob), [])

    // The server keeps ciphertext: none of the words.
    const kept = await stored('alice')
    assert.ok(kept.some((m) => typeof m.ciphertext === 'string' && m.ciphertext.length > 0))
    for (const m of kept) assert.ok(!/mat|nine|floor-plan/.test(`${m.text} ${m.ciphertext}`))
  })

  it('shows the same safety numbers on both sides, in groups of digits', async () => {
    const [a, b] = await Promise.all([safetyNumberOf(alice, 'bob'), safetyNumberOf(bob, 'alice')])
    assert.match(a, SAFETY_NUMBER)
    assert.equal(a, b, 'Alice and Bob compare the same number')
    assert.equal(
      await alice.locator('#safety-numbers li[data-user-id="bob"] > .safety-number .digits').count(),
      12,
    )
    // Bob's one device is named.
    assert.match(
      (await alice.textContent('#safety-numbers li[data-user-id="bob"] .device-id')) ?? '',
      /From their one device, web-[0-9a-f]{8}\./,
    )
    await shot(alice, 'e2ee-safety-numbers')
    assert.deepEqual(await accessibilityProblems(alice), [])
  })

  it("announces Bob's new device in the timeline; the new device reads only what follows", async () => {
    const before = await safetyNumberOf(alice, 'bob')
    // A second tab of Bob's profile: a device of its own, which his first tab adds to the chat.
    const bob2 = await bob.context().newPage()
    bob2.on('pageerror', (e) => errors.push(e.message))
    await bob2.goto(t.httpUrl)
    await signIn(bob2, 'bob')
    const notice = alice.locator('#messages li.devices-changed')
    await notice.waitFor(WAIT)
    assert.match((await notice.textContent()) ?? '', /bob’s devices changed: compare safety numbers again/)
    // Bob is asked whether it was him.
    await bob
      .locator('#messages li.devices-changed', { hasText: 'If you did not sign in or out somewhere' })
      .waitFor(WAIT)
    await alice.click('#safety-numbers .panel-close')
    await shot(alice, 'e2ee-devices-changed')
    assert.deepEqual(await accessibilityProblems(alice), [])
    // The number changed with the device; Verify in the notice opens them again.
    await notice.locator('button').click()
    await alice.waitForFunction(
      `document.querySelector('#safety-numbers li[data-user-id="bob"] > .safety-number')?.dataset.number !== ${JSON.stringify(before)}`,
      null,
      WAIT,
    )
    const [a, b] = await Promise.all([safetyNumberOf(alice, 'bob'), safetyNumberOf(bob, 'alice')])
    assert.equal(a, b)
    // One number per device of his, each unlike the number over both.
    await alice.click('#safety-numbers li[data-user-id="bob"] summary')
    const perDevice = alice.locator(
      '#safety-numbers li[data-user-id="bob"] li[data-device-id] .safety-number',
    )
    await perDevice.first().waitFor(WAIT)
    const numbers = await perDevice.evaluateAll((els) =>
      els.map((e) => (e as unknown as { dataset: Record<string, string> }).dataset.number),
    )
    assert.equal(numbers.length, 2)
    for (const n of numbers) {
      assert.match(n ?? '', SAFETY_NUMBER)
      assert.notEqual(n, a)
    }
    await shot(alice, 'e2ee-safety-numbers-per-device')

    await openChat(bob2, 'Secret plans')
    await bob2
      .locator('#messages li.unreadable-run', {
        hasText: '4 earlier messages were sent before this device joined',
      })
      .first()
      .waitFor(WAIT)
    await send(alice, 'welcome, second tab')
    await message(bob2, 'welcome, second tab').waitFor(WAIT)
    await bob2.close()
  })

  it('reads the chat again after a reload: keys and what was read come from IndexedDB', async () => {
    await bob.reload()
    await connected(bob)
    await bob.locator('#conversation #e2ee-badge').waitFor(WAIT)
    for (const text of ['the key is under the mat', 'got it, see you at nine', 'welcome, second tab'])
      await message(bob, text).waitFor(WAIT)
    // The image's key came inside a message read before: kept with it, it decrypts again.
    await bob.waitForFunction(
      `[...document.querySelectorAll('#messages img.media')].some((i) => i.complete && i.naturalWidth === 480)`,
      null,
      WAIT,
    )
    await send(alice, 'after your reload')
    await message(bob, 'after your reload').waitFor(WAIT)
    await send(bob, 'still here')
    await message(alice, 'still here').waitFor(WAIT)
    assert.equal(await bob.locator('#messages .undecryptable').count(), 0)
  })

  it('starts an encrypted direct chat beside the plain one', async () => {
    await alice.fill('#with', 'bob')
    await alice.check('#with-encrypted')
    await alice.locator('#with-encrypted-help').waitFor(WAIT)
    await alice.press('#with', 'Enter')
    await alice.waitForFunction(
      `document.querySelector('#chats li.active')?.dataset.chatId?.startsWith('e_d.')`,
      null,
      WAIT,
    )
    await alice.locator('#conversation #e2ee-badge').waitFor(WAIT)
    await send(alice, 'just between us')
    const row = bob.locator('#chats li[data-chat-id^="e_d."]')
    await row.locator('svg.lock').waitFor(WAIT)
    await row.click()
    await message(bob, 'just between us').waitFor(WAIT)
    await send(bob, 'agreed')
    await message(alice, 'agreed').waitFor(WAIT)
    const [a, b] = await Promise.all([safetyNumberOf(alice, 'bob'), safetyNumberOf(bob, 'alice')])
    assert.match(a, SAFETY_NUMBER)
    assert.equal(a, b)
    await shot(bob, 'e2ee-direct-chat')
    assert.deepEqual(await accessibilityProblems(bob), [])
    await openChat(alice, 'Secret plans')
    await openChat(bob, 'Secret plans')
  })

  it('adds Carol from the members panel; on a phone in dark mode she reads what follows', async () => {
    const carol = await newPage({
      viewport: { width: 390, height: 844 },
      colorScheme: 'dark',
      isMobile: true,
    })
    try {
      await signIn(carol, 'carol')
      await alice.click('#info')
      await alice.fill('#add-user', 'carol')
      await alice.click('#add-member button')
      await alice.locator('#members li[data-user-id="carol"]').waitFor(WAIT)
      await alice.click('#info')
      await openChat(carol, 'Secret plans')
      await carol.locator('#e2ee-badge').waitFor(WAIT)
      // The lock takes the place of Verify: the group's name keeps its room.
      assert.equal(await carol.locator('#verify-button').isVisible(), false)
      const title = await carol.$eval('#peer', (e) => [e.clientWidth, e.scrollWidth])
      assert.ok((title[1] ?? 0) <= (title[0] ?? 0), `the group's name is not cut (${title[1]} > ${title[0]})`)
      await send(alice, 'hi carol, welcome in')
      await message(carol, 'hi carol, welcome in').waitFor(WAIT)
      // What was sent before she joined is said to be unreadable, in words.
      await carol
        .locator('#messages li.unreadable-run', { hasText: 'sent before this device joined' })
        .waitFor(WAIT)
      await send(carol, 'hello from my phone')
      await message(alice, 'hello from my phone').waitFor(WAIT)
      await shot(carol, 'e2ee-phone-chat-dark')
      assert.deepEqual(await accessibilityProblems(carol), [])
      const [a, c] = await Promise.all([safetyNumberOf(alice, 'carol'), safetyNumberOf(carol, 'alice')])
      assert.equal(a, c)
      await shot(carol, 'e2ee-phone-safety-numbers-dark')
      assert.deepEqual(await accessibilityProblems(carol), [])
    } finally {
      await carol.context().close()
    }
  })

  it('says when this device is outside the encryption, until the other side adds its devices', async () => {
    // Dave has never signed in: no device of his has KeyPackages when Alice opens the chat.
    await alice.fill('#with', 'dave')
    await alice.check('#with-encrypted')
    await alice.press('#with', 'Enter')
    await alice.waitForFunction(
      `document.querySelector('#chats li.active')?.dataset.chatId?.startsWith('e_d.')`,
      null,
      WAIT,
    )
    // Said before she writes, not only in Verify: what she sends now never reaches Dave.
    await alice.locator('#e2ee-unreachable', { hasText: 'dave cannot read what is sent here' }).waitFor(WAIT)
    await shot(alice, 'e2ee-peer-not-joined')
    assert.deepEqual(await accessibilityProblems(alice), [])
    await alice.click('#verify-button')
    await alice.locator('#safety-numbers li[data-user-id="dave"] .no-devices').waitFor(WAIT)
    const dave = await newPage()
    try {
      await signIn(dave, 'dave')
      await openChat(dave, 'alice')
      await dave.locator('#e2ee-waiting').waitFor(WAIT)
      // Written before the device joined: it waits, and goes once it can be encrypted.
      await send(dave, 'written while waiting')
      await dave.locator('#messages li.pending', { hasText: 'written while waiting' }).waitFor(WAIT)
      await shot(dave, 'e2ee-not-joined')
      assert.deepEqual(await accessibilityProblems(dave), [])

      await alice.click('#safety-numbers .add-devices')
      const shown = alice.locator('#safety-numbers li[data-user-id="dave"] > .safety-number')
      await shown.waitFor(WAIT)
      await dave.locator('#e2ee-waiting').waitFor({ state: 'detached', ...WAIT })
      await message(alice, 'written while waiting').waitFor(WAIT)
      await alice.locator('#e2ee-unreachable').waitFor({ state: 'detached', ...WAIT })
      await send(alice, 'now you are in')
      await message(dave, 'now you are in').waitFor(WAIT)
      assert.equal(await shown.getAttribute('data-number'), await safetyNumberOf(dave, 'alice'))
    } finally {
      await dave.context().close()
    }
  })

  it('lets any member add a new browser of Carol to a group, and warns before signing out of it', async () => {
    // Carol's phone (still in the group) is off; she signs in on a new browser.
    const carol = await newPage()
    try {
      await signIn(carol, 'carol')
      await openChat(carol, 'Secret plans')
      await carol.locator('#e2ee-waiting', { hasText: 'from their Verify panel' }).waitFor(WAIT)
      await openChat(alice, 'Secret plans')
      await safetyNumberOf(alice, 'carol')
      await alice.click('#safety-numbers li[data-user-id="carol"] .add-new-devices')
      await alice
        .locator('#safety-numbers li[data-user-id="carol"] [role="status"]', { hasText: 'Added one device' })
        .waitFor(WAIT)
      await carol.locator('#e2ee-waiting').waitFor({ state: 'detached', ...WAIT })
      await send(alice, 'your new browser is in')
      await message(carol, 'your new browser is in').waitFor(WAIT)

      // A file still uploading lives only in the page: closing it asks first, and staying keeps it.
      const held: Route[] = []
      await carol.route('**/*', (r) => (r.request().method() === 'PUT' ? held.push(r) : r.continue()))
      await carol.setInputFiles('#attach', {
        name: 'boarding-pass.txt',
        mimeType: 'text/plain',
        buffer: Buffer.from('gate 12'),
      })
      await carol.locator('#messages li.upload[data-status="uploading"]').waitFor(WAIT)
      let asked = false
      carol.once('dialog', (d) => {
        asked = d.type() === 'beforeunload'
        void d.dismiss()
      })
      await carol.close({ runBeforeUnload: true })
      await carol.locator('#messages li.upload').waitFor(WAIT)
      assert.ok(asked && !carol.isClosed(), 'asked before closing with a file uploading')
      for (const r of held.splice(0)) await r.continue()
      await carol.unroute('**/*')
      await alice.locator('#messages .file-card', { hasText: 'boarding-pass.txt' }).waitFor(WAIT)

      // Signing out deletes this browser's keys: said first, and Escape keeps her signed in.
      await carol.click('#sign-out')
      const warning = carol.locator('#sign-out-warning[role="alertdialog"]')
      assert.match(
        (await warning.textContent()) ?? '',
        /deletes the keys of your encrypted chat here.*a new device that reads only what is sent after/s,
      )
      await shot(carol, 'e2ee-sign-out-warning')
      assert.deepEqual(await accessibilityProblems(carol), [])
      await carol.keyboard.press('Escape')
      await warning.waitFor({ state: 'detached', ...WAIT })
      assert.equal(await carol.evaluate('document.activeElement?.id'), 'sign-out')
      // Signing out for real is the warning's own button (tried in a tab of her own).
      const spare = await carol.context().newPage()
      await spare.goto(t.httpUrl)
      await signIn(spare, 'carol')
      await openChat(spare, 'Secret plans')
      await spare.click('#sign-out')
      await spare.click('#sign-out-confirm')
      await spare.locator('#login').waitFor(WAIT)
      await spare.close()

      // Removed, she keeps what she read, and the header no longer offers safety numbers to open.
      await alice.click('#info')
      await alice.locator('#members li[data-user-id="carol"] button', { hasText: 'Remove' }).click()
      await carol.locator('#conversation p.removed').waitFor(WAIT)
      await alice.click('#info')
      assert.equal(await carol.locator('#verify-button').count(), 0)
      assert.equal(await carol.locator('#messages li.devices-changed button').count(), 0)
      assert.equal(await carol.$eval('#e2ee-badge', (e) => e.tagName), 'SPAN')
      await message(carol, 'your new browser is in').waitFor(WAIT)
      await shot(carol, 'e2ee-removed-second-browser')
      assert.deepEqual(await accessibilityProblems(carol), [])

      // No encrypted chat left to lose (the client forgot the one she was removed from): no question.
      await carol.click('#sign-out')
      await carol.locator('#login').waitFor(WAIT)
    } finally {
      await carol.context().close()
    }
    assert.deepEqual(errors, [])
  })
})
