import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import { Device } from '../test/helpers/device.ts'
import {
  base64,
  commitAdd,
  commitParams,
  createChatGroup,
  decrypt,
  encrypt,
  joinFromWelcome,
  type MlsMember,
  newKeyPackage,
  receive,
} from '../test/helpers/mls.ts'
import { percentiles } from './percentiles.ts'
import { procStats } from './proc-stats.ts'
import { startNatter } from './targets.ts'

/**
 * What end-to-end encryption costs (issue 20, docs/e2ee.md), with ts-mls used as the SDK uses it
 * (client-sdk/src/mls/codec.ts: same cipher suite, PublicMessage Commits with the ratchet tree
 * in the Welcome, application messages as PrivateMessages):
 *
 * 1. a client's CPU per application message, encrypt and decrypt, in a group of 2 and of 100
 *    (µs, median and p99 over `--seconds` after `--warmup`), and the bytes of a 100-byte text;
 * 2. a Commit adding 1 device to a group of 100: creating it, processing it (an existing member),
 *    joining from its Welcome (ms, median of `--reps`; the group stays at 100: every repetition
 *    starts from the same epoch), and the Commit's and Welcome's bytes;
 * 3. the server's send path: a node in its own process (bin/natter, SQLite), one device sending
 *    100-byte texts to a 1:1 chat, then MLS ciphertext of the same 100 bytes to an encrypted chat
 *    of the same two users, `--inflight` QoS 1 messages in flight (the SQLite store fsyncs before
 *    each PUBACK, so one at a time would measure the disk); the node's CPU (user + system from
 *    /proc, all its threads) per message and the PUBACK latency.
 *
 *   sh scripts/node.sh bench/mls.ts [--seconds=10] [--warmup=2] [--reps=20] [--inflight=128]
 */

const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback)
const SECONDS = arg('seconds', 10)
const WARMUP = arg('warmup', 2)
const REPS = arg('reps', 20)
const INFLIGHT = arg('inflight', 128)
const POOL = 2000

/** 100 bytes of UTF-8 (ASCII), the size of a typical chat line. */
const TEXT =
  'Hey, are we still on for lunch at 12:30? Bring the slides and the budget numbers, please. '.padEnd(
    100,
    '!',
  )

const out = (line = '') => process.stdout.write(`${line}\n`)
const f1 = (x: number) => x.toFixed(1)
const median = (xs: number[]) => percentiles(xs, [50])[0] ?? Number.NaN

/** Runs `once` (which records its own samples while `measuring`) for warmup s, then for SECONDS s. */
async function timed(once: (measuring: boolean) => Promise<void>): Promise<{ count: number; ms: number }> {
  const warmEnd = performance.now() + WARMUP * 1000
  while (performance.now() < warmEnd) await once(false)
  const t0 = performance.now()
  const end = t0 + SECONDS * 1000
  let count = 0
  while (performance.now() < end) {
    await once(true)
    count++
  }
  return { count, ms: performance.now() - t0 }
}

/** A group of `size` devices: its creator and one member who joined from the Welcome. */
async function group(size: number): Promise<{ sender: MlsMember; receiver: MlsMember }> {
  const sender: MlsMember = { identity: 'u0/d', kp: await newKeyPackage('u0/d') }
  const receiver: MlsMember = { identity: 'u1/d', kp: await newKeyPackage('u1/d') }
  await createChatGroup(`e_bench${size}`, sender)
  const rest = await Promise.all(Array.from({ length: size - 2 }, (_, i) => newKeyPackage(`u${i + 2}/d`)))
  const made = await commitAdd(sender, [receiver.kp.bytes, ...rest.map((k) => k.bytes)])
  sender.state = made.newState
  if (!made.welcome) throw new Error('no Welcome')
  await joinFromWelcome(receiver, made.welcome)
  return { sender, receiver }
}

out(`# MLS costs (bench/mls.ts), node ${process.version}, ${new Date().toISOString()}`)
out()

// 1. Client cost per application message.
const groups = new Map<number, Awaited<ReturnType<typeof group>>>()
const clientRows: string[] = []
for (const size of [2, 100]) {
  const g = await group(size)
  groups.set(size, g)
  const enc: number[] = []
  const dec: number[] = []
  let bytes = 0
  const r = await timed(async (measuring) => {
    const t0 = performance.now()
    const ciphertext = await encrypt(g.sender, TEXT)
    const t1 = performance.now()
    const text = await decrypt(g.receiver, ciphertext)
    const t2 = performance.now()
    if (text !== TEXT) throw new Error('decrypted text differs')
    bytes = ciphertext.length
    if (!measuring) return
    enc.push((t1 - t0) * 1000)
    dec.push((t2 - t1) * 1000)
  })
  const [e50, e99] = percentiles(enc, [50, 99]) as [number, number]
  const [d50, d99] = percentiles(dec, [50, 99]) as [number, number]
  clientRows.push(
    `| ${size} | ${f1(e50)} | ${f1(e99)} | ${f1(d50)} | ${f1(d99)} | ${bytes} | ${base64(new Uint8Array(bytes)).length} | ${r.count} |`,
  )
}
out(`## 1. Client: one application message of a 100-byte text (${SECONDS} s after ${WARMUP} s warm-up)`)
out()
out(
  '| group size | encrypt µs (median) | encrypt µs (p99) | decrypt µs (median) | decrypt µs (p99) | PrivateMessage bytes | base64 bytes (on the wire) | messages |',
)
out('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
for (const row of clientRows) out(row)
out()

// 2. A Commit adding one device to a group of 100.
{
  const g = groups.get(100)
  if (!g?.receiver.state) throw new Error('no group of 100')
  const create: number[] = []
  const process_: number[] = []
  const join: number[] = []
  const commitBytes: number[] = []
  const welcomeBytes: number[] = []
  const before = g.receiver.state
  for (let i = 0; i < REPS; i++) {
    const newcomer: MlsMember = { identity: `new${i}/d`, kp: await newKeyPackage(`new${i}/d`) }
    const t0 = performance.now()
    // g.sender.state is left as it was: every repetition adds to the same group of 100.
    const made = await commitAdd(g.sender, [newcomer.kp.bytes])
    const t1 = performance.now()
    await receive(g.receiver, made.commit)
    const t2 = performance.now()
    g.receiver.state = before
    if (!made.welcome) throw new Error('no Welcome')
    await joinFromWelcome(newcomer, made.welcome)
    const t3 = performance.now()
    create.push(t1 - t0)
    process_.push(t2 - t1)
    join.push(t3 - t2)
    commitBytes.push(made.commit.length)
    welcomeBytes.push(made.welcome.length)
  }
  out(`## 2. A Commit adding 1 device to a group of 100 (median of ${REPS})`)
  out()
  out('| step | ms (median) | ms (max) | bytes (median) |')
  out('| --- | ---: | ---: | ---: |')
  const max = (xs: number[]) => Math.max(...xs)
  out(
    `| create the Commit (committer) | ${f1(median(create))} | ${f1(max(create))} | ${median(commitBytes)} |`,
  )
  out(`| process it (an existing member) | ${f1(median(process_))} | ${f1(max(process_))} | |`)
  out(
    `| join from the Welcome (the new device; ratchet tree inside) | ${f1(median(join))} | ${f1(max(join))} | ${median(welcomeBytes)} |`,
  )
  out()
}

// 3. The server's send path: ciphertext next to plaintext.
{
  const secretText = randomBytes(32).toString('hex')
  const secret = new TextEncoder().encode(secretText)
  const token = (userId: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
      .sign(secret)
  const node = await startNatter({ secret: secretText })
  const devices: Device[] = []
  try {
    const alice = await Device.connect(node.url, 'alice', 'phone', await token('alice'))
    const bob = await Device.connect(node.url, 'bob', 'phone', await token('bob'))
    devices.push(alice, bob)
    const direct = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const encrypted = (
      await alice.request<{ id: string }>('chat.create', { name: 'Bench', members: ['bob'], encrypted: true })
    ).id
    const a: MlsMember = { identity: 'alice/phone', kp: await newKeyPackage('alice/phone') }
    const bobKp = await newKeyPackage('bob/phone')
    await bob.request('mls.keypackages.upload', { keyPackages: [bobKp.base64] })
    await createChatGroup(encrypted, a)
    const claimed = await alice.request<{ keyPackages: { keyPackage: string }[] }>('mls.keypackages.claim', {
      userId: 'bob',
    })
    const add = await commitAdd(
      a,
      claimed.keyPackages.map((k) => new Uint8Array(Buffer.from(k.keyPackage, 'base64'))),
    )
    await alice.request('mls.commit', commitParams(encrypted, add))
    a.state = add.newState

    // Both kinds are sent from one device, the same way, the inbox traffic the same (bob and
    // alice's own inbox get each message): only the payload and the checks it gets differ.
    const step = async (chatId: string, payload: (i: number) => string) => {
      let i = 0
      const latencies: number[] = []
      const send = async (until: number, measuring: boolean) => {
        while (performance.now() < until) {
          const s = performance.now()
          const n = i++
          let timer: NodeJS.Timeout | undefined
          // A PUBACK that never comes fails the run instead of hanging it.
          await Promise.race([
            alice.client.publishAsync(`c/${chatId}/send`, payload(n), { qos: 1 }),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no PUBACK for message ${n} in 30 s`)), 30_000)
            }),
          ]).finally(() => clearTimeout(timer))
          if (measuring) latencies.push(performance.now() - s)
        }
      }
      const window = (until: number, measuring: boolean) =>
        Promise.all(Array.from({ length: INFLIGHT }, () => send(until, measuring)))
      await window(performance.now() + WARMUP * 1000, false)
      const cpu0 = procStats(node.pid).cpuUs
      const t0 = performance.now()
      await window(t0 + SECONDS * 1000, true)
      const cpu = procStats(node.pid).cpuUs - cpu0
      const ms = performance.now() - t0
      const count = latencies.length
      const [p50, p99] = percentiles(latencies, [50, 99]) as [number, number]
      return { count, rate: (count * 1000) / ms, cpuPerMsg: cpu / count, p50, p99, bytes: payload(0).length }
    }
    // Real PrivateMessages made before the step, so the bench's own encrypting (about 1 ms each,
    // in this process anyway) is not on the clock, and reused in turn: the node checks only that
    // each is an application message of the chat's group (docs/protocol.md), so a repeat costs it
    // the same as a fresh one.
    const ciphertexts: string[] = []
    for (let i = 0; i < POOL; i++) ciphertexts.push(base64(await encrypt(a, TEXT)))
    // Two rounds, the kinds alternating, so neither has the colder node to itself.
    const rows: [string, Awaited<ReturnType<typeof step>>][] = []
    for (let round = 1; round <= 2; round++) {
      rows.push([
        `1:1, 100-byte text (round ${round})`,
        await step(direct, (i) => JSON.stringify({ clientMsgId: `p${round}-${i}`, text: TEXT })),
      ])
      rows.push([
        `encrypted (2 members), ciphertext of 100 bytes (round ${round})`,
        await step(encrypted, (i) =>
          JSON.stringify({ clientMsgId: `c${round}-${i}`, ciphertext: ciphertexts[i % POOL] }),
        ),
      ])
    }
    out(
      `## 3. Server send path, one device, ${INFLIGHT} messages in flight, ${SECONDS} s after ${WARMUP} s warm-up (node in its own process, SQLite)`,
    )
    out()
    out(
      '| chat | payload bytes | msg/s | node CPU µs/msg | PUBACK ms (median) | PUBACK ms (p99) | messages |',
    )
    out('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const [name, r] of rows)
      out(
        `| ${name} | ${r.bytes} | ${r.rate.toFixed(0)} | ${f1(r.cpuPerMsg)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.count} |`,
      )
    out()
    out('Node CPU: user + system time of all its threads from /proc (10 ms ticks), over the step.')
  } finally {
    for (const d of devices) await d.close().catch(() => {})
    await node.stop()
  }
}
