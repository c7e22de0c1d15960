import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BSON, MongoClient } from 'mongodb'
import sharp from 'sharp'
import type { ChatMessage, NatterClient } from '../client-sdk/src/index.ts'
import { decrypt, fromBase64, stateFrom } from '../client-sdk/src/mls/codec.ts'
import {
  type ClusterNode,
  clusterSecret,
  startTwoNodeCluster,
  type TwoNodeCluster,
} from './helpers/cluster.ts'
import { FakeApns, makeCert, type TestCert } from './helpers/fake-push.ts'
import { holdsTexts, MlsDevices, texts } from './helpers/sdk-mls-clients.ts'

/** Commit races in the first test: each round both members commit at the same instant. */
const ROUNDS = 5
/** The catch-up of issue 20's "Done when": a device offline across 3 epochs and this many messages. */
const OFFLINE_MESSAGES = 100

/** `holds` as these tests call it: 60 s for every text to arrive. */
const holds = (c: NatterClient, chatId: string, wanted: string[]) => holdsTexts(c, chatId, wanted, 60_000)

/** The epochs of the mls_commit events a client holds in a chat, in its order. */
const commitEpochs = (c: NatterClient, chatId: string) =>
  c.messages(chatId).flatMap((m) => (m.event?.type === 'mls_commit' ? [m.event.epoch as number] : []))

/** Every file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

describe('the SDK as an MLS client on two nodes (Redis, MongoDB-wire store)', () => {
  let cluster: TwoNodeCluster | undefined
  let a: ClusterNode
  let b: ClusterNode
  let cert: TestCert | undefined
  let apns: FakeApns | undefined
  const { secret, token } = clusterSecret()
  /** Open clients by `userId/deviceId`, and each device's keys, kept across its clients like its disk. */
  const open = new Map<string, NatterClient>()
  const mls = new MlsDevices()
  const { storages } = mls

  /** A device connected to `node` with MLS keys in its own storage (the same client while it stays open). */
  const device = async (node: ClusterNode, userId: string, deviceId: string) => {
    const key = `${userId}/${deviceId}`
    const known = open.get(key)
    if (known) return known
    const c = await mls.connect({ mqttUrl: node.mqttUrl, token }, userId, deviceId)
    open.set(key, c)
    return c
  }
  const clusterOf = () => cluster as TwoNodeCluster
  const closeDevice = async (c: NatterClient) => {
    open.delete(c.clientId)
    await c.close()
  }

  before(async () => {
    cert = makeCert()
    apns = await new FakeApns(cert.dir).start(cert)
    cluster = await startTwoNodeCluster(secret, {
      NATTER_APNS_KEY_FILE: apns.keyFile,
      NATTER_APNS_KEY_ID: apns.keyId,
      NATTER_APNS_TEAM_ID: apns.teamId,
      NATTER_APNS_ADDRESS: `127.0.0.1:${apns.port}`,
      // The local endpoint's certificate, trusted as Apple's is through the system store.
      NODE_EXTRA_CA_CERTS: cert.certFile,
    })
    ;({ a, b } = cluster)
  })
  after(async () => {
    await mls.closeAll()
    await cluster?.stop()
    await apns?.close()
    cert?.cleanup()
  })

  it(`two members on two nodes commit at the same instant, ${ROUNDS} times: one wins each time, the other rebases by itself; messages still decrypt both ways`, async () => {
    const alice = await device(a, 'alice', 'phone')
    const bob = await device(b, 'bob', 'phone')
    const chatId = (await alice.createGroup('two nodes', ['bob'], { encrypted: true })).id
    await bob.whenEncryptionReady(chatId)
    await bob.open(chatId)
    await alice.open(chatId)
    let refused = 0
    // Counts the refusals, and passes every call on as it was (the later tests see the same client).
    for (const c of [alice, bob]) {
      const request = c.request.bind(c)
      c.request = ((op: string, params?: Record<string, unknown>) =>
        request(op, params).catch((err: { code?: string }) => {
          if (err.code === 'stale_epoch') refused++
          throw err
        })) as typeof c.request
    }
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all([alice.updateKeys(chatId), bob.updateKeys(chatId)])
      const text = `round ${round}`
      await alice.send(chatId, { text: `${text} from alice` }).sent
      await bob.send(chatId, { text: `${text} from bob` }).sent
      await Promise.all([
        holds(bob, chatId, [`${text} from alice`]),
        holds(alice, chatId, [`${text} from bob`]),
      ])
    }
    // The races happened (a Commit refused as stale, then made again), at most once per round.
    assert.ok(refused >= 1 && refused <= ROUNDS, `${refused} refusals in ${ROUNDS} rounds`)
    // One order of Commits for both: epochs 1 (the Adds) to 1 + 2 × ROUNDS, each once.
    await Promise.all([alice.sync(chatId), bob.sync(chatId)])
    const expected = Array.from({ length: 1 + 2 * ROUNDS }, (_, i) => i)
    assert.deepEqual(commitEpochs(alice, chatId), expected)
    assert.deepEqual(commitEpochs(bob, chatId), expected)
    assert.ok(alice.messages(chatId).every((m) => m.kind !== 'text' || m.undecryptable === undefined))
    assert.ok(bob.messages(chatId).every((m) => m.kind !== 'text' || m.undecryptable === undefined))
  })

  describe('Alice (phone on node a, laptop on node b), Bob and Carol in an encrypted group', () => {
    let chatId: string
    const said = [
      'alpha from alice phone on a',
      'bravo from alice laptop on b',
      'charlie from bob on b',
      'delta from carol on a',
    ]

    it('exchange messages and an image across the nodes; the store (FerretDB, read with the driver and as files) and the object store hold none of the text, file name or key', async () => {
      const alicePhone = await device(a, 'alice', 'phone')
      const aliceLaptop = await device(b, 'alice', 'laptop')
      const bob = await device(b, 'bob', 'phone')
      const carol = await device(a, 'carol', 'phone')
      const chat = await alicePhone.createGroup('cluster plans', ['bob', 'carol'], { encrypted: true })
      chatId = chat.id
      assert.match(chatId, /^e_/)
      await Promise.all([aliceLaptop, bob, carol].map((c) => c.whenEncryptionReady(chatId)))
      const senders = [alicePhone, aliceLaptop, bob, carol]
      for (const [i, c] of senders.entries()) await c.send(chatId, { text: said[i] as string }).sent
      await Promise.all(senders.map((c) => holds(c, chatId, said)))
      assert.deepEqual(texts(carol, chatId), said)
      assert.ok(
        bob
          .messages(chatId)
          .filter((m) => m.kind === 'text')
          .every((m) => m.encrypted === true && m.undecryptable === undefined),
      )

      // An image from Alice's laptop (node b), encrypted on the device; the object is in the shared bucket.
      const png = await sharp(randomBytes(48 * 32 * 3), { raw: { width: 48, height: 32, channels: 3 } })
        .png()
        .toBuffer()
      const imageName = `harbour-${randomBytes(4).toString('hex')}.png`
      const up = await aliceLaptop.uploadMedia(png, { chatId, contentType: 'image/png', name: imageName })
      const image = up.encrypted
      assert.ok(image, 'an encrypted chat gives the descriptor')
      await aliceLaptop.send(chatId, { text: 'the harbour', media: [up.mediaId] }).sent
      // Every member device, on either node, decrypts it to the original bytes.
      for (const c of senders) {
        const withImage = (): ChatMessage | undefined =>
          c.messages(chatId).find((m) => m.encryptedMedia?.some((d) => d.id === image.id))
        if (!withImage()) await c.next('message', () => withImage() !== undefined)
        const got = withImage()?.encryptedMedia?.[0]
        assert.ok(got, `${c.clientId} has the image's descriptor`)
        assert.equal(got.name, imageName)
        assert.ok(Buffer.from(await c.downloadMedia(got)).equals(png), `${c.clientId} decrypts the image`)
      }

      // Every document of every collection, as the driver reads it (BSON, Binary fields included).
      const mongo = await MongoClient.connect(clusterOf().store.uri)
      let documents = 0
      let stored: Buffer
      try {
        const db = mongo.db()
        const parts: Buffer[] = []
        for (const { name } of await db.listCollections().toArray()) {
          for (const doc of await db.collection(name).find({}).toArray()) {
            parts.push(Buffer.from(BSON.serialize(doc)))
            documents++
          }
        }
        stored = Buffer.concat(parts)
      } finally {
        await mongo.close()
      }
      const files = Buffer.concat(filesUnder(clusterOf().store.dataDir).map((f) => readFileSync(f)))
      const objects = filesUnder(clusterOf().s3.dir).map((f) => readFileSync(f))
      const secrets: [string, string | Buffer][] = [
        ...said.map((t): [string, string] => [`the text "${t}"`, t]),
        ['the image’s file name', imageName],
        ['the image key (base64)', image.key],
        ['the image key (raw)', Buffer.from(image.key, 'base64')],
        ['a run of the image’s bytes', png.subarray(64, 96)],
      ]
      for (const [what, bytes] of secrets) {
        assert.equal(stored.includes(bytes), false, `${what} is in a stored document`)
        assert.equal(files.includes(bytes), false, `${what} is in FerretDB's files`)
        assert.ok(!objects.some((o) => o.includes(bytes)), `${what} is in the object store`)
      }
      // The scans did read what they should: the chat's name is server-visible (docs/e2ee.md §7),
      // and the image's ciphertext is an object in the bucket.
      assert.ok(stored.includes('cluster plans'), `the name is not in ${documents} documents`)
      assert.ok(files.includes('cluster plans'), 'the name is not in the files')
      const sha256 = (x: Buffer) => createHash('sha256').update(x).digest('hex')
      assert.ok(
        objects.some((o) => sha256(o) === image.ciphertextSha256),
        'the ciphertext is in the bucket',
      )
    })

    it('Carol removed (by Alice on node a; Carol on node a, Bob on b): her device cannot decrypt what is sent after', async () => {
      const alicePhone = await device(a, 'alice', 'phone')
      const bob = await device(b, 'bob', 'phone')
      const carol = await device(a, 'carol', 'phone')
      const carolKeys = (await storages.get('carol/phone')?.load())?.groups[chatId]
      assert.ok(carolKeys, 'Carol’s device holds the group')
      const removed = carol.next('chat.removed')
      const changed = bob.next('devices.changed', (e) => e.userId === 'carol' && e.chatId === chatId)
      await alicePhone.removeMember(chatId, 'carol')
      assert.deepEqual(await removed, { chatId, reason: 'removed' })
      assert.deepEqual((await changed).removed, ['phone'])
      await alicePhone.send(chatId, { text: 'echo after carol left' }).sent
      await holds(bob, chatId, ['echo after carol left'])
      const page = await alicePhone.request<{ messages: ChatMessage[] }>('history', { chatId, limit: 1 })
      const ciphertext = page.messages[0]?.ciphertext
      assert.ok(ciphertext)
      // Her device's last group state (it never gets the Commit: she is out of the chat) has no key for it.
      await assert.rejects(decrypt(stateFrom(fromBase64(carolKeys.state)), fromBase64(ciphertext)))
      assert.equal((await storages.get('carol/phone')?.load())?.groups[chatId], undefined)
      assert.ok(!texts(carol, chatId).includes('echo after carol left'))
    })

    it('Bob’s new device (on node a) reads what is sent after it joined, not before', async () => {
      const alicePhone = await device(a, 'alice', 'phone')
      const bob = await device(b, 'bob', 'phone')
      const tablet = await device(a, 'bob', 'tablet')
      const changed = alicePhone.next('devices.changed', (e) => e.userId === 'bob' && e.chatId === chatId)
      assert.ok((await bob.addOwnDevices()).includes(chatId))
      await tablet.whenEncryptionReady(chatId)
      assert.deepEqual((await changed).added, ['tablet'])
      await alicePhone.send(chatId, { text: 'foxtrot for the tablet' }).sent
      await tablet.open(chatId)
      await holds(tablet, chatId, ['foxtrot for the tablet'])
      const before = tablet.messages(chatId).filter((m) => m.kind === 'text' && m.text === null)
      assert.ok(
        before.length >= said.length && before.every((m) => m.undecryptable),
        'what came before stays unreadable',
      )
    })

    it(`a device offline across 3 epochs and ${OFFLINE_MESSAGES} messages catches up in order, on the other node`, async (tc) => {
      const alicePhone = await device(a, 'alice', 'phone')
      const bob = await device(b, 'bob', 'phone')
      await closeDevice(await device(b, 'alice', 'laptop'))
      const offlineFrom = alicePhone.heldUpTo(chatId)
      const epochBefore = commitEpochs(alicePhone, chatId).at(-1) as number
      const sent: string[] = []
      for (let i = 0; i < OFFLINE_MESSAGES; i++) {
        const text = `offline message ${i}`
        sent.push(text)
        await (i % 2 ? bob : alicePhone).send(chatId, { text }).sent
        // Three epochs go by, committed on both nodes.
        if (i === Math.floor(OFFLINE_MESSAGES * 0.2) || i === Math.floor(OFFLINE_MESSAGES * 0.8))
          await alicePhone.updateKeys(chatId)
        if (i === Math.floor(OFFLINE_MESSAGES * 0.5)) await bob.updateKeys(chatId)
      }
      const started = performance.now()
      // Back on node a, having left from node b.
      const laptop = await device(a, 'alice', 'laptop')
      await laptop.open(chatId)
      await holds(laptop, chatId, sent)
      const ms = performance.now() - started
      assert.deepEqual(
        texts(laptop, chatId).filter((s) => s.startsWith('offline message ')),
        sent,
      )
      const missed = laptop
        .messages(chatId)
        .filter((m) => m.event?.type === 'mls_commit' && m.seq > offlineFrom)
        .map((m) => m.event?.epoch)
      assert.deepEqual(missed, [epochBefore + 1, epochBefore + 2, epochBefore + 3])
      tc.diagnostic(
        `caught up ${OFFLINE_MESSAGES} messages and 3 Commits in ${Math.round(ms)} ms (two nodes, FerretDB)`,
      )
    })

    it('a push for the chat to a device with no live session carries no text and no ciphertext', async () => {
      const alicePhone = await device(a, 'alice', 'phone')
      const tablet = await device(a, 'bob', 'tablet')
      const pushToken = 'ab1e'.repeat(16)
      await tablet.request('push.register', {
        platform: 'apns',
        token: pushToken,
        apnsTopic: 'com.example.natter',
        sandbox: true,
      })
      await closeDevice(tablet)
      const push = apns as FakeApns
      const before = push.received.length
      const text = 'the cluster vault code is 8093'
      // From node a, while the tablet's last session was on node a and its phone is on node b.
      await alicePhone.send(chatId, { text }).sent
      await push.waitFor(before + 1)
      const got = push.received.slice(before).find((r) => r.path === `/3/device/${pushToken}`)
      assert.ok(got, 'a push to the tablet')
      assert.deepEqual(got.problems, [])
      const aps = got.body.aps as { alert: { title: string; body: string } }
      assert.deepEqual(aps.alert, { title: 'cluster plans', body: 'New message' })
      const page = await alicePhone.request<{ messages: ChatMessage[] }>('history', { chatId, limit: 1 })
      const ciphertext = page.messages[0]?.ciphertext as string
      const wire = JSON.stringify(got.body)
      assert.ok(!wire.includes('8093') && !wire.includes(ciphertext.slice(0, 24)), wire)
      // Back, the tablet reads it.
      const back = await device(b, 'bob', 'tablet')
      await back.open(chatId)
      await holds(back, chatId, [text])
    })
  })

  describe('encrypted direct chats on two nodes', () => {
    it('Alice (node a) opens one with Bob (node b): a chat of its own beside the plaintext one; every device of both joins', async () => {
      const alicePhone = await device(a, 'alice', 'phone')
      const aliceLaptop = await device(a, 'alice', 'laptop')
      const bob = await device(b, 'bob', 'phone')
      const tablet = await device(b, 'bob', 'tablet')
      const plain = await alicePhone.direct('bob')
      const chat = await alicePhone.direct('bob', { encrypted: true })
      assert.match(chat.id, /^e_d\./)
      assert.notEqual(chat.id, plain.id)
      assert.deepEqual([chat.kind, chat.encrypted], ['direct', true])
      assert.equal(alicePhone.chat(chat.id).kind, 'direct')
      // Found again from either side, on either node.
      assert.equal((await bob.direct('alice', { encrypted: true })).id, chat.id)
      assert.equal((await alicePhone.direct('bob', { encrypted: true })).id, chat.id)
      await Promise.all([aliceLaptop, bob, tablet].map((c) => c.whenEncryptionReady(chat.id)))
      assert.deepEqual(bob.devicesOf(chat.id, 'alice'), ['laptop', 'phone'])
      assert.equal(await alicePhone.safetyNumber(chat.id, 'bob'), await bob.safetyNumber(chat.id, 'alice'))
      const lines = ['kilo from alice', 'lima from bob', 'mike from the tablet']
      await alicePhone.send(chat.id, { text: lines[0] as string }).sent
      await bob.send(chat.id, { text: lines[1] as string }).sent
      await tablet.send(chat.id, { text: lines[2] as string }).sent
      await Promise.all([alicePhone, aliceLaptop, bob, tablet].map((c) => holds(c, chat.id, lines)))
      // Exactly two users: no one is added, by an admin or otherwise.
      await assert.rejects(alicePhone.chat(chat.id).addMembers(['carol']), { code: 'not_allowed' })
      await assert.rejects(bob.leave(chat.id), { code: 'not_allowed' })
    })

    it('both users open it at the same instant on two nodes: one group, the other side joins from its Welcome', async (tc) => {
      const bob = await device(b, 'bob', 'phone')
      const carol = await device(a, 'carol', 'phone')
      let refused = 0
      // A barrier at mls.group: each side asks only once both got there, so both hear "epoch 0",
      // both make a group and commit, and the DS takes one.
      let arrived = 0
      let bothThere: () => void = () => {}
      const barrier = new Promise<void>((resolve) => {
        bothThere = resolve
      })
      for (const c of [bob, carol]) {
        const request = c.request.bind(c)
        c.request = (async (op: string, params?: Record<string, unknown>) => {
          if (op === 'mls.group' && arrived < 2) {
            if (++arrived === 2) bothThere()
            await barrier
          }
          return request(op, params).catch((err: { code?: string }) => {
            if (op === 'mls.commit' && err.code === 'stale_epoch') refused++
            throw err
          })
        }) as typeof c.request
      }
      const [fromBob, fromCarol] = await Promise.all([
        bob.direct('carol', { encrypted: true }),
        carol.direct('bob', { encrypted: true }),
      ])
      assert.equal(fromBob.id, fromCarol.id)
      const chatId = fromBob.id
      await Promise.all([bob, carol].map((c) => c.whenEncryptionReady(chatId)))
      await bob.send(chatId, { text: 'november from bob' }).sent
      await carol.send(chatId, { text: 'oscar from carol' }).sent
      await Promise.all([bob, carol].map((c) => holds(c, chatId, ['november from bob', 'oscar from carol'])))
      // One opening Commit (epoch 0), whoever made it.
      await Promise.all([bob.sync(chatId), carol.sync(chatId)])
      assert.equal(commitEpochs(bob, chatId)[0], 0)
      assert.deepEqual(commitEpochs(bob, chatId), commitEpochs(carol, chatId))
      const opening = bob.messages(chatId).find((m) => m.event?.type === 'mls_commit')
      // The loser was refused and joined from the winner's Welcome (its own group dropped).
      assert.equal(refused, 1, `${refused} opening Commits refused`)
      tc.diagnostic(`opened by ${opening?.senderId}; ${refused} opening Commit refused as stale`)
    })
  })
})
