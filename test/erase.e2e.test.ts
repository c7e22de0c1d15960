import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { connackCode } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { allClosed, assertErased, call, type Seeded, seedUser } from './helpers/erase-scenario.ts'
import { startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { type S3Server, s3Env, startVersitygw } from './helpers/versitygw.ts'

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : [path]
  })

/** What the node's own stores hold of the user after the erase (in-process checks beyond HTTP). */
async function assertStoresForgot(t: TestNode, s: Seeded) {
  const { stores, blocks } = t.node
  assert.deepEqual(await stores.delivery.devices(s.ursula), [])
  assert.deepEqual(await stores.profiles.get([s.ursula]), [])
  assert.deepEqual(await stores.push.registrationsOf(s.ursula), [])
  assert.deepEqual(await stores.media.uploadedBy(s.ursula), [])
  assert.deepEqual(await blocks.blockedBy(s.ursula), [])
  assert.deepEqual(await stores.chats.chatsEver(s.ursula), [])
  assert.deepEqual(await stores.chats.chatsOf(s.ursula), [])
  assert.ok(!(await stores.chats.allPresence()).some((p) => p.userId === s.ursula))
  const record = await t.node.accounts.status(s.ursula)
  assert.equal(record?.status, 'erased')
  // Her messages, and the events she sent (the group's creation).
  assert.ok((record?.erase?.done ?? 0) > s.messagesSent, `${record?.erase?.done} erased`)
}

/**
 * Seeds the user, erases her through the node's AccountService, and waits for her devices to be
 * cut and the erase to finish.
 */
async function seedAndErase(t: TestNode): Promise<Seeded> {
  const target = { mqttUrl: t.mqttUrl, httpUrl: t.httpUrl, token: (u: string) => t.token(u) }
  const s = await seedUser(target, { perChat: 30 })
  // The cut may find a device writing (acknowledging its inbox): its socket errors, as a real
  // client's would; anything else would be a failure.
  const socketErrors: string[] = []
  for (const d of s.devices)
    d.client.on('error', (err) => socketErrors.push((err as { code?: string }).code ?? err.message))
  const started = await t.node.accounts.erase(s.ursula, { by: 'test-operator' })
  assert.equal(started.status, 'erasing')
  await allClosed(s.devices)
  await s.veraDevice.until(
    () =>
      [s.group, s.direct].every((chatId) =>
        s.veraDevice.inbox.some((e) => e.chatId === chatId && e.event?.type === 'member_removed'),
      ),
    'vera hears ursula left both chats',
  )
  for (const code of socketErrors) assert.match(code, /^(ECONNRESET|EPIPE)$/)
  const done = await t.node.accounts.finished(s.ursula)
  assert.equal(done?.status, 'erased')
  return s
}

describe('erase a user: SQLite and media on disk', () => {
  let t: TestNode
  let dataDir: string
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'natter-erase-'))
    t = await startTestNode({ NATTER_DATA_DIR: dataDir, NATTER_ERASE_BATCH: '7' })
  })
  after(async () => {
    await t.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('cuts and refuses her, tombstones her messages, deletes her media and data, and no file holds a trace', async () => {
    const s = await seedAndErase(t)
    const target = { mqttUrl: t.mqttUrl, httpUrl: t.httpUrl, token: (u: string) => t.token(u) }
    await assertErased(target, s, { dataDir, objectKeys: async () => files(dataDir) })
    await assertStoresForgot(t, s)
    // Erasing again changes nothing and answers at once.
    assert.equal((await t.node.accounts.erase(s.ursula, { by: 'again' })).status, 'erased')
    // Nobody makes her a member again: her id would be back in membership rows.
    for (const [op, params] of [
      ['chat.add', { chatId: s.group, members: [s.ursula] }],
      ['chat.create', { name: 'Again', members: [s.ursula] }],
      ['chat.direct', { with: s.ursula }],
    ] as const) {
      const refused = await call(target, s.vera, op, params)
      assert.equal(refused.status, 403, op)
      assert.match(refused.body.error?.message ?? '', /the account was erased/)
    }
    await s.veraDevice.client.endAsync()
  })

  it('bans: cut at once, refused over MQTT and HTTP, back after unban', async () => {
    const target = { mqttUrl: t.mqttUrl, httpUrl: t.httpUrl, token: (u: string) => t.token(u) }
    const phone = await Device.connect(t.mqttUrl, 'banned-bob', 'phone', await t.token('banned-bob'))
    const banned = await t.node.accounts.ban('banned-bob', { reason: 'spam', by: 'test-operator' })
    assert.equal(banned.status, 'banned')
    await allClosed([phone])
    assert.equal(
      await connackCode(t.mqttUrl, { clientId: 'banned-bob/phone', password: await t.token('banned-bob') }),
      5,
    )
    const refused = await call(target, 'banned-bob', 'chat.list', {})
    assert.equal(refused.status, 401)
    assert.match(refused.body.error?.message ?? '', /account_banned/)
    await assert.rejects(t.node.accounts.unban('nobody-banned', { by: 'x' }), { code: 'not_found' })
    await t.node.accounts.unban('banned-bob', { by: 'test-operator' })
    assert.equal((await call(target, 'banned-bob', 'chat.list', {})).status, 200)
    const back = await Device.connect(t.mqttUrl, 'banned-bob', 'phone', await t.token('banned-bob'))
    await back.client.endAsync()
  })
})

describe('erase a user: MongoDB (FerretDB) and media on S3 (versitygw)', () => {
  let t: TestNode
  let s3: S3Server
  let stopFerret: () => Promise<void>
  before(async () => {
    const [ferret, gw] = await Promise.all([startFerretDb(), startVersitygw()])
    s3 = gw
    stopFerret = () => ferret.stop()
    t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri, ...s3Env(s3), NATTER_ERASE_BATCH: '7' })
  })
  after(async () => {
    await t?.close()
    await Promise.all([stopFerret?.(), s3?.stop()])
  })

  it('cuts and refuses her, tombstones her messages, deletes her media from the bucket and her data', async () => {
    const s = await seedAndErase(t)
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    })
    const objectKeys = async () => {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: 'natter-media' }))
      return (listed.Contents ?? []).map((o) => o.Key ?? '')
    }
    try {
      const target = { mqttUrl: t.mqttUrl, httpUrl: t.httpUrl, token: (u: string) => t.token(u) }
      await assertErased(target, s, { objectKeys })
      await assertStoresForgot(t, s)
    } finally {
      client.destroy()
      await s.veraDevice.client.endAsync()
    }
  })
})
