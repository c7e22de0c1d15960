import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import sharp from 'sharp'
import yauzl from 'yauzl'
import { createLogger } from '../broker/log.ts'
import { type MediaServer, startMediaServer } from '../broker/media-server.ts'
import { createClient, type NatterClient } from '../client-sdk/src/index.ts'
import { loadConfig } from '../config/load.ts'
import { type ExportDeps, type ExportedUser, exportUser, mediaPath } from '../services/privacy/user-export.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { localNodeEnv } from './helpers/processes.ts'

/**
 * A profile photo without a chat (docs/protocol.md#profiles): media.begin with purpose "avatar",
 * over MQTT and HTTP, on both stores; who may download it; the sweep; export and erase; the SDK;
 * the standalone media service.
 */

const DAY = 24 * 3600_000
const MiB = 1024 * 1024
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

/** A PNG of one colour: a different colour is different bytes (another media). */
const png = (r: number, g: number, b: number) =>
  sharp({ create: { width: 48, height: 48, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer()

async function refused(work: Promise<unknown>, code: string): Promise<string> {
  const err = (await work.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  )) as { code: string; message: string }
  assert.equal(err.code, code, err.message)
  return err.message
}

type Begun = {
  mediaId: string
  status: 'ready' | 'upload'
  upload?: { method: string; url: string; headers: Record<string, string> }
}

/** A profile photo through the real flow over MQTT: media.begin {purpose: "avatar"}, the PUT, media.complete. */
async function uploadPhoto(d: Device, bytes: Buffer): Promise<string> {
  const begun = await d.request<Begun>('media.begin', {
    purpose: 'avatar',
    sha256: sha(bytes),
    size: bytes.length,
    contentType: 'image/png',
    name: 'me.png',
  })
  if (begun.upload) {
    const put = await fetch(begun.upload.url, { method: 'PUT', headers: begun.upload.headers, body: bytes })
    assert.equal(put.status, 200, await put.text())
  }
  await d.request('media.complete', { mediaId: begun.mediaId })
  return begun.mediaId
}

/** The status of a GET, its body read to the end. */
async function statusOf(url: string): Promise<number> {
  const res = await fetch(url)
  await res.arrayBuffer()
  return res.status
}

/** Every entry of a zip, by name (yauzl: a reader of its own, not the writer's). */
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
            entries.set(entry.fileName, Buffer.concat(chunks))
            file.readEntry()
          })
        })
      })
      file.readEntry()
    })
  })
}

for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`profile photos without a chat on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let dave: Device
    let bob: Device
    let erin: Device
    let photo: Buffer
    let photoId: string
    const devices: Device[] = []
    const device = async (userId: string) => {
      const d = await Device.connect(t.mqttUrl, userId, 'phone', await t.token(userId))
      devices.push(d)
      return d
    }
    const http = async (userId: string, op: string, params: Record<string, unknown>) => {
      const res = await fetch(`${t.httpUrl}/v1/${op}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token(userId)}`, 'content-type': 'application/json' },
        body: JSON.stringify(params),
      })
      const body = (await res.json()) as { result?: unknown; error?: { code: string; message: string } }
      return {
        status: res.status,
        result: body.result,
        code: body.error?.code,
        message: body.error?.message ?? '',
      }
    }

    before(async () => {
      if (backend === 'SQLite') t = await startTestNode()
      else {
        ferret = await startFerretDb()
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri })
      }
      // Dave is new: no chat at all. Bob will chat with him later; Erin never does.
      dave = await device('dave')
      bob = await device('bob')
      erin = await device('erin')
      photo = await png(30, 140, 90)
    })
    after(async () => {
      for (const d of devices) await d.close().catch(() => {})
      await t?.close()
      await ferret?.stop()
    })

    it('a user with no chat sets a photo; a later chat partner downloads it, a stranger cannot', async () => {
      assert.deepEqual((await dave.request<{ chats: unknown[] }>('chat.list')).chats, [])
      photoId = await uploadPhoto(dave, photo)
      const own = await dave.request<{ media: { uploaderId: string; kind: string }; url: string }>(
        'media.get',
        {
          mediaId: photoId,
        },
      )
      assert.deepEqual([own.media.uploaderId, own.media.kind], ['dave', 'image'])
      const { profile } = await dave.request<{ profile: { avatar: string | null } }>('profile.set', {
        avatar: photoId,
      })
      assert.equal(profile.avatar, photoId)

      // Nobody shares a chat with Dave yet: his photo is his alone.
      await refused(bob.request('media.get', { mediaId: photoId }), 'media_not_found')
      await refused(erin.request('media.get', { mediaId: photoId }), 'media_not_found')
      // Nor may anyone else make it their avatar.
      await refused(bob.request('profile.set', { avatar: photoId }), 'media_not_found')

      await dave.request('chat.direct', { with: 'bob' })
      const { profiles } = await bob.request<{ profiles: Array<{ avatar: string | null }> }>('profile.get', {
        userIds: ['dave'],
      })
      assert.equal(profiles[0]?.avatar, photoId)
      const urls = await bob.request<{ url: string; thumbnailUrl: string | null }>('media.get', {
        mediaId: photoId,
      })
      assert.deepEqual(Buffer.from(await (await fetch(urls.url)).arrayBuffer()), photo)
      assert.ok(urls.thumbnailUrl, 'a photo gets its thumbnail like any image')
      assert.equal(await statusOf(urls.thumbnailUrl), 200)
      await refused(erin.request('media.get', { mediaId: photoId }), 'media_not_found')
    })

    it('refuses what is not a profile photo with clear codes, over MQTT and HTTP', async () => {
      const text = Buffer.from('not a picture')
      const base = { sha256: sha(text), size: text.length, contentType: 'image/png' }
      const notImage = await refused(
        dave.request('media.begin', { ...base, purpose: 'avatar', contentType: 'text/plain' }),
        'unsupported_media_type',
      )
      assert.match(notImage, /profile photo is an image \(image\/jpeg.*text\/plain is not/)
      const overHttp = await http('dave', 'media.begin', {
        ...base,
        purpose: 'avatar',
        contentType: 'application/pdf',
      })
      assert.deepEqual([overHttp.status, overHttp.code], [415, 'unsupported_media_type'])
      const tooBig = await http('dave', 'media.begin', { ...base, purpose: 'avatar', size: 16 * MiB + 1 })
      assert.deepEqual([tooBig.status, tooBig.code], [413, 'too_large'])
      assert.match(tooBig.message, /image uploads are limited to 16777216 bytes/)
      const both = await refused(
        dave.request('media.begin', { ...base, purpose: 'avatar', chatId: 'g_x' }),
        'bad_request',
      )
      assert.match(both, /exactly one of chatId .* and purpose "avatar"/)
      await refused(dave.request('media.begin', base), 'bad_request')
      const other = await http('dave', 'media.begin', { ...base, purpose: 'banner' })
      assert.deepEqual([other.status, other.code], [400, 'bad_request'])
      assert.match(other.message, /params\.purpose/)
      // A chat upload still needs its chat.
      const stranger = await http('erin', 'media.begin', { ...base, chatId: 'g_notmine' })
      assert.equal(stranger.code, 'chat_not_found')
      // Nothing was recorded for any of these.
      const mine = await t.node.stores.media.uploadedBy('dave')
      assert.deepEqual(
        mine.map((m) => m.id),
        [photoId],
      )
    })

    it('works over the HTTP API: begin, PUT, complete, profile.set, media.get', async () => {
      const bytes = await png(200, 40, 40)
      const begun = await http('erin', 'media.begin', {
        purpose: 'avatar',
        sha256: sha(bytes),
        size: bytes.length,
        contentType: 'image/png',
      })
      assert.equal(begun.status, 200, begun.message)
      const b = begun.result as Begun
      assert.equal(b.status, 'upload')
      assert.ok(b.upload)
      const put = await fetch(b.upload.url, { method: 'PUT', headers: b.upload.headers, body: bytes })
      assert.equal(put.status, 200, await put.text())
      assert.equal((await http('erin', 'media.complete', { mediaId: b.mediaId })).status, 200)
      const set = await http('erin', 'profile.set', { avatar: b.mediaId })
      assert.equal((set.result as { profile: { avatar: string } }).profile.avatar, b.mediaId)
      assert.equal((await http('erin', 'media.get', { mediaId: b.mediaId })).status, 200)
      assert.equal((await http('bob', 'media.get', { mediaId: b.mediaId })).code, 'media_not_found')
      // The same bytes again: ready at once, nothing to upload.
      const again = await http('erin', 'media.begin', {
        purpose: 'avatar',
        sha256: sha(bytes),
        size: bytes.length,
        contentType: 'image/png',
      })
      assert.deepEqual(
        [(again.result as Begun).status, (again.result as Begun).mediaId],
        ['ready', b.mediaId],
      )
    })

    it('the sweep keeps the photo while it is the avatar, and removes it once replaced or cleared', async () => {
      const old = await t.node.media.sweep(Date.now() + 30 * DAY)
      assert.ok(old >= 0)
      assert.equal((await t.node.stores.media.get(photoId))?.status, 'ready', 'kept: it is the avatar')
      await bob.request('media.get', { mediaId: photoId })

      const next = await uploadPhoto(dave, await png(90, 90, 200))
      await dave.request('profile.set', { avatar: next })
      await refused(bob.request('media.get', { mediaId: photoId }), 'media_not_found')
      // Replaced: swept as an unsent upload, a week after its upload.
      await t.node.media.sweep(Date.now() + 6 * DAY)
      assert.equal((await t.node.stores.media.get(photoId))?.status, 'ready', 'not before a week')
      await t.node.media.sweep(Date.now() + 8 * DAY)
      assert.equal(await t.node.stores.media.get(photoId), null, 'the replaced photo is gone')
      assert.equal((await t.node.stores.media.get(next))?.status, 'ready', 'the new one stays')
      await bob.request('media.get', { mediaId: next })

      await dave.request('profile.set', { avatar: null })
      await t.node.media.sweep(Date.now() + 8 * DAY)
      assert.equal(await t.node.stores.media.get(next), null, 'a cleared photo is gone too')
    })

    it('export includes the photo, and erase removes it', async () => {
      const fay = await device('fay')
      const bytes = await png(250, 200, 10)
      const id = await uploadPhoto(fay, bytes)
      await fay.request('profile.set', { avatar: id })
      const { url } = await fay.request<{ url: string }>('media.get', { mediaId: id })

      const { stores, blocks, objects, accounts } = t.node
      const deps: ExportDeps = {
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
      const chunks: Buffer[] = []
      const out = new Writable({
        write(chunk: Buffer, _enc, done) {
          chunks.push(chunk)
          done()
        },
      })
      const summary = await exportUser('fay', deps, out)
      assert.deepEqual([summary.chats, summary.media, summary.mediaFiles], [0, 1, 1])
      const entries = await unzip(Buffer.concat(chunks))
      const user = JSON.parse(entries.get('user.json')?.toString('utf8') ?? '{}') as ExportedUser
      assert.equal(user.profile?.avatar, id)
      assert.deepEqual(
        user.media.map((m) => m.id),
        [id],
      )
      const file = mediaPath({ id, contentType: 'image/png' })
      assert.deepEqual(entries.get(file), bytes)

      assert.equal((await accounts.erase('fay', { by: 'test-operator' })).status, 'erasing')
      assert.equal((await accounts.finished('fay'))?.status, 'erased')
      assert.equal(await stores.media.get(id), null)
      assert.equal(await statusOf(url), 404, 'the bytes are gone from the object store')
      assert.deepEqual(await stores.profiles.get(['fay']), [])
    })
  })
}

describe('profile photos without a chat through the client SDK', () => {
  let t: TestNode
  const clients: NatterClient[] = []
  before(async () => {
    t = await startTestNode()
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    await t?.close()
  })

  it('uploadMedia takes {purpose: "avatar"} without a chat; setProfile makes it the avatar', async () => {
    const gus = await createClient({
      url: t.mqttUrl,
      userId: 'gus',
      deviceId: 'phone',
      getToken: () => t.token('gus'),
    })
    clients.push(gus)
    assert.deepEqual(gus.chats(), [])
    const bytes = await png(10, 10, 10)
    const progress: number[] = []
    const up = await gus.uploadMedia(bytes, {
      purpose: 'avatar',
      contentType: 'image/png',
      name: 'gus.png',
      onProgress: (sent) => progress.push(sent),
    })
    assert.equal(up.uploaded, true)
    assert.equal(up.media.kind, 'image')
    assert.equal(progress.at(-1), bytes.length)
    const profile = await gus.setProfile({ avatar: up.mediaId })
    assert.equal(profile.avatar, up.mediaId)

    await assert.rejects(
      gus.uploadMedia(Buffer.from('%PDF-1.4\n'), { purpose: 'avatar', contentType: 'application/pdf' }),
      { code: 'unsupported_media_type' },
    )
    // The types ask for exactly one of chatId and purpose; a caller in plain JavaScript that
    // names both is refused by the server.
    await assert.rejects(
      // @ts-expect-error both a chat and a purpose
      gus.uploadMedia(bytes, { chatId: 'g_x', purpose: 'avatar', contentType: 'image/png' }),
      { code: 'bad_request' },
    )
    await assert.rejects(
      // @ts-expect-error neither a chat nor a purpose
      gus.uploadMedia(bytes, { contentType: 'image/png' }),
      { code: 'bad_request' },
    )
  })
})

describe('profile photos without a chat through the standalone media service (natter media)', () => {
  let t: TestNode
  let media: MediaServer
  before(async () => {
    t = await startTestNode()
    // On the node's own data directory: the same stores and object files.
    const { settings } = loadConfig({
      env: {
        ...localNodeEnv(t.dataDir, Buffer.from(t.secret).toString('utf8')),
        NATTER_LOG_LEVEL: process.env.NATTER_TEST_LOG_LEVEL ?? 'silent',
      },
    })
    media = await startMediaServer(settings, createLogger(settings.logLevel))
  })
  after(async () => {
    await media?.close()
    await t?.close()
  })

  const call = async (base: string, userId: string, op: string, params: Record<string, unknown>) => {
    const res = await fetch(`${base}/v1/${op}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await t.token(userId)}`, 'content-type': 'application/json' },
      body: JSON.stringify(params),
    })
    const body = (await res.json()) as { result?: unknown; error?: { code: string } }
    return { status: res.status, result: body.result, code: body.error?.code }
  }

  it('uploads a photo with no chat, and lets only chat partners of its owner download it', async () => {
    const service = `http://127.0.0.1:${media.port}`
    const bytes = await png(120, 60, 200)
    const params = { purpose: 'avatar', sha256: sha(bytes), size: bytes.length, contentType: 'image/png' }
    const pdf = await call(service, 'kim', 'media.begin', { ...params, contentType: 'application/pdf' })
    assert.deepEqual([pdf.status, pdf.code], [415, 'unsupported_media_type'])
    const begun = (await call(service, 'kim', 'media.begin', params)).result as Begun
    assert.ok(begun.upload)
    const put = await fetch(begun.upload.url, { method: 'PUT', headers: begun.upload.headers, body: bytes })
    assert.equal(put.status, 200, await put.text())
    assert.equal((await call(service, 'kim', 'media.complete', { mediaId: begun.mediaId })).status, 200)
    assert.equal((await call(t.httpUrl, 'kim', 'profile.set', { avatar: begun.mediaId })).status, 200)

    assert.equal(
      (await call(service, 'lee', 'media.get', { mediaId: begun.mediaId })).code,
      'media_not_found',
    )
    assert.equal((await call(t.httpUrl, 'kim', 'chat.direct', { with: 'lee' })).status, 200)
    const got = await call(service, 'lee', 'media.get', { mediaId: begun.mediaId })
    assert.equal(got.status, 200)
    const download = await fetch((got.result as { url: string }).url)
    assert.deepEqual(Buffer.from(await download.arrayBuffer()), bytes)
    assert.equal(
      (await call(service, 'max', 'media.get', { mediaId: begun.mediaId })).code,
      'media_not_found',
    )
  })
})
