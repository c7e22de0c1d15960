import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { build } from 'esbuild'
import { type Browser, chromium } from 'playwright-core'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { ROOT } from './helpers/processes.ts'

const exec = promisify(execFile)
const SDK_DIR = join(ROOT, 'client-sdk')
const SHOTS = join(ROOT, 'test-output', 'browser')

/**
 * The Node an app would run: the machine's own `node` when the package supports it (its engines
 * say 20.19 or later), else the one running the tests.
 */
async function appNode(): Promise<{ path: string; version: string }> {
  const { stdout } = await exec('node', ['-p', 'process.execPath + " " + process.versions.node']).catch(
    () => ({
      stdout: '',
    }),
  )
  const [path, version = ''] = stdout.trim().split(' ')
  const [major = 0, minor = 0] = version.split('.').map(Number)
  return path && (major > 20 || (major === 20 && minor >= 19))
    ? { path, version }
    : { path: process.execPath, version: process.versions.node }
}

/** What `npm pack --json` says of a package it packed. */
interface Packed {
  filename: string
  files: { path: string }[]
}

// An app outside this repository, as its developer would write it: plain JavaScript for Node,
// and a page bundled by esbuild. Both only know the package's name.
const NODE_SCRIPT = `import { createClient } from '@natter/client-sdk'
const token = process.env.NATTER_TOKEN
const alice = await createClient({
  url: process.env.NATTER_URL,
  userId: 'alice',
  deviceId: 'node-script',
  getToken: async () => token,
})
const chat = await alice.direct('bob')
await alice.open(chat.id)
const reply = new Promise((resolve) => alice.on('message', (m) => m.senderId === 'bob' && m.kind === 'text' && resolve(m)))
await alice.send(chat.id, { text: 'hello from node' }).sent
console.log(JSON.stringify({ chatId: chat.id }))
console.log(JSON.stringify({ reply: (await reply).text }))
await alice.close()
`
const PAGE_SCRIPT = `import { createClient } from '@natter/client-sdk'
window.chatAsBob = async (url, token, chatId) => {
  const bob = await createClient({ url, userId: 'bob', deviceId: 'browser', getToken: async () => token })
  const fromAlice = (m) => m.senderId === 'alice' && m.kind === 'text'
  const live = new Promise((resolve) => bob.on('message', (m) => fromAlice(m) && resolve(m)))
  const opened = await bob.open(chatId)
  const got = opened.find(fromAlice) ?? (await live)
  document.querySelector('#log').textContent = 'alice: ' + got.text
  await bob.send(chatId, { text: 'hello from the browser' }).sent
  await bob.close()
  return got.text
}
`
// A strict Content Security Policy, as many apps have: no eval, no inline script. The SDK must run
// under it without a violation (the page test counts them); `worker-src blob:` is for mqtt.js,
// whose keepalive timers (worker-timers) run in a Worker made from a blob: URL.
const PAGE_HTML = `<!doctype html><meta charset="utf-8"><title>SDK app</title>
<meta http-equiv="Content-Security-Policy" content="script-src 'self'; worker-src 'self' blob:"><pre id="log"></pre>
<script type="module" src="/page.js"></script>`
// TypeScript against the package's declarations, strict, as a Node app with nodenext resolution.
const TYPED_APP = `import { createClient, type ChatMessage, type ChatSnapshot, type ChatState, type NatterClient, NatterRequestError } from '@natter/client-sdk'
import { IndexedDbOutboxStorage } from '@natter/client-sdk/indexeddb'
import { topics } from '@natter/client-sdk/topics'
const client: Promise<NatterClient> = createClient({
  url: 'mqtt://localhost:1883',
  userId: 'alice',
  deviceId: 'typed',
  getToken: async () => 'token',
})
const show = (m: ChatMessage): string => \`\${m.senderId}: \${m.text ?? ''}\`
const follow = (s: ChatState): (() => void) =>
  s.on('unread.updated', (u: { chatId: string; unread: number }) => console.log(\`\${s.name ?? u.chatId}: \${u.unread}\`))
// Event names are checked: a misspelt one does not compile.
// @ts-expect-error: no such event
const misspelt = (s: ChatState) => s.on('message.nope', () => {})
// The stores take the shape of React's useSyncExternalStore (its declaration, as React has it).
declare function useSyncExternalStore<T>(subscribe: (onStoreChange: () => void) => () => void, getSnapshot: () => T): T
const render = (s: ChatState, c: NatterClient): number => {
  const snap: ChatSnapshot = useSyncExternalStore(s.subscribe, s.getSnapshot)
  const chats: readonly ChatState[] = useSyncExternalStore(c.subscribeChats, c.getChatsSnapshot)
  c.reconnectNow()
  return snap.messages.length + snap.pending.length + chats.length + (c.profileOf('bob')?.displayName?.length ?? 0)
}
const offline = createClient({ url: 'ws://localhost:8083/mqtt', userId: 'a', deviceId: 'b', getToken: async () => 't', offlineStart: true })
// What the client calls on its chat states is not in the declarations.
// @ts-expect-error: internal
const internal = (s: ChatState) => s._touch()
export { client, follow, internal, misspelt, offline, render, show, IndexedDbOutboxStorage, NatterRequestError, topics }
`

// What the package README's "Encrypted chats" examples take from the app around them (`url`,
// Alice's `getToken`, Bob's client, a `file`, a `show`), then the examples as written, then what
// the test reads back: one JSON line.
const ENCRYPTED_PRELUDE = `import { readFileSync } from 'node:fs'
import { createClient as connect } from '@natter/client-sdk'
import { FileMlsStorage as KeyFile } from '@natter/client-sdk/mls-file'
const url = process.env.NATTER_URL as string
const tokens = JSON.parse(process.env.NATTER_TOKENS as string) as Record<string, string>
const getToken = async () => tokens.alice as string
const bob = await connect({
  url,
  userId: 'bob',
  deviceId: 'laptop',
  getToken: async () => tokens.bob as string,
  mls: { storage: new KeyFile('./keys', 'bob', 'laptop') },
})
await bob.keyPackagesReady()
const file = readFileSync('beach.png')
type Shown = { blob: Blob; name: string | null; width: number | null; height: number | null }
let onShown = (_: Shown) => {}
const shown = new Promise<Shown>((resolve) => {
  onShown = resolve
})
const show = (blob: Blob, name: string | null, width: number | null, height: number | null) =>
  onShown({ blob, name, width, height })
`
const ENCRYPTED_POSTLUDE = `
const got = await shown
const read = (await bob.open(chat.id)).map((m) => m.text)
console.log(JSON.stringify({
  chatId: chat.id,
  directId: direct.id,
  shown: { type: got.blob.type, name: got.name, same: Buffer.from(await got.blob.arrayBuffer()).equals(file) },
  read,
  found: Array.isArray(found),
  searched: (await bob.search(chat.id, 'beach')).map((m) => m.text),
  bobSees: await bob.safetyNumber(chat.id, 'alice'),
}))
await alice.close()
await bob.close()
`

/**
 * The client SDK as an app outside this repository gets it: `npm pack` in client-sdk/ (its
 * prepack builds dist/), the tarball installed into a fresh project in the system's temporary
 * directory, then a Node script and a page bundled from that project chat through a real node.
 */
describe('the client SDK as a package an app installs', () => {
  let t: TestNode
  let work: string
  let app: string
  let packed: Packed
  let browser: Browser | undefined
  let site: Server | undefined
  let siteUrl: string
  let publicDir: string

  /** README's first ```ts block after `heading`, pointed at this node's ports. */
  const readmeTs = (heading: string): string => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const fence = '```ts\n'
    const from = readme.indexOf(fence, readme.indexOf(heading)) + fence.length
    return readme
      .slice(from, readme.indexOf('\n```', from))
      .replaceAll('http://localhost:8080', t.httpUrl)
      .replaceAll('mqtt://localhost:1883', t.mqttUrl)
  }

  /** A token from the node's /dev/token, as the examples get theirs. */
  const devToken = async (userId: string): Promise<string> =>
    (
      (await (
        await fetch(`${t.httpUrl}/dev/token`, { method: 'POST', body: JSON.stringify({ userId }) })
      ).json()) as {
        token: string
      }
    ).token

  /**
   * The package README's "Encrypted chats" examples, in the order written, between what they take
   * from the app around them and what the test reads back, as `encrypted-example.ts` in the app.
   */
  const writeEncryptedExample = (): void => {
    const readme = readFileSync(join(app, 'node_modules/@natter/client-sdk/README.md'), 'utf8')
    const from = readme.indexOf('## Encrypted chats')
    const end = readme.indexOf('\n## ', from + 1)
    const section = readme.slice(from, end === -1 ? undefined : end)
    const examples = [...section.matchAll(/```ts\n([\s\S]*?)\n```/g)].map((m) => m[1] as string)
    assert.equal(examples.length, 2, 'the section has its key-and-group example and its media one')
    assert.match(examples[0] as string, /from '@natter\/client-sdk\/mls-file'/)
    const script = `${ENCRYPTED_PRELUDE}\n${examples.join('\n')}\n${ENCRYPTED_POSTLUDE}`
    writeFileSync(join(app, 'encrypted-example.ts'), script)
  }

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'natter-sdk-app-'))
    publicDir = join(work, 'public')
    mkdirSync(publicDir)
    // The app's pages on an origin of their own, as an app's site would be.
    site = createServer((req, res) => {
      const file = (req.url ?? '/').slice(1) || 'index.html'
      try {
        const body = readFileSync(join(publicDir, file.replace(/[^a-z0-9.-]/gi, '')))
        res.setHeader('content-type', file.endsWith('.js') ? 'text/javascript' : 'text/html')
        res.end(body)
      } catch {
        res.statusCode = 404
        res.end()
      }
    })
    await new Promise<void>((resolve) => site?.listen(0, '127.0.0.1', resolve))
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`
    // The embedded default without a secret: dev tokens, as `npm start` gives them.
    t = await startTestNode({ NATTER_JWT_SECRET: '', NATTER_CORS_ORIGINS: siteUrl })
    const { stdout } = await exec('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: SDK_DIR,
      maxBuffer: 16 * 2 ** 20,
    })
    // npm prints prepack's own output before the JSON.
    packed = (JSON.parse(stdout.slice(stdout.indexOf('\n[') + 1)) as Packed[])[0] as Packed
    app = join(work, 'app')
    mkdirSync(app)
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'sdk-app',
        private: true,
        type: 'module',
        dependencies: { '@natter/client-sdk': `file:${join(work, packed.filename)}` },
      }),
    )
    await exec('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app })
  })
  after(async () => {
    await browser?.close()
    site?.close()
    await t?.close()
    if (work) rmSync(work, { recursive: true, force: true })
  })

  it('ships built JavaScript, one-file browser build and declarations, no TypeScript sources', () => {
    const paths = packed.files.map((f) => f.path)
    assert.ok(paths.includes('dist/esm/index.js'), paths.join(', '))
    assert.ok(paths.includes('dist/browser/natter-sdk.js'))
    assert.ok(paths.includes('dist/types/index.d.ts'))
    assert.deepEqual(
      paths.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts')),
      [],
    )
    // The methods the client calls on its chat states (marked @internal) are not declared: an
    // app's editor does not offer them.
    const types = join(app, 'node_modules/@natter/client-sdk/dist/types')
    const declarations = paths.filter((p) => p.endsWith('.d.ts'))
    assert.ok(declarations.length > 5, declarations.join(', '))
    for (const file of declarations) {
      const text = readFileSync(join(types, file.slice('dist/types/'.length)), 'utf8')
      assert.doesNotMatch(text, /^\s*_\w+\(/m, `${file} declares an internal method`)
      assert.doesNotMatch(text, /@internal/, file)
    }
    const installed = JSON.parse(
      readFileSync(join(app, 'node_modules/@natter/client-sdk/package.json'), 'utf8'),
    ) as { exports: Record<string, unknown> }
    assert.deepEqual(Object.keys(installed.exports).sort(), [
      '.',
      './indexeddb',
      './mls-file',
      './package.json',
      './standalone',
      './topics',
    ])
  })

  it('type-checks a strict TypeScript app, and the encrypted chat examples, against its declarations', async () => {
    writeFileSync(join(app, 'typed.ts'), TYPED_APP)
    // One tsc for both (each run costs seconds): the examples run in their own test below.
    writeEncryptedExample()
    // An app on Node has @types/node (mqtt.js's declarations use it); the repository's copy.
    const { stdout } = await exec(
      join(ROOT, 'node_modules/.bin/tsc'),
      [
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--lib',
        'es2023,dom',
        '--typeRoots',
        join(ROOT, 'node_modules/@types'),
        '--types',
        'node',
        'typed.ts',
        'encrypted-example.ts',
      ],
      { cwd: app },
    ).catch((err: { stdout?: string }) => {
      throw new Error(`tsc failed:\n${err.stdout}`)
    })
    assert.equal(stdout, '')
  })

  it('lets a Node script and a bundled browser page chat through a real node', async (ctx) => {
    writeFileSync(join(app, 'alice.mjs'), NODE_SCRIPT)
    writeFileSync(join(app, 'page.js'), PAGE_SCRIPT)
    writeFileSync(join(publicDir, 'index.html'), PAGE_HTML)
    const bundle = await build({
      absWorkingDir: app,
      entryPoints: ['page.js'],
      outfile: join(publicDir, 'page.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      metafile: true,
      logLevel: 'error',
    })
    const inputs = Object.keys(bundle.metafile.inputs)
    assert.ok(inputs.includes('node_modules/@natter/client-sdk/dist/esm/index.js'), inputs.join('\n'))
    assert.ok(inputs.some((i) => i.startsWith('node_modules/mqtt/')))
    // zod/mini checks what other members write in encrypted chats: in the page, under the CSP.
    assert.ok(inputs.some((i) => i.startsWith('node_modules/zod/')))

    const node = await appNode()
    ctx.diagnostic(`the Node script runs on Node ${node.version}`)
    const alice = execFile(node.path, ['alice.mjs'], {
      cwd: app,
      env: { ...process.env, NATTER_URL: t.mqttUrl, NATTER_TOKEN: await devToken('alice') },
      timeout: 60_000,
    })
    const lines: Record<string, string>[] = []
    let stderr = ''
    alice.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const nextLine = new Promise<Record<string, string>>((resolve, reject) => {
      alice.stdout?.on('data', (d: Buffer) => {
        for (const l of d.toString().split('\n').filter(Boolean)) {
          lines.push(JSON.parse(l))
          if (lines.length === 1) resolve(lines[0] as Record<string, string>)
        }
      })
      alice.on('exit', (code) => reject(new Error(`alice.mjs exited ${code} early: ${stderr}`)))
    })
    const exited = new Promise<number | null>((resolve) => alice.on('exit', resolve))
    const { chatId } = await nextLine

    browser ??= await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    // Even a refused `new Function` that the code catches is reported as a violation.
    await page.addInitScript(`window.cspViolations = []
      document.addEventListener('securitypolicyviolation', (e) =>
        window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI))`)
    await page.goto(`${siteUrl}/`)
    await page.waitForFunction('"chatAsBob" in window')
    const args = JSON.stringify([t.wsUrl, await devToken('bob'), chatId])
    const got = await page.evaluate(`window.chatAsBob(...${args})`)
    assert.equal(got, 'hello from node')
    mkdirSync(SHOTS, { recursive: true })
    await page.screenshot({ path: join(SHOTS, 'sdk-package-page.png') })
    assert.equal(await exited, 0, stderr)
    assert.deepEqual(lines[1], { reply: 'hello from the browser' })
    assert.deepEqual(errors, [])
    assert.deepEqual(await page.evaluate('window.cspViolations'), [], 'CSP violations')
  })

  it("runs the README's Node and browser examples as written, against the node's ports", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const block = (after: string, fence: string): string => {
      const from = readme.indexOf(fence, readme.indexOf(after)) + fence.length
      return readme.slice(from, readme.indexOf('\n```', from))
    }
    const port = (u: string) => new URL(u).port
    // Only the hosts and ports differ from a reader's `npm start`.
    const here = (code: string) =>
      code
        .replaceAll('http://localhost:8080', t.httpUrl)
        .replaceAll('mqtt://localhost:1883', t.mqttUrl)
        .replaceAll('ws://localhost:8083', `ws://127.0.0.1:${port(t.wsUrl)}`)
    const nodeExample = block('In Node, against `npm start`', '```ts\n')
    const pageExample = block('uses the one-file build', '```html\n')
    assert.match(nodeExample, /from '@natter\/client-sdk'/)
    assert.match(pageExample, /from '\.\/natter-sdk\.js'/)
    const packageReadme = readFileSync(join(app, 'node_modules/@natter/client-sdk/README.md'), 'utf8')
    const packageExample = packageReadme.slice(
      packageReadme.indexOf('```ts\n') + 6,
      packageReadme.indexOf('\n```', packageReadme.indexOf('```ts\n')),
    )
    writeFileSync(join(app, 'readme-example.ts'), here(nodeExample))
    writeFileSync(join(app, 'package-readme-example.ts'), here(packageExample))
    writeFileSync(
      join(publicDir, 'readme.html'),
      `<!doctype html><meta charset="utf-8">\n${here(pageExample)}`,
    )
    writeFileSync(
      join(publicDir, 'natter-sdk.js'),
      readFileSync(join(app, 'node_modules/@natter/client-sdk/dist/browser/natter-sdk.js')),
    )

    // Alice's examples (README, then the package's own) each send "hi bob" and end; Bob's page
    // then shows both.
    for (const file of ['readme-example.ts', 'package-readme-example.ts']) {
      const { stdout } = await exec(process.execPath, [file], { cwd: app, timeout: 60_000 }).catch(
        (err: { stdout?: string; stderr?: string }) => {
          throw new Error(`${file} failed: ${err.stdout}${err.stderr}`)
        },
      )
      assert.match(stdout, /^alice: hi bob$/m)
    }
    browser ??= await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`${siteUrl}/readme.html`)
    await page
      .waitForFunction(
        'document.querySelector("#log").innerText.split("alice: hi bob").length === 3',
        undefined,
        {
          timeout: 15_000,
        },
      )
      .catch(async (err: Error) => {
        throw new Error(
          `${err.message}; the page shows: ${await page.textContent('body')}; errors: ${errors}`,
        )
      })
    assert.deepEqual(errors, [])
    await page.screenshot({ path: join(SHOTS, 'sdk-readme-page.png') })
  })

  it("runs the README's picture example as written: upload, send, and the URLs a member gets", async () => {
    const example = readmeTs('## Send a picture')
    assert.match(example, /from '@natter\/client-sdk'/)
    writeFileSync(join(app, 'picture-example.ts'), example)
    // A real JPEG, as a camera would write one.
    const sharp = (await import('sharp')).default
    const jpeg = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#3a7bd5' } })
      .jpeg()
      .toBuffer()
    writeFileSync(join(app, 'beach.jpg'), jpeg)
    const { stdout } = await exec(process.execPath, ['picture-example.ts'], {
      cwd: app,
      timeout: 60_000,
    }).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`picture-example.ts failed: ${err.stdout}${err.stderr}`)
    })
    const [imageUrl, thumbnailUrl] = stdout.trim().split(' ')
    const image = await fetch(imageUrl as string)
    assert.equal(image.status, 200)
    assert.deepEqual(Buffer.from(await image.arrayBuffer()), jpeg)
    const thumbnail = await fetch(thumbnailUrl as string)
    assert.equal(thumbnail.status, 200)
    assert.equal(thumbnail.headers.get('content-type'), 'image/webp')
  })

  it("runs the README's chat state example as written", async () => {
    const example = readmeTs('**Chat state objects.**')
    assert.match(example, /from '@natter\/client-sdk'/)
    writeFileSync(join(app, 'readme-state-example.ts'), example)
    const { stdout } = await exec(process.execPath, ['readme-state-example.ts'], {
      cwd: app,
      timeout: 60_000,
    })
    assert.deepEqual(stdout.trim().split('\n'), [
      'new: brunch at 11? (unread 1)',
      'edited: brunch at 11:30?',
      'weekend: 2 members, 0 unread',
    ])
  })
  it("runs the package README's encrypted chat examples as written: a group, safety numbers, an image, search", async () => {
    writeEncryptedExample()
    const sharp = (await import('sharp')).default
    const png = await sharp({ create: { width: 48, height: 32, channels: 3, background: '#f4a261' } })
      .png()
      .toBuffer()
    writeFileSync(join(app, 'beach.png'), png)
    const tokens = { alice: await devToken('alice'), bob: await devToken('bob') }
    const ran = await exec(process.execPath, ['encrypted-example.ts'], {
      cwd: app,
      env: { ...process.env, NATTER_URL: t.mqttUrl, NATTER_TOKENS: JSON.stringify(tokens) },
      timeout: 60_000,
    }).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`encrypted-example.ts failed: ${err.stdout}${err.stderr}`)
    })
    const lines = ran.stdout.trim().split('\n')
    const result = JSON.parse(lines.at(-1) as string) as {
      chatId: string
      directId: string
      shown: { type: string; name: string; same: boolean }
      read: (string | null)[]
      found: boolean
      searched: string[]
      bobSees: string
    }
    assert.match(result.chatId, /^e_/)
    assert.match(result.directId, /^e_d\./)
    assert.deepEqual(result.shown, { type: 'image/png', name: 'beach.png', same: true })
    assert.ok(result.read.includes('only members read this'), JSON.stringify(result.read))
    assert.ok(result.found)
    assert.deepEqual(result.searched, ['the beach'])
    // Alice's example printed her side's safety number for Bob: the same 60 digits as Bob's.
    assert.match(result.bobSees, /^(\d{5} ){11}\d{5}$/)
    assert.ok(lines.includes(result.bobSees), ran.stdout)
  })
})
