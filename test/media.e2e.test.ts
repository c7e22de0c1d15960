import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import sharp from 'sharp'
import {
  connect,
  mediaUrl,
  type NatterConnection,
  type NatterRequestError,
  request,
  uploadMedia,
} from '../client-sdk/src/index.ts'
import { nextMessage } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { type S3Server, s3Env, startVersitygw } from './helpers/versitygw.ts'

const DAY = 24 * 3600_000
/** The status of a GET, its body read to the end (undici trips over a body left unread when the server closes). */
async function statusOf(url: string): Promise<number> {
  const res = await fetch(url)
  await res.arrayBuffer()
  return res.status
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')
const code = (expected: string) => (err: NatterRequestError) => {
  assert.equal(err.code, expected, err.message)
  return true
}

/** A photo-like PNG: a gradient, so that it compresses like a picture and not like a flat colour. */
async function photo(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      raw[i] = (x * 255) / width
      raw[i + 1] = (y * 255) / height
      raw[i + 2] = 128
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer()
}

for (const store of ['disk', 'S3 (versitygw)'] as const) {
  describe(`media end to end on ${store}`, () => {
    let s3: S3Server | undefined
    let t: TestNode
    let alice: NatterConnection
    let bob: NatterConnection
    let carol: NatterConnection
    let groupId: string
    let imageId: string
    let image: Buffer
    before(async () => {
      if (store !== 'disk') s3 = await startVersitygw()
      t = await startTestNode(
        s3
          ? {
              ...s3Env(s3),
              // Clients reach the S3 server by another name than Natter does, as in docker compose.
              NATTER_S3_PUBLIC_ENDPOINT: s3.endpoint.replace('127.0.0.1', 'localhost'),
            }
          : {},
      )
      const device = async (userId: string) =>
        connect({
          url: t.mqttUrl,
          userId,
          deviceId: 'phone',
          token: await t.token(userId),
          mqtt: { reconnectPeriod: 0 },
        })
      ;[alice, bob, carol] = await Promise.all([device('alice'), device('bob'), device('carol')])
      const group = await request<{ id: string }>(alice.client, alice.clientId, 'chat.create', {
        name: 'Holidays',
        members: ['bob'],
      })
      groupId = group.id
      image = await photo(800, 600)
    })
    after(async () => {
      await Promise.all([alice, bob, carol].map((c) => c?.close()))
      await t?.close()
      await s3?.stop()
    })

    it('Alice uploads an image and sends it in a group; Bob downloads it and its thumbnail; Carol cannot', async () => {
      const up = await uploadMedia(alice, image, {
        chatId: groupId,
        contentType: 'image/png',
        name: 'beach.png',
      })
      assert.equal(up.uploaded, true)
      assert.equal(up.media.kind, 'image')
      assert.equal(up.media.width, 800)
      assert.equal(up.media.height, 600)
      assert.equal(up.media.sha256, sha(image))
      imageId = up.mediaId

      const delivered = nextMessage(bob.client, 'u/bob/inbox')
      await alice.client.publishAsync(
        `c/${groupId}/send`,
        JSON.stringify({ clientMsgId: 'photo-1', text: 'the beach', media: [imageId] }),
        { qos: 1 },
      )
      const event = JSON.parse((await delivered).payload.toString())
      assert.deepEqual(event.media, [imageId])

      const urls = await mediaUrl(bob, imageId)
      assert.equal(urls.media.name, 'beach.png')
      assert.equal(new URL(urls.url).hostname, 'localhost', 'links use the public endpoint')
      const download = await fetch(urls.url)
      assert.equal(download.status, 200)
      assert.equal(download.headers.get('content-type'), 'image/png')
      assert.deepEqual(Buffer.from(await download.arrayBuffer()), image)
      assert.ok(urls.thumbnailUrl)
      const thumb = await fetch(urls.thumbnailUrl)
      assert.equal(thumb.status, 200)
      const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata()
      assert.equal(meta.format, 'webp')
      assert.deepEqual([meta.width, meta.height], [320, 240])

      // Carol is in no chat the image was sent in: the same answer as for media that does not exist.
      await assert.rejects(mediaUrl(carol, imageId), code('media_not_found'))
      await assert.rejects(mediaUrl(carol, 'm_nosuchmedia'), code('media_not_found'))
      const viaHttp = await fetch(`${t.httpUrl}/v1/media.get`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token('carol')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ mediaId: imageId }),
      })
      assert.equal(viaHttp.status, 404)
      assert.equal(((await viaHttp.json()) as { error: { code: string } }).error.code, 'media_not_found')

      // Nor can she pass it on in a chat of her own.
      const direct = await request<{ id: string }>(carol.client, carol.clientId, 'chat.direct', {
        with: 'bob',
      })
      const refusal = nextMessage(carol.client, 'd/carol/phone/err')
      await carol.client.publishAsync(
        `c/${direct.id}/send`,
        JSON.stringify({ clientMsgId: 'steal-1', media: [imageId] }),
        { qos: 1 },
      )
      const notice = JSON.parse((await refusal).payload.toString())
      assert.equal(notice.code, 'media_not_found')
      assert.equal(notice.ref, 'steal-1')
      const history = await request<{ messages: { clientMsgId: string }[] }>(
        carol.client,
        carol.clientId,
        'history',
        {
          chatId: direct.id,
        },
      )
      assert.ok(!history.messages.some((m) => m.clientMsgId === 'steal-1'))

      // Bob, a member, may forward it to Carol; then she can download it.
      await bob.client.publishAsync(
        `c/${direct.id}/send`,
        JSON.stringify({ clientMsgId: 'fwd-1', media: [imageId] }),
        { qos: 1 },
      )
      assert.equal((await mediaUrl(carol, imageId)).media.id, imageId)
    })

    it('gives the same media id for the same bytes again, without a second upload', async () => {
      const again = await uploadMedia(alice, image, { chatId: groupId, contentType: 'image/png' })
      assert.equal(again.uploaded, false)
      assert.equal(again.mediaId, imageId)
      const begun = await request<Record<string, unknown>>(alice.client, alice.clientId, 'media.begin', {
        chatId: groupId,
        sha256: sha(image).toUpperCase(),
        size: image.length,
        contentType: 'image/png',
      })
      assert.equal(begun.status, 'ready')
      assert.equal(begun.mediaId, imageId)
      assert.equal(begun.upload, undefined, 'no upload URL: nothing to PUT')
      const metrics = (await (await fetch(`${t.httpUrl}/metrics`)).text())
        .split('\n')
        .filter((l) => l.startsWith('natter_media_'))
        .join('\n')
      assert.match(metrics, /natter_media_uploads_total\{kind="image",result="duplicate"\} 2/)
      assert.match(metrics, new RegExp(`natter_media_bytes_total\\{kind="image"\\} ${image.length}\\b`))
    })

    it('never accepts bytes that do not match their declared SHA-256', async () => {
      const declared = randomBytes(4096)
      const begun = await request<{
        mediaId: string
        upload: { url: string; headers: Record<string, string> }
      }>(alice.client, alice.clientId, 'media.begin', {
        chatId: groupId,
        sha256: sha(declared),
        size: declared.length,
        contentType: 'application/pdf',
      })
      const other = randomBytes(4096)
      const put = await fetch(begun.upload.url, { method: 'PUT', headers: begun.upload.headers, body: other })
      await put.arrayBuffer()
      assert.ok(put.status >= 400 && put.status < 500, `PUT of other bytes: ${put.status}`)
      await assert.rejects(
        request(alice.client, alice.clientId, 'media.complete', { mediaId: begun.mediaId }),
        code('upload_incomplete'),
      )
      await assert.rejects(mediaUrl(alice, begun.mediaId), code('media_not_found'))
      const refusal = nextMessage(alice.client, 'd/alice/phone/err')
      await alice.client.publishAsync(
        `c/${groupId}/send`,
        JSON.stringify({ clientMsgId: 'bad-1', media: [begun.mediaId] }),
        { qos: 1 },
      )
      assert.equal(JSON.parse((await refusal).payload.toString()).code, 'media_not_found')

      // An "image" whose bytes are no image is refused at completion, and nothing stays.
      const fake = randomBytes(2048)
      await assert.rejects(
        uploadMedia(alice, fake, { chatId: groupId, contentType: 'image/jpeg' }),
        code('invalid_image'),
      )
      const retry = await request<{ status: string }>(alice.client, alice.clientId, 'media.begin', {
        chatId: groupId,
        sha256: sha(fake),
        size: fake.length,
        contentType: 'image/jpeg',
      })
      assert.equal(retry.status, 'upload', 'the refused bytes are gone: a new upload is needed')
    })

    it('uploads the same bytes under another type beside a pending upload of them, and both together', async () => {
      const bytes = Buffer.from(`notes ${randomBytes(6).toString('hex')}\n`)
      const begin = (contentType: string, name: string) =>
        request<{ mediaId: string; status: string }>(alice.client, alice.clientId, 'media.begin', {
          chatId: groupId,
          sha256: sha(bytes),
          size: bytes.length,
          contentType,
          name,
        })
      // A text upload begun and abandoned (cancelled before its PUT) stays pending…
      const abandoned = await begin('text/plain', 'notes.txt')
      assert.equal(abandoned.status, 'upload')
      // …and blocks neither the same bytes as an image nor, begun again as text, itself.
      const asImage = await begin('image/jpeg', 'fake.jpg')
      assert.equal(asImage.status, 'upload')
      assert.notEqual(asImage.mediaId, abandoned.mediaId, 'another type is a record of its own')
      const again = await begin('text/plain', 'notes again.txt')
      assert.equal(again.mediaId, abandoned.mediaId, 'the same type continues the pending upload')

      // Both picked at once: each is uploaded and checked on its own.
      const [text, image] = await Promise.allSettled([
        uploadMedia(alice, bytes, { chatId: groupId, contentType: 'text/plain', name: 'notes.txt' }),
        uploadMedia(alice, bytes, { chatId: groupId, contentType: 'image/jpeg', name: 'fake.jpg' }),
      ])
      assert.equal(text.status, 'fulfilled', text.status === 'rejected' ? String(text.reason) : '')
      assert.equal(text.value.mediaId, abandoned.mediaId)
      assert.equal(image.status, 'rejected')
      assert.equal((image.reason as NatterRequestError).code, 'invalid_image', 'not a JPEG: refused as one')

      // Completed media is still de-duplicated by bytes and type.
      const dup = await begin('text/plain', 'copy.txt')
      assert.deepEqual([dup.status, dup.mediaId], ['ready', abandoned.mediaId])
    })

    it('serves a file as a download with its name', async () => {
      const pdf = Buffer.from('%PDF-1.4\n% a tiny test document\n')
      const up = await uploadMedia(alice, pdf, {
        chatId: groupId,
        contentType: 'application/pdf',
        name: 'plan é.pdf',
      })
      await alice.client.publishAsync(
        `c/${groupId}/send`,
        JSON.stringify({ clientMsgId: 'pdf-1', media: [up.mediaId] }),
        {
          qos: 1,
        },
      )
      const res = await fetch((await mediaUrl(bob, up.mediaId)).url)
      assert.equal(res.status, 200)
      assert.equal(
        res.headers.get('content-disposition'),
        `attachment; filename="plan _.pdf"; filename*=UTF-8''plan%20%C3%A9.pdf`,
      )
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), pdf)
    })

    it('answers limits, content types and bad params with clear HTTP errors', async () => {
      const token = await t.token('alice')
      const begin = async (params: Record<string, unknown>) => {
        const res = await fetch(`${t.httpUrl}/v1/media.begin`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            chatId: groupId,
            sha256: sha(Buffer.from('x')),
            size: 10,
            contentType: 'image/png',
            ...params,
          }),
        })
        const body = (await res.json()) as { error?: { code: string; message: string } }
        return { status: res.status, code: body.error?.code, message: body.error?.message ?? '' }
      }
      const tooBig = await begin({ size: 17 * 1024 * 1024 })
      assert.deepEqual([tooBig.status, tooBig.code], [413, 'too_large'])
      assert.match(tooBig.message, /image uploads are limited to 16777216 bytes/)
      const html = await begin({ contentType: 'text/html' })
      assert.deepEqual([html.status, html.code], [415, 'unsupported_media_type'])
      assert.match(html.message, /image\/jpeg/)
      const svg = await begin({ contentType: 'image/svg+xml' })
      assert.equal(svg.code, 'unsupported_media_type')
      const badSha = await begin({ sha256: 'abc' })
      assert.deepEqual([badSha.status, badSha.code], [400, 'bad_request'])
      assert.match(badSha.message, /sha256.*64 hex digits/)
      const stranger = await begin({ chatId: 'g_notmine' })
      assert.deepEqual([stranger.status, stranger.code], [404, 'chat_not_found'])
      const badName = await begin({ name: '../etc/passwd' })
      assert.equal(badName.code, 'bad_request')
    })

    it('leaves nothing visible of a half-finished upload, and sweeps it after its deadline', async () => {
      const bytes = randomBytes(1000)
      const begun = await request<{ mediaId: string }>(alice.client, alice.clientId, 'media.begin', {
        chatId: groupId,
        sha256: sha(bytes),
        size: bytes.length,
        contentType: 'audio/ogg',
        durationMs: 3200,
      })
      await assert.rejects(mediaUrl(alice, begun.mediaId), code('media_not_found'))
      await assert.rejects(
        request(alice.client, alice.clientId, 'media.complete', { mediaId: begun.mediaId }),
        code('upload_incomplete'),
      )
      assert.equal((await t.node.stores.media.get(begun.mediaId))?.status, 'pending')
      assert.ok((await t.node.media.sweep(Date.now() + 3 * 3600_000)) >= 1)
      assert.equal(await t.node.stores.media.get(begun.mediaId), null)
    })

    it('deletes media once the messages that sent it are past retention', async () => {
      const urls = await mediaUrl(bob, imageId)
      assert.equal(await statusOf(urls.url), 200)
      // Within retention (30 days) the image stays.
      await t.node.media.sweep(Date.now() + 20 * DAY)
      assert.equal(await statusOf(urls.url), 200)
      await t.node.media.sweep(Date.now() + 32 * DAY)
      assert.equal(await t.node.stores.media.get(imageId), null)
      assert.equal(await statusOf(urls.url), 404)
      assert.ok(urls.thumbnailUrl)
      assert.equal(await statusOf(urls.thumbnailUrl), 404)
      await assert.rejects(mediaUrl(bob, imageId), code('media_not_found'))
    })
  })
}
