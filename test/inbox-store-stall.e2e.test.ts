import assert from 'node:assert/strict'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/** Whether a chunk from the driver carries a server check: a BSON key hello (or the legacy isMaster), NUL-ended. */
const HELLO_NAMES = ['hello', 'ismaster', 'isMaster'].map((n) =>
  Buffer.concat([Buffer.from(n), Buffer.alloc(1)]),
)
const isHello = (b: Buffer) => HELLO_NAMES.some((name) => b.includes(name))

/**
 * A TCP proxy in front of FerretDB that can stall, as FerretDB stopped under traffic did now and
 * then (test/faults, mongo-stop-5s): on a connection open when it stalls, a server check (a
 * monitor's hello) closes the connection, and any other command is swallowed and never answered
 * while the connection stays open; connections made while it is stalled are closed at once.
 * Connections made after resume() pass bytes again; a swallowed command stays unanswered.
 */
async function stallingProxy(target: { host: string; port: number }) {
  const pairs = new Set<{ client: Socket; server: Socket; stalled: boolean }>()
  let down = false
  // Resolved by what a stall does: a command swallowed, a server check's connection closed.
  let onSwallowed = () => {}
  let onCheckClosed = () => {}
  const swallowed = new Promise<void>((resolve) => {
    onSwallowed = resolve
  })
  const checkClosed = new Promise<void>((resolve) => {
    onCheckClosed = resolve
  })
  const srv: Server = createServer((client) => {
    if (down) {
      client.destroy()
      return
    }
    const server = createConnection(target)
    const pair = { client, server, stalled: false }
    pairs.add(pair)
    client.on('data', (b) => {
      if (!pair.stalled) server.write(b)
      else if (isHello(b)) {
        end()
        onCheckClosed()
      } else onSwallowed()
    })
    server.on('data', (b) => {
      if (!pair.stalled) client.write(b)
    })
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      server.destroy()
    }
    client.on('close', end).on('error', end)
    server.on('close', () => !pair.stalled && end()).on('error', () => !pair.stalled && end())
  })
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as { port: number }
  return {
    port,
    /** Resolves once a stalled connection swallowed a command, and once a server check found one closed. */
    swallowed,
    checkClosed,
    stall() {
      down = true
      for (const p of pairs) p.stalled = true
    },
    resume() {
      down = false
    },
    /** Closes the stalled connections: what waits on them fails (other stores' calls too). */
    release() {
      for (const p of pairs) {
        if (!p.stalled) continue
        p.client.destroy()
        p.server.destroy()
      }
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy()
        p.server.destroy()
      }
      await new Promise<void>((resolve) => srv.close(() => resolve()))
    },
  }
}

describe('inbox delivery after a MongoDB call that never answers', () => {
  let ferret: FerretDb
  let proxy: Awaited<ReturnType<typeof stallingProxy>>
  let t: TestNode

  before(async () => {
    ferret = await startFerretDb()
    const { hostname, port, pathname } = new URL(ferret.uri)
    proxy = await stallingProxy({ host: hostname, port: Number(port) })
    t = await startTestNode({ NATTER_MONGODB_URI: `mongodb://127.0.0.1:${proxy.port}${pathname}` })
  })
  after(async () => {
    proxy?.release()
    await t?.close()
    await proxy?.close()
    await ferret?.stop()
  })

  it('a device that reconnects after the store came back gets its messages, whatever call hung meanwhile', async () => {
    const alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    const bobToken = await t.token('bob')
    let bob = await Device.connect(t.mqttUrl, 'bob', 'phone', bobToken)
    try {
      const chatId = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      const has = (d: Device, text: string) => d.messages(chatId).some((m) => m.text === text)
      await alice.send(chatId, 'before')
      await bob.until(() => has(bob, 'before'), 'the message before')
      const before = bob.messages(chatId).find((m) => m.text === 'before')?.seq ?? 0
      // Bob's goodbye is recorded on a connection that stalls: that write never answers.
      proxy.stall()
      await bob.close()
      // The goodbye's write is swallowed, and a client's monitor has found its connection
      // closed (one check every 2 s): the write stays unanswered from then on.
      await proxy.swallowed
      await proxy.checkClosed
      proxy.resume()
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', bobToken)
      await alice.send(chatId, 'after')
      // The stalled write is given up on (5 s socket timeout, 8 s hold at the most), then the
      // reconnect is recorded and the inbox starts.
      await bob.until(() => has(bob, 'after'), 'the message sent after the store came back', 25_000)
      assert.deepEqual(bob.seqs(chatId), [before + 1])
    } finally {
      await alice.close()
      await bob.close()
    }
  })
})
