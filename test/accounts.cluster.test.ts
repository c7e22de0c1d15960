import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { connackCode } from './helpers/clients.ts'
import { type ClusterNode, type ClusterSetup, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { allClosed } from './helpers/erase-scenario.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

const NOT_AUTHORIZED = 5
/** docs/admin.md#ban states that a banned user is cut on every node within this. */
const CUT_WITHIN_MS = 1000

describe('bans and erases in a cluster (two nodes on Redis, MongoDB-wire store)', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  let a: ClusterNode
  let b: ClusterNode
  const { secret, token } = clusterSecret()
  const adminKey = randomBytes(24).toString('hex')
  const devices: Device[] = []

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([startRedis(), startFerretDb(), startVersitygw()])
    const setup: ClusterSetup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    const env = { NATTER_ADMIN_KEYS: `ops:${adminKey}` }
    ;[a, b] = await Promise.all([startClusterNode('a', setup, env), startClusterNode('b', setup, env)])
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    for (const n of [a, b]) await n?.stop()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  const admin = (node: ClusterNode, path: string, body: Record<string, unknown> = {}) =>
    fetch(`${node.httpUrl}/admin/v1/${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
  const chatList = async (node: ClusterNode, userId: string) => {
    const res = await fetch(`${node.httpUrl}/v1/chat.list`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(userId)}`, 'content-type': 'application/json' },
      body: '{}',
    })
    return { status: res.status, body: (await res.json()) as { error?: { message: string } } }
  }

  it('cuts a user banned on node A from node B within a second, refuses them on both, and lets them back after unban', async (t) => {
    const phone = await Device.connect(b.mqttUrl, 'mallory', 'phone', await token('mallory'))
    const laptop = await Device.connect(a.mqttUrl, 'mallory', 'laptop', await token('mallory'))
    const bystander = await Device.connect(b.mqttUrl, 'trent', 'phone', await token('trent'))
    devices.push(phone, laptop, bystander)
    for (const d of [phone, laptop]) d.client.on('error', () => {})
    const cut = allClosed([phone, laptop])
    const started = Date.now()
    const res = await admin(a, 'users/mallory/ban', { reason: 'spam' })
    assert.equal(res.status, 200, await res.text())
    await cut
    const cutAfterMs = Date.now() - started
    t.diagnostic(`banned on node A, cut on node B after ${cutAfterMs} ms`)
    assert.ok(cutAfterMs < CUT_WITHIN_MS, `cut after ${cutAfterMs} ms`)
    assert.equal(bystander.client.connected, true, 'another user stays connected')
    for (const node of [a, b]) {
      assert.equal(
        await connackCode(node.mqttUrl, { clientId: 'mallory/phone', password: await token('mallory') }),
        NOT_AUTHORIZED,
        `refused on node ${node.id}`,
      )
      const refused = await chatList(node, 'mallory')
      assert.equal(refused.status, 401)
      assert.match(refused.body.error?.message ?? '', /account_banned/)
    }
    const unbanned = await admin(a, 'users/mallory/unban')
    assert.equal(unbanned.status, 200, await unbanned.text())
    // Node B applies the unban from its announcement: a fresh connect there may race it briefly.
    await waitFor(async () => (await chatList(b, 'mallory')).status === 200, 'node B lifts the ban')
    const back = await Device.connect(b.mqttUrl, 'mallory', 'phone', await token('mallory'))
    devices.push(back)
    assert.equal(back.client.connected, true)
  })

  it('erases a user from node A: cut on node B within a second, refused on both, erased in the shared store', async (t) => {
    const phone = await Device.connect(b.mqttUrl, 'oscar', 'phone', await token('oscar'))
    const peggy = await Device.connect(a.mqttUrl, 'peggy', 'phone', await token('peggy'))
    devices.push(phone, peggy)
    phone.client.on('error', () => {})
    const chat = (await phone.request<{ id: string }>('chat.direct', { with: 'peggy' })).id
    await phone.send(chat, 'oscar’s secret plan')
    await peggy.until(() => peggy.messages(chat).some((m) => m.senderId === 'oscar'), 'peggy gets it')
    const cut = allClosed([phone])
    const started = Date.now()
    const res = await admin(a, 'users/oscar/erase')
    assert.equal(res.status, 202, await res.text())
    await cut
    const cutAfterMs = Date.now() - started
    t.diagnostic(`erase asked on node A, cut on node B after ${cutAfterMs} ms`)
    assert.ok(cutAfterMs < CUT_WITHIN_MS, `cut after ${cutAfterMs} ms`)
    for (const node of [a, b]) {
      assert.equal(
        await connackCode(node.mqttUrl, { clientId: 'oscar/phone', password: await token('oscar') }),
        NOT_AUTHORIZED,
        `refused on node ${node.id}`,
      )
      assert.match((await chatList(node, 'oscar')).body.error?.message ?? '', /account_erased|account_banned/)
    }
    const status = async () => {
      const res = await fetch(`${b.httpUrl}/admin/v1/users/oscar`, {
        headers: { authorization: `Bearer ${adminKey}` },
      })
      return ((await res.json()) as { account: { status: string } | null }).account?.status
    }
    await waitFor(async () => (await status()) === 'erased', 'the erase finishes', 30_000)
    const history = await peggy.request<{
      messages: Array<{ senderId: string; text: string | null; kind: string }>
    }>('history', { chatId: chat })
    const his = history.messages.filter((m) => m.senderId === 'oscar' && m.kind === 'text')
    assert.ok(his.length === 1 && his[0]?.text === null, 'a tombstone')
  })
})

/** Retries a check every 20 ms until it holds (what another node did, seen through the shared store or pub/sub). */
async function waitFor(check: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
