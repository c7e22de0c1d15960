import { checkApplicationMessage, checkKeyPackage, readCommit } from '../services/mls/mls-codec.ts'
import { commitAdd, createChatGroup, encrypt, type MlsMember, newKeyPackage } from '../test/helpers/mls.ts'

/**
 * CPU the server spends on MLS bytes (docs/e2ee.md), per call, in µs (median of n): the checks of
 * one KeyPackage at upload (signatures and ref: the only crypto the server does), reading a
 * Commit that adds one device to a group of `--members`, and checking an application message
 * (a decode, no crypto). Sizes in bytes beside.
 *
 *   sh scripts/node.sh bench/mls-server-checks.ts [--n=300] [--members=50]
 */

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback)
const n = arg('n', 300)
const size = arg('members', 50)

async function median(work: () => unknown | Promise<unknown>): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await work()
    times.push((performance.now() - t0) * 1000)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)] ?? 0
}

const chatId = 'e_bench'
const kp = await newKeyPackage('alice/phone')
await checkKeyPackage(kp.bytes, 'alice/phone', Date.now())
const creator: MlsMember = { identity: 'u0/d', kp: await newKeyPackage('u0/d') }
await createChatGroup(chatId, creator)
const others = await Promise.all(Array.from({ length: size - 1 }, (_, i) => newKeyPackage(`u${i + 1}/d`)))
const grown = await commitAdd(
  creator,
  others.map((o) => o.bytes),
)
creator.state = grown.newState
const addOne = await commitAdd(creator, [(await newKeyPackage('new/d')).bytes])
const message = await encrypt(creator, 'Hey, are we still on for lunch at 12:30? Bring the slides pls')

const rows = [
  [
    'KeyPackage check (upload)',
    kp.bytes.length,
    await median(() => checkKeyPackage(kp.bytes, 'alice/phone', Date.now())),
  ],
  [`Commit read (add 1 to ${size})`, addOne.commit.length, await median(() => readCommit(addOne.commit))],
  ['application message check', message.length, await median(() => checkApplicationMessage(message, chatId))],
] as const
process.stdout.write(`node ${process.version}, median of ${n}\n`)
for (const [what, bytes, us] of rows)
  process.stdout.write(`${what.padEnd(32)} ${String(bytes).padStart(6)} B ${us.toFixed(1).padStart(9)} µs\n`)
