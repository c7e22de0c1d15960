// npm run build:sdk [OUTDIR]: builds @natter/client-sdk for browsers (one ESM file, mqtt.js
// included) and for Node (ESM, mqtt.js as a dependency), with type declarations, and reports
// the browser build's size.
import { execFileSync } from 'node:child_process'
import { builtinModules } from 'node:module'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ENTRY = join(ROOT, 'client-sdk/src/index.ts')
const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)])

export interface SdkBuild {
  browserFile: string
  nodeFile: string
  browserBytes: number
  gzipBytes: number
  /** Bytes of the browser build that come from mqtt.js. */
  mqttBytes: number
  /** Node built-in modules the browser build imports: must be none. */
  nodeBuiltins: string[]
}

export async function buildSdk(out = join(ROOT, 'client-sdk/dist')): Promise<SdkBuild> {
  const browserFile = join(out, 'browser/natter-sdk.js')
  const nodeFile = join(out, 'node/index.js')
  const browser = await build({
    entryPoints: [ENTRY],
    outfile: browserFile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    metafile: true,
    logLevel: 'error',
  })
  await build({
    entryPoints: [ENTRY],
    outfile: nodeFile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    packages: 'external',
    logLevel: 'error',
  })
  execFileSync(
    join(ROOT, 'node_modules/.bin/tsc'),
    ['-p', join(ROOT, 'client-sdk/tsconfig.build.json'), '--outDir', join(out, 'types')],
    {
      stdio: 'inherit',
    },
  )
  const output = Object.values(browser.metafile.outputs)[0]
  const bytes = output?.bytes ?? 0
  const { readFileSync } = await import('node:fs')
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
