// npm run build:sdk [OUTDIR]: builds @natter/client-sdk as its package ships it (client-sdk/dist,
// what `npm pack` in client-sdk/ packs; see client-sdk/package.json's exports):
// - dist/esm/: ESM for Node and for bundlers, one file per entry (index, indexeddb-outbox,
//   topics) plus shared chunks, mqtt.js left as a dependency for the app's own install;
// - dist/browser/natter-sdk.js: one minified file with mqtt.js inside, for a page without a
//   bundler (`<script type="module">`);
// - dist/types/: the type declarations.
// Reports the one-file build's size.
import { execFileSync } from 'node:child_process'
import { builtinModules } from 'node:module'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build, type Plugin } from 'esbuild'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SRC = join(ROOT, 'client-sdk/src')
/** The package's entry points (its exports), by output name. */
const ENTRIES = {
  index: join(SRC, 'index.ts'),
  'indexeddb-outbox': join(SRC, 'indexeddb-outbox.ts'),
  topics: join(SRC, 'topics.ts'),
  'mls-file': join(SRC, 'mls/file-storage.ts'),
}
/** The one-file build's entry: the main one and the IndexedDB outbox. */
const STANDALONE = join(SRC, 'standalone.ts')
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)])

/**
 * ts-mls' HPKE library (@hpke/common) falls back to `import("crypto")` when `globalThis.crypto` is
 * missing, which never happens in a browser (nor in Node 20+): the browser build takes the global
 * WebCrypto instead of Node's module.
 */
const webCryptoOnly: Plugin = {
  name: 'webcrypto-only',
  setup(b) {
    b.onResolve({ filter: /^(node:)?crypto$/ }, () => ({ path: 'webcrypto', namespace: 'webcrypto-only' }))
    b.onLoad({ filter: /.*/, namespace: 'webcrypto-only' }, () => ({
      contents: 'export const webcrypto = globalThis.crypto',
      loader: 'js',
    }))
  },
}

export interface SdkBuild {
  /** The one-file build for pages without a bundler. */
  browserFile: string
  /** The ESM entry for Node and bundlers (dist/esm/index.js). */
  nodeFile: string
  browserBytes: number
  gzipBytes: number
  /** Bytes of the browser build that come from mqtt.js. */
  mqttBytes: number
  /** Node built-in modules the browser build imports: must be none. */
  nodeBuiltins: string[]
}

/**
 * Builds the package into `out` (default client-sdk/dist; its esm/, browser/ and types/ are
 * replaced, nothing else there is touched). Rejects with
 * esbuild's error when the sources do not build; throws when tsc fails on the declarations.
 */
export async function buildSdk(out = join(ROOT, 'client-sdk/dist')): Promise<SdkBuild> {
  const { rmSync, readFileSync } = await import('node:fs')
  for (const dir of ['esm', 'browser', 'types']) rmSync(join(out, dir), { recursive: true, force: true })
  const browserFile = join(out, 'browser/natter-sdk.js')
  const nodeFile = join(out, 'esm/index.js')
  const browser = await build({
    entryPoints: [STANDALONE],
    outfile: browserFile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    metafile: true,
    logLevel: 'error',
    plugins: [webCryptoOnly],
  })
  // platform neutral: the same files serve Node and bundlers, which resolve mqtt.js for their
  // own target (its browser field in a bundler).
  await build({
    entryPoints: ENTRIES,
    outdir: join(out, 'esm'),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    packages: 'external',
    logLevel: 'error',
  })
  execFileSync(
    join(ROOT, 'node_modules/.bin/tsc'),
    ['-p', join(ROOT, 'client-sdk/tsconfig.build.json'), '--outDir', join(out, 'types')],
    { stdio: 'inherit' },
  )
  const output = Object.values(browser.metafile.outputs)[0]
  const bytes = output?.bytes ?? 0
  const nodeBuiltins = Object.values(browser.metafile.inputs)
    .flatMap((i) => i.imports.map((imp) => imp.path))
    .filter((p) => builtins.has(p))
  const mqttBytes = Object.entries(output?.inputs ?? {})
    .filter(([path]) => path.includes('node_modules/mqtt/'))
    .reduce((sum, [, i]) => sum + i.bytesInOutput, 0)
  return {
    browserFile,
    nodeFile,
    browserBytes: bytes,
    gzipBytes: gzipSync(readFileSync(browserFile)).length,
    mqttBytes,
    nodeBuiltins: [...new Set(nodeBuiltins)],
  }
}

export function describeBuild(b: SdkBuild): string {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`
  return `client SDK for browsers: ${kb(b.browserBytes)} minified, ${kb(b.gzipBytes)} gzipped (mqtt.js is ${kb(b.mqttBytes)} of it); Node built-ins imported: ${b.nodeBuiltins.length ? b.nodeBuiltins.join(', ') : 'none'}`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ? resolve(process.argv[2]) : undefined
  const b = await buildSdk(out)
  process.stdout.write(`${b.browserFile}\n${b.nodeFile}\n${describeBuild(b)}\n`)
  if (b.nodeBuiltins.length) process.exit(1)
}
