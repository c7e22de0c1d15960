import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { decrypt, fromBase64, stateFrom } from '../client-sdk/src/mls/codec.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { type SocketTap, tapSockets } from './helpers/socket-tap.ts'
import {
  accessibilityProblems,
  launchChromium,
  message,
  newChatPage,
  openChat,
  openChatTab,
  SAFETY_NUMBER,
  SHOTS,
  safetyNumberOf,
  send,
  shot,
  signIn,
  storedHistory,
  WAIT,
} from './helpers/web-chat-pages.ts'

/** What the open chat's timeline shows, entry by entry (messages' text, events' words), in page order. */
function timeline(page: Page): Promise<string[]> {
  return page.$$eval('#messages li[data-seq]', (items) =>
    items.map((li) =>
      li.classList.contains('event')
        ? (li.textContent ?? '').trim()
        : (li.querySelector('.text')?.textContent ?? '').trim(),
    ),
  )
}

/** This page's device's stored MLS record (IndexedDB `natter-mls:<userId>/<deviceId>`, docs/e2ee.md §13). */
async function storedMlsRecord(page: Page, userId: string) {
  return (await page.evaluate(`new Promise((resolve, reject) => {
    const open = indexedDB.open('natter-mls:' + ${JSON.stringify(userId)} + '/' + window.natter.deviceId)
    open.onerror = () => reject(open.error)
    open.onsuccess = () => {
      const req = open.result.transaction('mls', 'readonly').objectStore('mls').get('device')
      req.onsuccess = () => {
        open.result.close()
        resolve(req.result ?? null)
      }
      req.onerror = () => reject(req.error)
    }
  })`)) as { groups: Record<string, { state: string; seq: number }> } | null
}

/**
 * The web chat's encrypted groups as membership changes (docs/e2ee.md §13, issue 20): in headless
 * Chromium, each person in a browser profile of their own. Carol removed from the members panel,
 * her open page told so and left read-only with nothing of what follows; Bob offline while Alice
 * makes four Commits and sends 34 messages, then reading them all in order; Alice removing Erin
 * while Bob adds Grace, Bob's Commit refused as stale and made again by his client.
 */
describe('the web chat as encrypted group membership changes', () => {
  let t: TestNode
  let browser: Browser
  let alice: Page
  let bob: Page
  let carol: Page
  let aliceTap: SocketTap
  let bobTap: SocketTap
  let chatId = ''
  const errors: string[] = []
  const withTap = async (page: Page) => {
    const tap = await tapSockets(page.context())
    await page.reload()
    return tap
  }
  /** Signs a person in on a browser of their own and closes it: their device has KeyPackages, and is offline. */
  const signInOnce = async (name: string) => {
    const p = await newChatPage(browser, t, errors)
    await signIn(p, name)
    await p.context().close()
  }
  /** Adds or removes a member from the group's members panel, and waits until the panel shows it. */
  const addMember = async (page: Page, userId: string) => {
    await page.click('#info')
    await page.fill('#add-user', userId)
    await page.click('#add-member button')
    await page.locator(`#members li[data-user-id="${userId}"]`).waitFor(WAIT)
    // Done when the form is cleared (the SDK's addMembers resolved: the Commit accepted).
    await page.waitForFunction(`document.querySelector('#add-user').value === ''`, null, WAIT)
    await page.click('#info')
  }
  const removeMember = async (page: Page, userId: string) => {
    await page.click('#info')
    await page.locator(`#members li[data-user-id="${userId}"] .remove-member`).click()
    await page.locator(`#members li[data-user-id="${userId}"]`).waitFor({ state: 'detached', ...WAIT })
    await page.click('#info')
  }

  before(async () => {
    mkdirSync(SHOTS, { recursive: true })
    // The embedded default: its generated secret signs dev tokens.
    t = await startTestNode({ NATTER_JWT_SECRET: '' })
    browser = await launchChromium()
    ;[alice, bob, carol] = await Promise.all([
      newChatPage(browser, t, errors),
      newChatPage(browser, t, errors),
      newChatPage(browser, t, errors),
    ])
    ;[aliceTap, bobTap] = await Promise.all([withTap(alice), withTap(bob)])
    await Promise.all([
      signIn(alice, 'alice'),
      signIn(bob, 'bob'),
      signIn(carol, 'carol'),
      ...['dave', 'erin'].map(signInOnce),
    ])
    await alice.click('#new-group-button')
    await alice.fill('#group-name', 'Night shift')
    await alice.fill('#group-members', 'bob, carol')
    await alice.check('#group-encrypted')
    await alice.click('#new-group button[type="submit"]')
    await alice.locator('#e2ee-badge').waitFor(WAIT)
    chatId = (await alice.getAttribute('#chats li.active', 'data-chat-id')) ?? ''
    assert.match(chatId, /^e_/)
    // Bob an admin too (a chat event, no Commit): he adds people in the last test.
    await alice.click('#info')
    await alice.locator('#members li[data-user-id="bob"] .set-role').click()
    await alice.locator('#members li[data-user-id="bob"] .role').waitFor(WAIT)
    await alice.click('#info')
    await Promise.all([openChat(bob, 'Night shift'), openChat(carol, 'Night shift')])
  })
  after(async () => {
    await browser?.close()
    await t?.close()
  })

  it('Carol removed from the members panel: her page says so, stays read-only, and gets nothing sent after', async () => {
    await send(alice, 'shift starts at ten')
    await Promise.all([
      message(bob, 'shift starts at ten').waitFor(WAIT),
      message(carol, 'shift starts at ten').waitFor(WAIT),
    ])
    const held = (await storedMlsRecord(carol, 'carol'))?.groups[chatId]
    assert.ok(held, 'Carol’s device holds the group’s state')

    await removeMember(alice, 'carol')
    await carol
      .locator('#conversation p.removed', { hasText: 'alice removed you from this chat.' })
      .waitFor(WAIT)
    // Read-only: no composer, no safety numbers to open, no search; what she read stays.
    assert.equal(await carol.locator('#text').count(), 0)
    assert.equal(await carol.locator('#verify-button').count(), 0)
    assert.equal(await carol.locator('#search-button').count(), 0, 'nothing left to search')
    // Her list no longer has the chat, and says so without claiming she never had one.
    await carol.locator('nav p.empty', { hasText: 'You are in no chats now' }).waitFor(WAIT)
    await message(carol, 'shift starts at ten').waitFor(WAIT)
    await message(bob, 'alice removed carol').waitFor(WAIT)

    await send(alice, 'the code for the back door is 4711')
    await message(bob, 'the code for the back door is 4711').waitFor(WAIT)
    // Bob has read it; a message of Bob's after it shows nothing reached Carol's page in between.
    await send(bob, 'noted')
    await message(alice, 'noted').waitFor(WAIT)
    for (const text of ['4711', 'noted'])
      assert.equal(await message(carol, text).count(), 0, `${text} on Carol's page`)
    assert.equal(await carol.locator('#messages .undecryptable').count(), 0, 'not even as unreadable')

    // Her device dropped the group's secrets, and the state it held cannot decrypt what followed.
    assert.equal((await storedMlsRecord(carol, 'carol'))?.groups[chatId], undefined)
    const kept = await storedHistory(t, 'alice', chatId)
    const sentAfter = kept.filter((m) => m.ciphertext && m.seq > held.seq)
    assert.ok(sentAfter.length >= 2, `${sentAfter.length} encrypted messages after the removal`)
    for (const m of sentAfter)
      await assert.rejects(decrypt(stateFrom(fromBase64(held.state)), fromBase64(m.ciphertext ?? '')))

    await shot(carol, 'e2ee-removed')
    assert.deepEqual(await accessibilityProblems(carol), [])
    await carol.context().close()
  })

  it('Bob offline across four Commits and 34 messages reads them all in order, with the devices-changed notice', async (tc) => {
    await bobTap.cut()
    await bob.locator('#connection:not([data-state="connected"])').waitFor(WAIT)
    await shot(bob, 'e2ee-offline')
    const expected: string[] = []
    const say = async (from: number, to: number) => {
      for (let i = from; i <= to; i++) {
        const text = `round ${String(i).padStart(2, '0')} of the night`
        await send(alice, text)
        expected.push(text)
      }
      await message(alice, expected.at(-1) ?? '').waitFor(WAIT)
    }
    await say(1, 8)
    await addMember(alice, 'dave')
    expected.push('alice added dave')
    await say(9, 16)
    // Alice's second tab: a device of hers, which her first tab adds to the group.
    const alice2 = await openChatTab(alice.context().newPage(), t, errors)
    await signIn(alice2, 'alice')
    await alice.locator('#messages li.devices-changed').waitFor(WAIT)
    expected.push('alice’s devices changed: compare safety numbers again. Verify')
    await alice2.close()
    await say(17, 24)
    await addMember(alice, 'erin')
    expected.push('alice added erin')
    await say(25, 32)
    await removeMember(alice, 'dave')
    expected.push('alice removed dave')
    await say(33, 34)
    await alice.waitForSelector('#messages li.mine:last-child[data-status="sent"]', WAIT)

    const started = performance.now()
    await bobTap.restore()
    await message(bob, 'round 34 of the night').waitFor(WAIT)
    const caughtUpMs = performance.now() - started
    const shown = (await timeline(bob)).filter(
      (s) => /^round \d\d of the night$/.test(s) || /added|removed dave|devices changed/.test(s),
    )
    assert.deepEqual(shown.slice(shown.indexOf('round 01 of the night')), expected)
    assert.equal(await bob.locator('#messages .undecryptable').count(), 0)
    assert.equal(await bob.locator('#messages li.devices-changed').count(), 1)
    await bob.locator('#messages li.devices-changed').scrollIntoViewIfNeeded()
    await shot(bob, 'e2ee-caught-up')
    assert.deepEqual(await accessibilityProblems(bob), [])
    tc.diagnostic(`Bob caught up with 4 Commits and 34 messages in ${caughtUpMs.toFixed(0)} ms`)

    // In step again: both ways, and the same safety number.
    await send(bob, 'back online, read everything')
    await message(alice, 'back online, read everything').waitFor(WAIT)
    const [a, b] = await Promise.all([safetyNumberOf(alice, 'bob'), safetyNumberOf(bob, 'alice')])
    assert.match(a, SAFETY_NUMBER)
    assert.equal(a, b)
    await Promise.all([
      alice.click('#safety-numbers .panel-close'),
      bob.click('#safety-numbers .panel-close'),
    ])
  })

  it('two admins change the members at the same time: both Commits land, Bob’s made again by his client', async () => {
    const grace = await newChatPage(browser, t, errors)
    await signIn(grace, 'grace')
    const staleBefore = bobTap.received('stale_epoch') + aliceTap.received('stale_epoch')
    // What the SDK reports as failed (a Welcome that does not join, a Commit that does not apply).
    const sdkErrors = (p: Page) => p.evaluate('window.sdkErrors') as Promise<string[]>
    for (const p of [alice, bob, grace])
      await p.evaluate(
        `window.sdkErrors = []; window.natter.on('error', (e) => window.sdkErrors.push(e.message))`,
      )

    // Bob's Commit is made and on its way (held in the network) when Alice makes hers for the same
    // epoch: hers wins, his is refused as stale, and his client makes it again on top of hers.
    // (Not two Adds: with ts-mls 1.6.4 the Welcome of an Add after another member's add-only
    // Commit can fail its tree check on the joining device: test/mls-unmerged-leaves.test.ts.)
    const holding = bobTap.holdFrom('req/mls.commit')
    await bob.click('#info')
    await bob.fill('#add-user', 'grace')
    await bob.click('#add-member button')
    await holding
    await removeMember(alice, 'erin')
    bobTap.release()
    await bob.waitForFunction(`document.querySelector('#add-user').value === ''`, null, WAIT)
    await bob.click('#info')
    assert.equal(
      bobTap.received('stale_epoch') + aliceTap.received('stale_epoch') - staleBefore,
      1,
      'exactly one Commit refused as stale',
    )

    await openChat(grace, 'Night shift')
    await send(alice, 'welcome grace, bye erin')
    await send(bob, 'glad you are here')
    const everyone = { alice, bob, grace }
    for (const [name, p] of Object.entries(everyone))
      for (const text of ['welcome grace, bye erin', 'glad you are here'])
        await message(p, text)
          .waitFor(WAIT)
          .catch(async (e: Error) => {
            throw new Error(
              `${name} does not show “${text}” (SDK errors: ${await sdkErrors(p)}): ${e.message}`,
            )
          })
    // Every page ends with the same members and the same Commits in one order (no fork).
    const members = async (p: Page) =>
      (await p.evaluate(
        `window.natter.chat(${JSON.stringify(chatId)}).members.map((m) => m.userId).sort()`,
      )) as string[]
    const commits = async (p: Page) =>
      (await p.evaluate(
        `window.natter.messages(${JSON.stringify(chatId)}).flatMap((m) => m.event?.type === 'mls_commit' ? [m.seq + ':' + m.event.epoch + ':' + m.senderId] : [])`,
      )) as string[]
    for (const p of [alice, bob, grace]) {
      assert.deepEqual(await members(p), ['alice', 'bob', 'grace'])
      // Nothing unreadable but what was sent before the device joined (Grace's, from before she was added).
      for (const words of await p.locator('#messages .undecryptable').allTextContents())
        assert.match(words, /sent before this device joined/)
      assert.deepEqual(await sdkErrors(p), [])
    }
    const [aliceCommits, bobCommits] = await Promise.all([commits(alice), commits(bob)])
    assert.deepEqual(bobCommits, aliceCommits)
    // The last two: Alice's Remove, then Bob's Add one epoch later.
    const [, e1, by1] = (aliceCommits.at(-2) ?? '').split(':')
    const [, e2, by2] = (aliceCommits.at(-1) ?? '').split(':')
    assert.deepEqual([by1, by2, Number(e2) - Number(e1)], ['alice', 'bob', 1])
    for (const p of [alice, bob]) {
      await p.click('#info')
      assert.deepEqual(
        await p.$$eval('#members li[data-user-id]', (els) => els.map((e) => e.getAttribute('data-user-id'))),
        ['alice', 'bob', 'grace'],
      )
      await p.click('#info')
    }

    const pairs: [Page, string, Page, string][] = [
      [alice, 'bob', bob, 'alice'],
      [alice, 'grace', grace, 'alice'],
      [bob, 'grace', grace, 'bob'],
    ]
    for (const [p, other, q, me] of pairs) {
      const [x, y] = await Promise.all([safetyNumberOf(p, other), safetyNumberOf(q, me)])
      assert.match(x, SAFETY_NUMBER)
      assert.equal(x, y, `${me} and ${other} compare the same number`)
      for (const page of [p, q])
        if ((await page.locator('#safety-numbers').count()) > 0)
          await page.click('#safety-numbers .panel-close')
    }
    assert.deepEqual(errors, [])
  })
})
