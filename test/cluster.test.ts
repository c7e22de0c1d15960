import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import sharp from 'sharp'
import { mediaUrl, uploadMedia } from '../client-sdk/src/index.ts'
import { type ClusterNode, type ClusterSetup, clusterSecret, startClusterNode } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { logEvent } from './helpers/processes.ts'
import { type RedisServer, startRedis } from './helpers/redis.ts'
import { type S3Server, startVersitygw } from './helpers/versitygw.ts'

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const texts = (d: Device, chatId: string) =>
  d
    .messages(chatId)
    .filter((m) => m.kind === 'text')
    .map((m) => m.text)

describe('a cluster of three nodes on one Redis', () => {
  let redis: RedisServer
  let ferret: FerretDb
  let s3: S3Server
  let setup: ClusterSetup
  const { secret, token } = clusterSecret()
  let a: ClusterNode
  let b: ClusterNode
  let c: ClusterNode
  const devices: Device[] = []
  const device = async (node: ClusterNode, userId: string, deviceId: string) => {
    const d = await Device.connect(node.mqttUrl, userId, deviceId, await token(userId))
    devices.push(d)
    return d
  }

  before(async () => {
    ;[redis, ferret, s3] = await Promise.all([startRedis(), startFerretDb(), startVersitygw()])
    setup = { redisUrl: redis.url, mongoUri: ferret.uri, s3, secret }
    a = await startClusterNode('a', setup)
    b = await startClusterNode('b', setup)
    c = await startClusterNode('c', setup)
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    for (const n of [a, b, c]) await n?.stop()
    await ferret?.stop()
    await s3?.stop()
    await redis?.stop()
  })

  it('delivers a message sent on node A to members on B and C, in order', async () => {
    const alice = await device(a, 'alice', 'phone')
    const bob = await device(b, 'bob', 'phone')
    const carol = await device(c, 'carol', 'phone')
    const group = (
      await alice.request<{ id: string }>('chat.create', { name: 'Trip', members: ['bob', 'carol'] })
    ).id
    for (let i = 1; i <= 20; i++) await alice.send(group, `hello ${i}`)
    for (const d of [bob, carol]) {
      await d.until(() => texts(d, group).length >= 20, `${d.userId} has all 20 messages`)
      assert.deepEqual(
        texts(d, group),
        range(1, 20).map((i) => `hello ${i}`),
      )
      const seqs = d.seqs(group)
      assert.deepEqual(
        seqs,
        [...seqs].sort((x, y) => x - y),
        'in seq order',
      )
    }
    // Members changed on A are known on B: bob, on B, may read the history.
    const page = await bob.request<{ messages: unknown[] }>('history', { chatId: group, limit: 50 })
    assert.ok(page.messages.length >= 20)
  })

  it('hands a persistent session that leaves node A and joins node C its queued QoS 1 messages', async () => {
    const erin = await device(b, 'erin', 'phone')
    let dave = await device(a, 'dave', 'phone')
    const chat = (await erin.request<{ id: string }>('chat.direct', { with: 'dave' })).id
    await dave.close()
    for (let i = 1; i <= 5; i++) await erin.send(chat, `while away ${i}`)
    dave = await device(c, 'dave', 'phone')
    await dave.until(() => texts(dave, chat).length >= 5, 'dave has the 5 queued messages on C')
    // Queued and live deliveries may interleave right after a reconnect: a device orders by seq.
    const bySeq = dave
      .messages(chat)
      .filter((m) => m.kind === 'text')
      .sort((x, y) => x.seq - y.seq)
    assert.deepEqual(
      bySeq.map((m) => m.text),
      range(1, 5).map((i) => `while away ${i}`),
    )
  })

  it('shows presence set on node A to a new subscriber on node B, and counts devices on every node', async () => {
    const frank = await device(a, 'frank', 'phone')
    const grace = await device(b, 'grace', 'phone')
    await frank.request('chat.direct', { with: 'grace' })
    const presence = (d: Device, userId: string) =>
      d.other.filter((o) => o.topic === `u/${userId}/presence`).map((o) => o.body as { online: boolean })
    await grace.client.subscribeAsync('u/frank/presence', { qos: 1 })
    await grace.until(() => presence(grace, 'frank').at(-1)?.online === true, 'frank online, retained from A')
    // A second device on C; the first leaving A does not make frank offline.
    const frankLaptop = await device(c, 'frank', 'laptop')
    await frank.close()
    await frankLaptop.request('whoami')
    const late = await device(b, 'grace', 'tablet')
    await late.client.subscribeAsync('u/frank/presence', { qos: 1 })
    await late.until(() => presence(late, 'frank').length > 0, 'retained presence')
    assert.equal(presence(late, 'frank').at(-1)?.online, true)
    await frankLaptop.close()
    await grace.until(
      () => presence(grace, 'frank').at(-1)?.online === false,
      'frank offline once no device is left',
    )
  })

  it('stops a member removed on node A from reading the chat on node B', async () => {
    const owner = await device(a, 'hank', 'phone')
    const ivy = await device(b, 'ivy', 'phone')
    await device(c, 'jack', 'phone')
    const group = (
      await owner.request<{ id: string }>('chat.create', { name: 'Club', members: ['ivy', 'jack'] })
    ).id
    await ivy.request('history', { chatId: group })
    await owner.request('chat.remove', { chatId: group, userId: 'ivy' })
    await ivy.until(
      () => ivy.messages(group).some((m) => m.event?.type === 'member_removed'),
      'ivy hears she was removed',
    )
    await assert.rejects(ivy.request('history', { chatId: group }), { code: 'chat_not_found' })
    await owner.send(group, 'after ivy left')
    const ref = await ivy.send(group, 'still here?')
    await ivy.until(
      () => ivy.errors.some((e) => e.ref === ref && e.code === 'chat_not_found'),
      'her send is refused on B',
    )
    assert.ok(!texts(ivy, group).includes('after ivy left'))
  })

  it('lets a member on node B download an image uploaded through node A', async () => {
    const maya = await device(a, 'maya', 'phone')
    const noah = await device(b, 'noah', 'phone')
    const chat = (await maya.request<{ id: string }>('chat.direct', { with: 'noah' })).id
    const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#36c' } })
      .png()
      .toBuffer()
    const up = await uploadMedia({ client: maya.client, clientId: 'maya/phone' }, image, {
      chatId: chat,
      contentType: 'image/png',
    })
    await maya.client.publishAsync(
      `c/${chat}/send`,
      JSON.stringify({ clientMsgId: 'pic-1', text: 'a picture', media: [up.mediaId] }),
      { qos: 1 },
    )
    await noah.until(
      () => noah.messages(chat).some((m) => m.media?.includes(up.mediaId)),
      'noah gets the message',
    )
    const urls = await mediaUrl({ client: noah.client, clientId: 'noah/phone' }, up.mediaId)
    const res = await fetch(urls.url)
    assert.equal(res.status, 200)
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), image)
  })

  it('serves uploads and downloads from `natter media`, a media service of its own', async () => {
    const media = await startClusterNode('media', setup, {}, 'media')
    try {
      const olga = await device(a, 'olga', 'phone')
      const pete = await device(c, 'pete', 'phone')
      const group = (await olga.request<{ id: string }>('chat.create', { name: 'Docs', members: ['pete'] }))
        .id
      const call = async (userId: string, op: string, params: Record<string, unknown>) => {
        const res = await fetch(`${media.httpUrl}/v1/${op}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${await token(userId)}`, 'content-type': 'application/json' },
          body: JSON.stringify(params),
        })
        return {
          status: res.status,
          body: (await res.json()) as {
            result?: {
              mediaId: string
              url: string
              upload: { url: string; headers: Record<string, string> }
            }
            error?: { code: string }
          },
        }
      }
      const pdf = Buffer.from('%PDF-1.4\n% minutes of the meeting\n')
      const begun = await call('olga', 'media.begin', {
        chatId: group,
        sha256: createHash('sha256').update(pdf).digest('hex'),
        size: pdf.length,
        contentType: 'application/pdf',
        name: 'minutes.pdf',
      })
      assert.equal(begun.status, 200)
      const upload = begun.body.result?.upload as { url: string; headers: Record<string, string> }
      const put = await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: pdf })
      await put.arrayBuffer()
      assert.equal(put.status, 200)
      const mediaId = begun.body.result?.mediaId as string
      assert.equal((await call('olga', 'media.complete', { mediaId })).status, 200)
      await olga.client.publishAsync(
        `c/${group}/send`,
        JSON.stringify({ clientMsgId: 'doc-1', media: [mediaId] }),
        { qos: 1 },
      )
      await pete.until(
        () => pete.messages(group).some((m) => m.media?.includes(mediaId)),
        'pete gets the message',
      )
      const got = await call('pete', 'media.get', { mediaId })
      assert.equal(got.status, 200)
      const res = await fetch(got.body.result?.url as string)
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), pdf)
      assert.equal((await call('quinn', 'media.get', { mediaId })).status, 404)
      // Only media operations live there.
      assert.equal((await call('olga', 'history', { chatId: group })).body.error?.code, 'unknown_operation')
    } finally {
      await media.stop()
    }
  })

  it('pushes to a device that left node B, from whichever node takes the job', async () => {
    const pam = await device(a, 'pam', 'phone')
    const rob = await device(b, 'rob', 'phone')
    const chat = (await pam.request<{ id: string }>('chat.direct', { with: 'rob' })).id
    await rob.request('push.register', { platform: 'fcm', token: 'token-of-robs-phone' })
    await rob.close()
    // No FCM credentials in this cluster: pushes go to the log of the node that sends them.
    const pushed = Promise.any(
      [a, b, c].map((n) =>
        n.proc.waitFor((l) => logEvent('push')(l) && l.includes('"userId":"rob"'), 20_000),
      ),
    )
    await pam.send(chat, 'are you on the train?')
    const line = JSON.parse(await pushed) as { provider: string; bodyChars: number; chatId: string }
    // The log carries the body's length, never its text.
    assert.deepEqual(
      [line.provider, line.bodyChars, line.chatId],
      ['log', 'are you on the train?'.length, chat],
    )
  })

  it('counts out the devices of a node that dies: their users go offline with a last-seen', async () => {
    const d = await startClusterNode('d', setup)
    const kate = await device(d, 'kate', 'phone')
    const leo = await device(a, 'leo', 'phone')
    await leo.request('chat.direct', { with: 'kate' })
    await kate.request('whoami')
    await leo.client.subscribeAsync('u/kate/presence', { qos: 1 })
    const presence = () =>
      leo.other
        .filter((o) => o.topic === 'u/kate/presence')
        .map((o) => o.body as { online: boolean; lastSeenAt: number })
    await leo.until(() => presence().at(-1)?.online === true, 'kate online')
    const killedAt = Date.now()
    await d.kill()
    await leo.until(() => presence().at(-1)?.online === false, 'kate offline after her node died', 30_000)
    const lastSeen = presence().at(-1)?.lastSeenAt ?? Number.NaN
    assert.ok(lastSeen <= killedAt, 'last seen while her node was alive')
    assert.ok(killedAt - lastSeen < 10_000, 'and not long before it died')
  })
})
