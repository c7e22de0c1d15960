import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { MessageStore, NewMessage } from '../services/messages/message-store.ts'
import { percentiles } from './percentiles.ts'

/**
 * Appends messages through SqliteMessageStore and prints the CPU of the whole process (main
 * thread and writer thread) per message, in µs, with the latency of an append in ms.
 *
 *   sh scripts/node.sh bench/sqlite-append.ts [--n=20000] [--rate=0] [--inflight=256] [--chats=100]
 *     [--runs=1] [--store=path/to/sqlite-message-store.ts]
 *
 * --rate=0 (saturation): --inflight appends are always outstanding, a new one starts as one
 * resolves. --rate=R: R appends per second, each started when a byte from a pacer process
 * arrives on a pipe, so arrivals come one event-loop turn at a time as packets from a socket do
 * (a timer in this process would wake once per ms with several due together, and batch them
 * for free). The pacer's own CPU is in its own process, outside the figures. --store: another
 * copy of the store (an older commit's, say), to compare on the same machine.
 */

const arg = (name: string, fallback: number): number => {
  const raw = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  return raw === undefined ? fallback : Number(raw)
}

if (process.argv.includes('--pacer')) {
  // Sleeps on an Atomics.wait (sub-ms, no busy loop) until each message is due, then writes one
  // byte: the parent sees one readable event per message while it keeps up.
  const rate = arg('rate', 1000)
  const n = arg('n', 1000)
  const cell = new Int32Array(new SharedArrayBuffer(4))
  const one = Buffer.from([1])
  const start = performance.now()
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / rate - performance.now()
    if (wait > 0) Atomics.wait(cell, 0, 0, wait)
    writeSync(1, one)
  }
  process.exit(0)
}

const n = arg('n', 20_000)
const rate = arg('rate', 0)
const inflight = arg('inflight', 256)
const chats = arg('chats', 100)
const runs = arg('runs', 1)
const storePath = process.argv.find((a) => a.startsWith('--store='))?.slice(8)
const storeUrl = storePath
  ? pathToFileURL(resolve(storePath)).href
  : new URL('../services/messages/sqlite-message-store.ts', import.meta.url).href
const { SqliteMessageStore } = (await import(storeUrl)) as {
  SqliteMessageStore: new (path: string) => MessageStore
}

const words = [
  'lunch',
  'meeting',
  'tomorrow',
  'café',
  'see',
  'you',
  'at',
  'noon',
  'ok',
  'thanks',
  'the',
  'plan',
]
let counter = 0
function message(): NewMessage {
  const i = counter++
  const chat = i % chats
  return {
    chatId: `chat-${chat}`,
    senderId: `user-${chat}-${i % 2}`,
    deviceId: 'phone',
    clientMsgId: `m-${i}`,
    kind: 'text',
    text: `${Array.from({ length: 8 }, (_, k) => words[(i + k * 7) % words.length]).join(' ')} ${i}`,
    body: { replyTo: null },
  }
}

async function saturate(store: MessageStore, count: number): Promise<number[]> {
  const latencies: number[] = []
  let started = 0
  const worker = async () => {
    while (started < count) {
      started++
      const t = performance.now()
      await store.append(message())
      latencies.push(performance.now() - t)
    }
  }
  await Promise.all(Array.from({ length: Math.min(inflight, count) }, worker))
  return latencies
}

async function paced(store: MessageStore, count: number): Promise<number[]> {
  const latencies: number[] = []
  const pacer = spawn(
    process.execPath,
    [new URL(import.meta.url).pathname, '--pacer', `--rate=${rate}`, `--n=${count}`],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const appends: Promise<void>[] = []
  pacer.stdout.on('data', (chunk: Buffer) => {
    for (let k = 0; k < chunk.length; k++) {
      const t = performance.now()
      appends.push(store.append(message()).then(() => void latencies.push(performance.now() - t)))
    }
  })
  await new Promise((done) => pacer.on('close', done))
  await Promise.all(appends)
  return latencies
}

for (let run = 0; run < runs; run++) {
  const dir = mkdtempSync(join(tmpdir(), 'natter-bench-append-'))
  const store = new SqliteMessageStore(join(dir, 'messages.db'))
  try {
    // Warm-up: the writer thread starts, statements are compiled, the JIT settles.
    await saturate(store, 2_000)
    const cpu = process.cpuUsage()
    const t = performance.now()
    const latencies = rate > 0 ? await paced(store, n) : await saturate(store, n)
    const used = process.cpuUsage(cpu)
    const seconds = (performance.now() - t) / 1000
    const [p50, p99, max] = percentiles(latencies, [50, 99, 100]) as [number, number, number]
    process.stdout.write(
      `${rate > 0 ? `${rate}/s paced` : `saturation (${inflight} in flight)`}: ${n} appends in ${seconds.toFixed(2)} s ` +
        `(${Math.round(n / seconds)}/s); CPU per message ${((used.user + used.system) / n).toFixed(1)} µs ` +
        `(user ${(used.user / n).toFixed(1)}, system ${(used.system / n).toFixed(1)}); ` +
        `latency ms p50 ${p50.toFixed(2)} p99 ${p99.toFixed(2)} max ${max.toFixed(2)}\n`,
    )
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
