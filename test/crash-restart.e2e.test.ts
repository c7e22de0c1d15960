import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import { Device } from './helpers/device.ts'
import { localNodeEnv, logEvent, type Proc, run } from './helpers/processes.ts'

describe('a node killed with SIGKILL and started again (embedded default)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'natter-crash-'))
  const secret = randomBytes(32).toString('hex')
  const env = {
    ...localNodeEnv(dataDir, secret),
  }
  const token = (user: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret))
  const start = async (): Promise<{ proc: Proc; url: string }> => {
    const proc = run('sh', ['bin/natter', 'start'], env)
    const { ports } = JSON.parse(await proc.waitFor(logEvent('listening'), 120_000))
    return { proc, url: `mqtt://127.0.0.1:${ports.mqtt}` }
  }
  let node: Proc | undefined
  after(async () => {
    await node?.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('loses no acknowledged message, and nobody stays online', async (t) => {
    const first = await start()
    node = first.proc
    const alice = await Device.connect(first.url, 'alice', 'phone', await token('alice'), {
      reconnectPeriod: 0,
    })
    const bob = await Device.connect(first.url, 'bob', 'phone', await token('bob'), { reconnectPeriod: 0 })
    const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    await bob.until(() => bob.messages(chat).length > 0, 'bob sees the chat')

    // A stream of sends; the node is killed while they are in flight.
    const acked: string[] = []
    let killed = false
    for (let i = 0; i < 300; i++) {
      alice.send(chat, `message ${i}`, `m${i}`).then(
        (id) => {
          if (killed) return
          acked.push(id)
          if (acked.length === 100) {
            killed = true
            first.proc.child.kill('SIGKILL')
          }
        },
        () => {},
      )
    }
    await first.proc.exited
    // What was acknowledged before the kill is what must survive; unacknowledged sends of a
    // force-closed client never settle, so they are not waited for.
    const acknowledged = [...acked]
    alice.client.end(true)
    bob.client.end(true)
    assert.ok(acknowledged.length >= 100)

    const second = await start()
    node = second.proc
    const carol = await Device.connect(second.url, 'bob', 'tablet', await token('bob'), { clean: true })
    const synced = await carol.request<{
      messages: Array<{ seq: number; clientMsgId: string }>
      lastSeq: number
    }>('sync', {
      chatId: chat,
      after: 0,
      limit: 200,
    })
    let messages = synced.messages
    while (messages.length < synced.lastSeq) {
      const more = await carol.request<{ messages: typeof messages }>('sync', {
        chatId: chat,
        after: messages.at(-1)?.seq ?? 0,
        limit: 200,
      })
      messages = messages.concat(more.messages)
    }
    const stored = new Set(messages.map((m) => m.clientMsgId))
    const lost = acknowledged.filter((id) => !stored.has(id))
    t.diagnostic(
      `crash test: sent 300, acknowledged ${acknowledged.length}, stored ${stored.size - 1}, lost ${lost.length}`,
    )
    assert.deepEqual(lost, [], 'every acknowledged message survived')
    assert.deepEqual(
      messages.map((m) => m.seq),
      Array.from({ length: synced.lastSeq }, (_, i) => i + 1),
      'no gaps in the sequence',
    )

    // Alice was online when the node died: after the restart she is offline, with a last-seen.
    assert.deepEqual(
      await carol.client.subscribeAsync('u/alice/presence', { qos: 1 }).then((g) => g.map((x) => x.qos)),
      [1],
    )
    await carol.until(() => carol.other.some((o) => o.topic === 'u/alice/presence'), 'alice presence')
    const presence = carol.other.find((o) => o.topic === 'u/alice/presence')
    const body = presence?.body as { online: boolean; lastSeenAt: number }
    assert.equal(body.online, false)
    assert.equal(presence?.retain, true)
    assert.ok(Date.now() - body.lastSeenAt < 120_000)
    await carol.close()

    // Bob's phone comes back as a device that subscribed once and relies on its session would:
    // a new client, clean=false, no SUBSCRIBE. The broker's subscriptions died with the process;
    // the delivery state did not, and every message from bob's cursor on arrives, in order.
    const phone = await Device.connect(second.url, 'bob', 'phone', await token('bob'), { subscribe: false })
    const last = synced.lastSeq
    await phone.until(
      () => phone.messages(chat).some((m) => m.seq === last),
      'every message up to the last',
      30_000,
    )
    const seqs = phone.messages(chat).map((m) => m.seq)
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'in seq order',
    )
    assert.equal(new Set(seqs).size, seqs.length, 'each once')
    const before = bob.messages(chat).map((m) => m.seq)
    const missing = Array.from({ length: last }, (_, i) => i + 1).filter(
      (seq) => !before.includes(seq) && !seqs.includes(seq),
    )
    assert.deepEqual(missing, [], 'bob has every message across the crash')
    await phone.close()
  })
})
