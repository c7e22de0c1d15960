import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import sharp from 'sharp'
import yauzl from 'yauzl'
import {
  type ExportDeps,
  type ExportedMessage,
  type ExportedUser,
  type ExportSummary,
  exportUser,
} from '../services/privacy/user-export.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { type S3Server, s3Env, startVersitygw } from './helpers/versitygw.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

/** A Writable that keeps what it is given, and the archive once it ends. */
function collector(): { out: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = []
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk)
      done()
    },
  })
  return { out, bytes: () => Buffer.concat(chunks) }
}

/** Every entry of a zip, by name, read with yauzl (a reader of its own, not the writer's). */
function unzip(zip: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(zip, { lazyEntries: true }, (err, file) => {
      if (err) return reject(err)
      const entries = new Map<string, Buffer>()
      file.on('error', reject)
      file.on('end', () => resolve(entries))
      file.on('entry', (entry: yauzl.Entry) => {
        file.openReadStream(entry, (openErr, stream) => {
          if (openErr) return reject(openErr)
          const chunks: Buffer[] = []
          stream.on('data', (c: Buffer) => chunks.push(c))
          stream.on('error', reject)
          stream.on('end', () => {
            assert.ok(!entries.has(entry.fileName), `${entry.fileName} twice`)
            entries.set(entry.fileName, Buffer.concat(chunks))
            file.readEntry()
          })
        })
      })
      file.readEntry()
    })
  })
}

const json = <T>(b: Buffer | undefined): T => {
  assert.ok(b, 'entry missing')
  return JSON.parse(b.toString('utf8')) as T
}

/** A photo-like PNG: a gradient, so that it compresses like a picture. */
async function photo(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3)
  for (let i = 0; i < raw.length; i += 3) {
    raw[i] = i % 251
    raw[i + 1] = (i >> 8) % 253
    raw[i + 2] = 128
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer()
}

/** Uploads through the real media flow: media.begin, the signed PUT, media.complete. */
async function upload(
  d: Device,
  chatId: string,
  bytes: Buffer,
  contentType: string,
  name: string,
): Promise<string> {
  const begun = await d.request<{
    mediaId: string
    upload: { method: string; url: string; headers: Record<string, string> }
  }>('media.begin', { chatId, sha256: sha(bytes), size: bytes.length, contentType, name })
  const put = await fetch(begun.upload.url, {
    method: begun.upload.method,
    headers: begun.upload.headers,
    body: bytes,
  })
  assert.equal(put.status, 200, await put.text())
  await d.request('media.complete', { mediaId: begun.mediaId })
  return begun.mediaId
}

function depsOf(t: TestNode): ExportDeps {
  const { stores, blocks, objects, accounts } = t.node
  return {
    accounts,
    profiles: stores.profiles,
    delivery: stores.delivery,
    push: stores.push,
    blocks,
    chats: stores.chats,
    messages: stores.messages,
    media: stores.media,
    objects,
  }
}

async function exportOf(
  userId: string,
  deps: ExportDeps,
): Promise<{ summary: ExportSummary; zip: Buffer; entries: Map<string, Buffer> }> {
  const c = collector()
  const summary = await exportUser(userId, deps, c.out)
  const zip = c.bytes()
  return { summary, zip, entries: await unzip(zip) }
}

const backends = [
  { name: 'SQLite and disk media', mongo: false, s3: false },
  { name: 'MongoDB (FerretDB) and S3 (versitygw)', mongo: true, s3: true },
] as const

for (const backend of backends) {
  describe(`user export on ${backend.name}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let s3: S3Server | undefined
    let phone: Device
    let laptop: Device
    let bob: Device
    let carol: Device
    let dave: Device
    let trip: string
    let work: string
    let direct: string
    let image: Buffer
    let file: Buffer
    let imageId: string
    let fileId: string
    let bobsImageId: string
    /** What Alice sent, per chat: seq and text as they are now (edited, or null once deleted). */
    const sent = new Map<string, { seq: number; text: string | null; replyTo?: number; media?: string[] }[]>()
    /** Seqs of messages others sent, per chat. */
    const others = new Map<string, number[]>()
    let editedSeq: number
    let deletedSeq: number

    const send = async (
      d: Device,
      chatId: string,
      text: string,
      extra: { replyTo?: number; media?: string[] } = {},
    ): Promise<number> => {
      const { message } = await d.request<{ message: { seq: number } }>('send', {
        chatId,
        clientMsgId: `c${randomBytes(6).toString('hex')}`,
        text,
        ...extra,
      })
      if (d.userId === 'alice') {
        const list = sent.get(chatId) ?? []
        list.push({ seq: message.seq, text, ...extra })
        sent.set(chatId, list)
      } else others.set(chatId, [...(others.get(chatId) ?? []), message.seq])
      return message.seq
    }

    /** Alice's i-th message of a chat. */
    const mine = (chatId: string, i: number) => {
      const m = sent.get(chatId)?.[i]
      assert.ok(m, `no message ${i} of ${chatId}`)
      return m
    }

    before(async () => {
      const env: Record<string, string> = {}
      if (backend.mongo) {
        ferret = await startFerretDb()
        env.NATTER_MONGODB_URI = ferret.uri
      }
      if (backend.s3) {
        s3 = await startVersitygw()
        Object.assign(env, s3Env(s3))
      }
      t = await startTestNode(env)
      const device = async (userId: string, deviceId: string) =>
        Device.connect(t.mqttUrl, userId, deviceId, await t.token(userId))
      phone = await device('alice', 'phone')
      laptop = await device('alice', 'laptop')
      bob = await device('bob', 'phone')
      carol = await device('carol', 'phone')
      dave = await device('dave', 'phone')

      trip = (await phone.request<{ id: string }>('chat.create', { name: 'Trip', members: ['bob', 'carol'] }))
        .id
      work = (await bob.request<{ id: string }>('chat.create', { name: 'Work', members: ['alice', 'dave'] }))
        .id
      direct = (await phone.request<{ id: string }>('chat.direct', { with: 'bob' })).id

      image = await photo(400, 300)
      file = randomBytes(200_000)
      imageId = await upload(phone, trip, image, 'image/png', 'beach.png')
      fileId = await upload(laptop, direct, file, 'application/pdf', 'plan.pdf')
      bobsImageId = await upload(bob, trip, await photo(64, 64), 'image/png', 'bob.png')

      // 100 messages of Alice's, 40 + 35 + 25, between others' messages.
      for (let i = 0; i < 40; i++) {
        const d = i % 2 ? laptop : phone
        if (i === 10) await send(d, trip, 'the beach', { media: [imageId] })
        else if (i === 20) await send(d, trip, 'agreed', { replyTo: others.get(trip)?.[0] as number })
        else await send(d, trip, `trip ${i} ✈️ ${i % 3 ? 'sun' : 'rain'}`)
        if (i % 4 === 0) await send(bob, trip, `bob in trip ${i}`)
        if (i % 8 === 0) await send(carol, trip, `carol in trip ${i}`)
      }
      for (let i = 0; i < 35; i++) {
        await send(phone, work, `work ${i}`)
        if (i % 7 === 0) await send(dave, work, `dave at work ${i}`)
      }
      await phone.request('chat.leave', { chatId: work })
      await send(bob, work, 'after alice left')
      for (let i = 0; i < 25; i++) {
        if (i === 5) await send(laptop, direct, 'the plan', { media: [fileId] })
        else await send(phone, direct, `to bob ${i}`)
        // Bob blocks Alice at 19: the blocker may no longer send in the direct chat.
        if (i % 5 === 0 && i < 19) await send(bob, direct, `to alice ${i}`)
        // From here on Alice's messages are stored hidden from Bob: still hers, exported.
        if (i === 19) await bob.request('user.block', { userId: 'alice' })
      }
      const edited = mine(trip, 3)
      editedSeq = edited.seq
      await laptop.request('edit', { chatId: trip, seq: editedSeq, text: 'trip 3, edited' })
      edited.text = 'trip 3, edited'
      const deleted = mine(direct, 2)
      deletedSeq = deleted.seq
      await phone.request('delete', { chatId: direct, seq: deletedSeq })
      deleted.text = null

      await phone.request('profile.set', { displayName: 'Alice Liddell', avatar: imageId })
      await laptop.request('push.register', { platform: 'fcm', token: 'fcm-token-of-alices-laptop' })
      await phone.request('push.mute', { chatId: trip, muted: true })
      await phone.request('user.block', { userId: 'dave' })
      await bob.request('profile.set', { displayName: 'Bob' })
    })
    after(async () => {
      for (const d of [phone, laptop, bob, carol, dave]) await d?.close().catch(() => {})
      await t?.close()
      await ferret?.stop()
      await s3?.stop()
    })

    it('holds exactly the chats, messages, media, profile, devices, push registrations and blocks of the user', async () => {
      assert.equal(
        [...sent.values()].reduce((n, l) => n + l.length, 0),
        100,
      )
      const before = Date.now()
      const { summary, zip, entries } = await exportOf('alice', depsOf(t))

      const chatIds = [trip, work, direct]
      assert.deepEqual(
        [...entries.keys()].sort(),
        [
          ...chatIds.map((id) => `messages/${id}.json`),
          `media/${fileId}.pdf`,
          `media/${imageId}.png`,
          'user.json',
        ].sort(),
      )
      assert.deepEqual(summary, {
        userId: 'alice',
        chats: 3,
        messages: 100,
        media: 2,
        mediaFiles: 2,
        bytes: zip.length,
      })

      const user = json<ExportedUser>(entries.get('user.json'))
      assert.equal(user.userId, 'alice')
      assert.ok(user.exportedAt >= before && user.exportedAt <= Date.now())
      assert.match(user.about, /messages sent by others/)
      assert.equal(user.profile?.displayName, 'Alice Liddell')
      assert.equal(user.profile?.avatar, imageId)
      assert.deepEqual(
        user.devices.map((d) => [d.deviceId, d.connected, d.push]),
        [
          ['laptop', true, 'fcm'],
          ['phone', true, null],
        ],
      )
      assert.ok(user.devices.every((d) => d.firstSeenAt <= d.lastSeenAt))
      assert.deepEqual(
        user.pushRegistrations.map((r) => [r.userId, r.deviceId, r.platform, r.token]),
        [['alice', 'laptop', 'fcm', 'fcm-token-of-alices-laptop']],
      )
      assert.deepEqual(
        user.blocks.map((b) => b.userId),
        ['dave'],
        'the users Alice blocks, not those who block her',
      )

      const chats = new Map(user.chats.map((c) => [c.chatId, c]))
      assert.deepEqual([...chats.keys()].sort(), [...chatIds].sort())
      const shape = (id: string) => {
        const c = chats.get(id)
        assert.ok(c)
        return [c.kind, c.name, c.role, c.member, c.muted, c.messages, c.messageCount]
      }
      assert.deepEqual(shape(trip), ['group', 'Trip', 'admin', true, true, `messages/${trip}.json`, 40])
      assert.deepEqual(shape(work), ['group', 'Work', null, false, false, `messages/${work}.json`, 35])
      assert.deepEqual(shape(direct), ['direct', null, 'member', true, false, `messages/${direct}.json`, 25])
      assert.equal(chats.get(work)?.joinedAt, null)
      assert.ok((chats.get(trip)?.joinedAt ?? 0) > 0)
      for (const c of user.chats) {
        assert.ok(c.deliveredSeq >= c.readSeq, `${c.chatId}: delivered ${c.deliveredSeq}, read ${c.readSeq}`)
        assert.ok(c.readSeq >= 0)
      }

      for (const chatId of chatIds) {
        const messages = json<ExportedMessage[]>(entries.get(`messages/${chatId}.json`))
        const expected = sent.get(chatId) ?? []
        assert.deepEqual(
          messages.map((m) => [m.seq, m.text]),
          expected.map((m) => [m.seq, m.text]),
          `exactly Alice's messages of ${chatId}`,
        )
        const theirs = new Set(others.get(chatId))
        assert.ok(theirs.size > 0)
        assert.ok(
          messages.every((m) => !theirs.has(m.seq)),
          'nobody else’s messages',
        )
        for (const m of messages) {
          const x = expected.find((e) => e.seq === m.seq)
          const deleted = m.seq === deletedSeq && chatId === direct
          assert.equal(m.deletedAt !== null, deleted, `deletedAt of ${m.seq}`)
          assert.equal(m.editedAt !== null, m.seq === editedSeq && chatId === trip, `editedAt of ${m.seq}`)
          if (!deleted) {
            assert.deepEqual(m.media, x?.media)
            assert.equal(m.replyTo, x?.replyTo)
          }
          assert.ok(['phone', 'laptop'].includes(m.deviceId))
          assert.equal((m as unknown as Record<string, unknown>).hiddenFrom, undefined)
        }
      }
      const text = [...entries.entries()]
        .filter(([name]) => name.endsWith('.json'))
        .map(([, b]) => b.toString('utf8'))
        .join('\n')
      for (const theirs of ['bob in trip', 'carol in trip', 'dave at work', 'to alice', 'after alice left']) {
        assert.ok(!text.includes(theirs), `"${theirs}" is someone else's`)
      }
      assert.ok(!text.includes(bobsImageId), 'Bob’s upload is his')

      const media = new Map(user.media.map((m) => [m.id, m]))
      assert.deepEqual([...media.keys()].sort(), [fileId, imageId].sort())
      assert.deepEqual(
        [media.get(imageId)?.name, media.get(imageId)?.contentType, media.get(imageId)?.status],
        ['beach.png', 'image/png', 'ready'],
      )
      assert.equal(media.get(fileId)?.name, 'plan.pdf')
      for (const [id, bytes] of [
        [imageId, image],
        [fileId, file],
      ] as const) {
        const m = media.get(id)
        assert.ok(m?.file)
        assert.equal(m.sha256, sha(bytes))
        assert.equal(m.size, bytes.length)
        assert.equal(sha(entries.get(m.file) as Buffer), sha(bytes), `the bytes of ${m.file}`)
      }
    })

    it('writes user.json with the fields docs/admin.md shows, no more and no fewer', async () => {
      const page = readFileSync(new URL('../docs/admin.md', import.meta.url), 'utf8')
      const documented = /`user\.json` \(times[^\n]*\n\n```json\n([\s\S]*?)\n```/.exec(page)?.[1]
      assert.ok(documented, 'the user.json example of docs/admin.md')
      const doc = JSON.parse(documented) as Record<string, unknown>
      const user = json<Record<string, unknown>>(
        (await exportOf('alice', depsOf(t))).entries.get('user.json'),
      )
      const keys = (o: unknown) => Object.keys(o as object).sort()
      assert.deepEqual(keys(user), keys(doc))
      assert.deepEqual(keys(user.profile), keys(doc.profile))
      for (const list of ['devices', 'pushRegistrations', 'blocks', 'chats', 'media']) {
        const documentedItem = (doc[list] as unknown[])[0]
        for (const item of user[list] as unknown[]) assert.deepEqual(keys(item), keys(documentedItem), list)
      }
    })

    it('says when an operator banned the user, and not by whom', async () => {
      assert.equal(
        json<ExportedUser>((await exportOf('alice', depsOf(t))).entries.get('user.json')).account,
        null,
      )
      await t.node.accounts.ban('carol', { reason: 'spam', by: 'ops-key-1' })
      const { entries } = await exportOf('carol', depsOf(t))
      const user = json<ExportedUser>(entries.get('user.json'))
      assert.deepEqual(
        { ...user.account, since: typeof user.account?.since },
        { status: 'banned', since: 'number', reason: 'spam' },
      )
      assert.ok(!(entries.get('user.json') as Buffer).toString('utf8').includes('ops-key-1'))
      // Banned or not, her messages are hers.
      const hers = json<ExportedMessage[]>(entries.get(`messages/${trip}.json`))
      assert.deepEqual(
        hers.map((m) => m.text),
        [0, 8, 16, 24, 32].map((i) => `carol in trip ${i}`),
      )
    })

    it('exports a user Natter knows nothing about as an empty archive', async () => {
      const { summary, entries } = await exportOf('nobody-at-all', depsOf(t))
      assert.deepEqual([...entries.keys()], ['user.json'])
      const user = json<ExportedUser>(entries.get('user.json'))
      assert.deepEqual(
        [
          user.userId,
          user.account,
          user.profile,
          user.devices,
          user.pushRegistrations,
          user.blocks,
          user.chats,
          user.media,
        ],
        ['nobody-at-all', null, null, [], [], [], [], []],
      )
      assert.deepEqual([summary.chats, summary.messages, summary.media, summary.mediaFiles], [0, 0, 0, 0])
    })

    it('rejects when a store fails before the first byte, and writes nothing', async () => {
      const deps = depsOf(t)
      const c = collector()
      const failing: ExportDeps = {
        ...deps,
        chats: { chatsEver: () => Promise.reject(new Error('store down')) },
      }
      await assert.rejects(exportUser('alice', failing, c.out), /store down/)
      assert.equal(c.bytes().length, 0)
    })

    it('rejects when a store fails mid-way, and leaves no archive an unzip takes for whole', async () => {
      const deps = depsOf(t)
      let calls = 0
      const failing: ExportDeps = {
        ...deps,
        messages: {
          sentBy: (...args) => {
            if (++calls === 2) return Promise.reject(new Error('store lost mid-way'))
            return deps.messages.sentBy(...args)
          },
        },
      }
      const c = collector()
      await assert.rejects(exportUser('alice', failing, c.out), /store lost mid-way/)
      assert.ok(c.out.destroyed)
      await assert.rejects(unzip(c.bytes()))
    })

    it('stops when the receiver goes away mid-way (a download cut); the next export is whole', async () => {
      let received = 0
      // Takes the first 100 kB (past the messages, into the media), then fails as a closed socket does.
      const out = new Writable({
        write(chunk: Buffer, _enc, done) {
          received += chunk.length
          done(received > 100_000 ? new Error('socket closed') : null)
        },
      })
      await assert.rejects(exportUser('alice', depsOf(t), out), /socket closed/)
      // The node still serves: another export completes.
      const { summary } = await exportOf('alice', depsOf(t))
      assert.equal(summary.messages, 100)
    })
  })
}
