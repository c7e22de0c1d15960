import { readFileSync } from 'node:fs'

/**
 * Summarises a V8 CPU profile (`npm run bench -- --cpu-prof=DIR` writes one per thread of
 * Natter's process): self time by function and by where the code lives, in µs per message when
 * told how many messages the profile covers.
 *
 *   sh scripts/node.sh bench/profile-summary.ts DIR/CPU.….cpuprofile [--messages=N] [--top=30]
 */

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Where a function lives: a package, a Natter directory, Node's internals, or V8's own buckets. */
export function place(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1] as string
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:').split('/')[0] as string
  const ours = /\/((?:broker|services|config|bench|cli)\/.+)$/.exec(url)
  if (ours) return ours[1] as string
  return url
}

/** Self time in µs per function key and per place, over the whole profile. */
export function selfTimes(p: Profile): {
  totalUs: number
  byFunction: Map<string, number>
  byPlace: Map<string, number>
} {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const byFunction = new Map<string, number>()
  const byPlace = new Map<string, number>()
  let totalUs = 0
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i] as number)
    const dt = p.timeDeltas[i + 1] ?? 0
    if (!node) continue
    const { functionName, url, lineNumber } = node.callFrame
    const where = place(url, functionName)
    const key = `${functionName || '(anonymous)'} ${where}${url ? `:${lineNumber + 1}` : ''}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt)
    byPlace.set(where, (byPlace.get(where) ?? 0) + dt)
    totalUs += dt
  }
  return { totalUs, byFunction, byPlace }
}

function main() {
  const file = process.argv[2]
  if (!file) throw new Error('usage: profile-summary.ts FILE.cpuprofile [--messages=N] [--top=N]')
  const messages = Number(process.argv.find((a) => a.startsWith('--messages='))?.slice(11) ?? 0)
  const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 30)
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const { totalUs, byFunction, byPlace } = selfTimes(profile)
  const busy = totalUs - (byPlace.get('(idle)') ?? 0)
  const per = (us: number) =>
    messages ? `${(us / messages).toFixed(2).padStart(7)} µs/msg` : `${(us / 1000).toFixed(0).padStart(7)} ms`
  const show = (title: string, m: Map<string, number>) => {
    process.stdout.write(`\n${title}\n`)
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${per(us)} ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${k}\n`)
    }
  }
  process.stdout.write(
    `profile ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s${messages ? `, ${messages} messages: ${(busy / messages).toFixed(1)} µs/msg on this thread` : ''}\n`,
  )
  show('by place (self time)', byPlace)
  show('by function (self time)', byFunction)
}

if (import.meta.url === `file://${process.argv[1]}`) main()
