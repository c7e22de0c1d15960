import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { type Browser, type BrowserContextOptions, chromium, type Page } from 'playwright-core'
import type { TestNode } from './node.ts'
import { ROOT } from './processes.ts'

/** Where browser tests put their screenshots. */
export const SHOTS = join(ROOT, 'test-output', 'browser')
/** How long a browser test waits for what a page should show (ms). */
export const WAIT = { timeout: 20_000 }
/** A safety number as the web chat shows it: 12 groups of 5 digits (docs/e2ee.md §9). */
export const SAFETY_NUMBER = /^(\d{5} ){11}\d{5}$/

let axeSource: string | undefined

/** What axe-core finds serious or critical on the page, one line each (rule, impact, the elements). */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  axeSource ??= readFileSync(
    createRequire(import.meta.url).resolve('axe-core/axe.min.js', { paths: [ROOT, join(ROOT, 'web')] }),
    'utf8',
  )
  if (!(await page.evaluate('typeof window.axe'))?.toString().includes('object')) {
    await page.addScriptTag({ content: axeSource })
  }
  return (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) =>
    r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.map((n) => n.target.join(' ') + ' ' + (n.failureSummary ?? '')).join('; ')))`)) as string[]
}

/** Headless Chromium, the system's (/usr/bin/chromium). Close it with `browser.close()`. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
}

/** Saves a screenshot of what the page shows as `test-output/browser/<name>.png`. */
export function shot(page: Page, name: string): Promise<Buffer> {
  return page.screenshot({ path: join(SHOTS, `${name}.png`) })
}

/**
 * A page of the web chat in a browser context of its own (a profile: its own IndexedDB, so its
 * own devices and MLS keys), 1000×700 unless `options` say otherwise, at the node's sign-in page.
 * Uncaught page errors are pushed to `errors` (tests end by asserting it is empty).
 */
export async function newChatPage(
  browser: Browser,
  t: TestNode,
  errors: string[],
  options: BrowserContextOptions = {},
): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 }, ...options })
  return openChatTab(context.newPage(), t, errors)
}

/** Another tab in an existing context (the same profile), at the node's sign-in page. */
export async function openChatTab(tab: Promise<Page> | Page, t: TestNode, errors: string[]): Promise<Page> {
  const page = await tab
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(t.httpUrl)
  return page
}

/** Resolves once the page's client is connected (the header's connection state). */
export async function connected(page: Page): Promise<void> {
  await page.waitForSelector('#connection[data-state="connected"]', WAIT)
}

/**
 * Signs `name` in on the sign-in page (dev sign-in) and waits until connected and until this
 * device's KeyPackages are on the server, so that others can add it to encrypted chats.
 */
export async function signIn(page: Page, name: string): Promise<void> {
  await page.fill('#name', name)
  await page.click('#login button')
  await connected(page)
  await page.evaluate('window.natter.keyPackagesReady()')
}

/** Types `text` in the composer of the open chat and presses Enter. */
export async function send(page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.press('#text', 'Enter')
}

/** The open chat's timeline entries showing `text`. */
export function message(page: Page, text: string) {
  return page.locator('#messages li', { hasText: text })
}

/** Opens the chat whose row in the list shows `title`. */
export function openChat(page: Page, title: string): Promise<void> {
  return page.locator('#chats li', { hasText: title }).click(WAIT)
}

/** The safety number a page shows for a member of the open encrypted chat (opening the Verify panel). */
export async function safetyNumberOf(page: Page, userId: string): Promise<string> {
  // Verify, or on a phone (no room for it) the lock beside the chat's name.
  if ((await page.locator('#safety-numbers').count()) === 0)
    await page.locator('#verify-button:visible, #e2ee-badge:visible').first().click()
  const shown = page.locator(`#safety-numbers li[data-user-id="${userId}"] > .safety-number`)
  await shown.waitFor(WAIT)
  return (await shown.getAttribute('data-number')) ?? ''
}

/** One message of a chat as the server keeps it (`history`): plaintext chats' text, encrypted chats' ciphertext (base64). */
export interface StoredMessage {
  seq: number
  text: string | null
  ciphertext?: string
}

/**
 * The last `limit` messages of a chat as the server keeps them, read by `userId` over HTTP
 * (`POST /v1/history` with a dev token, so the node must sign dev tokens). Throws on an error reply.
 */
export async function storedHistory(
  t: TestNode,
  userId: string,
  chatId: string,
  limit = 100,
): Promise<StoredMessage[]> {
  const { token } = (await (
    await fetch(`${t.httpUrl}/dev/token`, { method: 'POST', body: JSON.stringify({ userId }) })
  ).json()) as { token: string }
  const res = await fetch(`${t.httpUrl}/v1/history`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ chatId, limit }),
  })
  if (!res.ok) throw new Error(`history for ${userId}: HTTP ${res.status} ${await res.text()}`)
  return ((await res.json()) as { result: { messages: StoredMessage[] } }).result.messages
}
