import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import sharp from 'sharp'
import {
  type ChatMessage,
  MemoryMlsStorage,
  type NatterClient,
  NatterRequestError,
} from '../client-sdk/src/index.ts'
import { decryptMedia, type EncryptedMedia } from '../client-sdk/src/mls/encrypted-media.ts'
import { FileMlsStorage } from '../client-sdk/src/mls/file-storage.ts'
import type { MlsStorage } from '../client-sdk/src/mls/storage.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { MlsDevices, whenFound } from './helpers/sdk-mls-clients.ts'
import { type S3Server, s3Env, startVersitygw } from './helpers/versitygw.ts'

/**
 * Media and search in encrypted chats (docs/e2ee.md, "Media" and "Search"), with real SDK clients
 * on a real node, on both stores: SQLite with media on disk, and MongoDB (FerretDB) with media in
 * S3 (versitygw). Every member device decrypts what was sent to the original bytes; the store
 * files, the media directory and the bucket hold no plaintext, no file name and no key.
 */

/** Every file under a directory, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

/** Resolves with the message of `c` in `chatId` that carries encrypted media `mediaId` (now, or once it arrives). */
const withMedia = (c: NatterClient, chatId: string, mediaId: string, ms = 30_000): Promise<ChatMessage> =>
  whenFound(
    c,
    'message.new',
    () => c.messages(chatId).find((m) => m.encryptedMedia?.some((d) => d.id === mediaId)),
    ms,
    () => `${c.clientId}: no message with media ${mediaId} in ${chatId}`,
  )

/** Resolves once `c` holds a message of `chatId` with this text. */
async function holdsText(c: NatterClient, chatId: string, text: string, ms = 30_000): Promise<void> {
  await whenFound(
    c,
    'message.new',
    () => c.messages(chatId).some((m) => m.text === text) || undefined,
    ms,
    () => `${c.clientId}: "${text}" never came in ${chatId}`,
  )
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof NatterRequestError, `a NatterRequestError, not ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (message) assert.match(err.message, message)
    return true
  })
}

for (const backend of ['SQLite', 'MongoDB (FerretDB) and S3 (versitygw)'] as const) {
  describe(`encrypted media and search on the device, ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let s3: S3Server | undefined
    let alice: NatterClient
    let bobPhone: NatterClient
    let bobTablet: NatterClient
    let carol: NatterClient
    let chatId: string
    // What must never reach the server: filled as the test sends.
    const secrets: { what: string; bytes: Buffer }[] = []
    const keep = (what: string, bytes: Buffer | string) =>
      secrets.push({ what, bytes: typeof bytes === 'string' ? Buffer.from(bytes) : bytes })

    let keysDir: string
    // Bob's tablet keeps its keys in files, as a Node app would; the others in memory.
    const mls = new MlsDevices((userId, deviceId) =>
      userId === 'bob' && deviceId === 'tablet'
        ? new FileMlsStorage(keysDir, userId, deviceId)
        : new MemoryMlsStorage(),
    )
    const { storages } = mls

    /** A device with its MLS storage kept across its clients, like a disk. */
    const device = (userId: string, deviceId: string) => mls.connect(t, userId, deviceId)

    /** The files an operator holds: the node's data directory, and the database's and bucket's when apart. */
    const storeFiles = () => [t.dataDir, ferret?.dataDir, s3?.dir].flatMap((d) => (d ? filesUnder(d) : []))

    before(async () => {
      keysDir = mkdtempSync(join(tmpdir(), 'natter-mls-media-keys-'))
      if (backend === 'SQLite') t = await startTestNode()
      else {
        ;[ferret, s3] = await Promise.all([startFerretDb(), startVersitygw()])
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri, ...s3Env(s3) })
      }
      alice = await device('alice', 'phone')
      bobPhone = await device('bob', 'phone')
      bobTablet = await device('bob', 'tablet')
      carol = await device('carol', 'phone')
      chatId = (await alice.createGroup('holiday', ['bob', 'carol'], { encrypted: true })).id
      await Promise.all([bobPhone, bobTablet, carol].map((c) => c.whenEncryptionReady(chatId)))
    })
    after(async () => {
      await mls.closeAll()
      await t?.close()
      await ferret?.stop()
      await s3?.stop()
      rmSync(keysDir, { recursive: true, force: true })
    })

    let image: { bytes: Buffer; name: string; media: EncryptedMedia }
    let file: { bytes: Buffer; name: string; media: EncryptedMedia }

    it('an image and a file go encrypted; every member device decrypts them to the original bytes', async () => {
      // A picture of noise: its bytes do not repeat anywhere by chance.
      const png = await sharp(randomBytes(64 * 48 * 3), { raw: { width: 64, height: 48, channels: 3 } })
        .png()
        .toBuffer()
      const imageName = `beach-${randomBytes(4).toString('hex')}.png`
      const up = await alice.uploadMedia(png, {
        chatId,
        contentType: 'image/png',
        name: imageName,
        width: 64,
        height: 48,
      })
      assert.ok(up.encrypted, 'an encrypted chat gives the descriptor')
      // The server holds ciphertext: no type, name or dimensions of the file, no thumbnail.
      assert.deepEqual(
        {
          kind: up.media.kind,
          contentType: up.media.contentType,
          name: up.media.name,
          width: up.media.width,
          size: up.media.size,
        },
        {
          kind: 'file',
          contentType: 'application/octet-stream',
          name: null,
          width: null,
          size: png.length + 16,
        },
      )
      assert.equal(up.media.sha256, up.encrypted.ciphertextSha256)
      const urls = await alice.mediaUrl(up.mediaId)
      assert.equal(urls.thumbnailUrl, null)
      await alice.send(chatId, { text: 'the beach', media: [up.mediaId] }).sent
      image = { bytes: png, name: imageName, media: up.encrypted }

      // Bob sends a file from his phone, with progress.
      const marker = `meet at the old lighthouse ${randomBytes(8).toString('hex')}`
      const text = Buffer.from(`${marker}\n`.repeat(200))
      const fileName = `plans-${randomBytes(4).toString('hex')}.txt`
      const progress: number[] = []
      const sent = await bobPhone.uploadMedia(text, {
        chatId,
        contentType: 'text/plain',
        name: fileName,
        onProgress: (s) => progress.push(s),
      })
      assert.deepEqual([progress[0], progress.at(-1)], [0, text.length + 16])
      assert.ok(sent.encrypted)
      await bobPhone.send(chatId, { media: [sent.encrypted] }).sent
      file = { bytes: text, name: fileName, media: sent.encrypted }

      for (const x of [image, file]) {
        keep(`the name ${x.name}`, x.name)
        keep(`the key of ${x.name} (base64)`, x.media.key)
        keep(`the key of ${x.name} (raw)`, Buffer.from(x.media.key, 'base64'))
        keep(`a run of ${x.name}'s bytes`, x.bytes.subarray(100, 132))
      }
      keep('the file text', marker)

      for (const c of [alice, bobPhone, bobTablet, carol]) {
        for (const x of [image, file]) {
          const m = await withMedia(c, chatId, x.media.id)
          const got = m.encryptedMedia?.find((d) => d.id === x.media.id) as EncryptedMedia
          assert.deepEqual(m.media, [x.media.id], 'the ids, as in a plaintext chat')
          assert.equal(got.name, x.name)
          assert.equal(got.size, x.bytes.length)
          const bytes = await c.downloadMedia(got)
          assert.ok(Buffer.from(bytes).equals(x.bytes), `${c.clientId} decrypts ${x.name}`)
        }
      }
      const seen = (await withMedia(carol, chatId, image.media.id)).encryptedMedia?.[0]
      assert.deepEqual(
        { kind: seen?.kind, contentType: seen?.contentType, width: seen?.width, height: seen?.height },
        { kind: 'image', contentType: 'image/png', width: 64, height: 48 },
      )
      assert.equal((await withMedia(carol, chatId, image.media.id)).text, 'the beach')
    })

    it('someone outside the chat gets no URL for it', async () => {
      const dave = await device('dave', 'phone')
      await rejectsWith(dave.downloadMedia(image.media), 'media_not_found')
    })

    it('refuses a name, a duration or a real content type in media.begin for an encrypted chat', async () => {
      const begin = (extra: Record<string, unknown>) =>
        alice.request('media.begin', {
          chatId,
          sha256: sha256(Buffer.from('x')),
          size: 1,
          contentType: 'application/octet-stream',
          ...extra,
        })
      await rejectsWith(begin({ name: 'holiday.txt' }), 'not_allowed', /must not learn file names/)
      await rejectsWith(begin({ durationMs: 1000 }), 'not_allowed', /durationMs/)
      await rejectsWith(
        begin({ contentType: 'image/png' }),
        'unsupported_media_type',
        /application\/octet-stream/,
      )
      // A plaintext chat is as before, and downloadMedia checks its media against the server's SHA-256.
      const plain = (await alice.createGroup('plain', ['bob'])).id
      const up = await alice.uploadMedia(Buffer.from('plain holiday notes'), {
        chatId: plain,
        contentType: 'text/plain',
        name: 'holiday.txt',
      })
      assert.equal(up.encrypted, undefined)
      assert.equal(up.media.name, 'holiday.txt')
      await alice.send(plain, { media: [up.mediaId] }).sent
      assert.equal(Buffer.from(await bobPhone.downloadMedia(up.mediaId)).toString(), 'plain holiday notes')
      await rejectsWith(alice.send(plain, { media: [image.media] }).sent, 'bad_request', /not encrypted/)
      await rejectsWith(alice.send(chatId, { media: ['m_unknown'] }).sent, 'bad_request', /no key/)
    })

    it('the store files, the media objects and the bucket hold no plaintext, file name or key', async () => {
      const files = storeFiles()
      const all = files.map((f) => ({ f, bytes: readFileSync(f) }))
      // The scan reads the media objects: the ciphertext is there.
      const ciphertexts = all.filter((x) => sha256(x.bytes) === image.media.ciphertextSha256)
      assert.ok(ciphertexts.length >= 1, 'the image ciphertext is among the files read')
      // And the catalog and the messages: the media ids are there, and a plaintext chat's file name.
      const read = (needle: string) => all.some((x) => x.bytes.includes(needle))
      assert.ok(read(image.media.id) && read(file.media.id), 'the media records are among the files read')
      assert.ok(read('holiday.txt'), 'a plaintext chat’s file name is found where it is')
      for (const { what, bytes } of secrets) {
        const where = all.filter((x) => x.bytes.includes(bytes)).map((x) => x.f)
        assert.deepEqual(where, [], `${what} is in ${where.join(', ')}`)
      }
    })

    it('a changed ciphertext or a wrong key gives media_corrupt', async () => {
      const up = await carol.uploadMedia(Buffer.from('a receipt for the boat'), {
        chatId,
        contentType: 'text/plain',
        name: 'receipt.txt',
      })
      const media = up.encrypted as EncryptedMedia
      await carol.send(chatId, { media: [up.mediaId] }).sent
      const m = await withMedia(alice, chatId, media.id)
      const seen = m.encryptedMedia?.[0] as EncryptedMedia
      assert.equal(Buffer.from(await alice.downloadMedia(seen)).toString(), 'a receipt for the boat')
      // What an attacker with the disk or the bucket does: one byte of the object flipped, same size.
      const [stored] = storeFiles().filter((f) => sha256(readFileSync(f)) === media.ciphertextSha256)
      assert.ok(stored, 'the object is a file of the store')
      const bytes = readFileSync(stored)
      bytes[5] = (bytes[5] as number) ^ 0xff
      writeFileSync(stored, bytes)
      await rejectsWith(alice.downloadMedia(seen), 'media_corrupt', /SHA-256/)
      // A descriptor whose hash matches but whose key is wrong: the AES-GCM tag fails.
      bytes[5] = (bytes[5] as number) ^ 0xff
      await rejectsWith(
        decryptMedia(new Uint8Array(bytes), { ...seen, key: randomBytes(32).toString('base64') }),
        'media_corrupt',
        /AES-GCM/,
      )
      // And a ciphertext changed along with its hash: the tag fails too.
      const changed = Buffer.from(bytes)
      changed[0] = (changed[0] as number) ^ 1
      await rejectsWith(
        decryptMedia(new Uint8Array(changed), { ...seen, ciphertextSha256: sha256(changed) }),
        'media_corrupt',
        /AES-GCM/,
      )
    })

    it('searches an encrypted chat on the device, by the server’s rules for plaintext chats', async () => {
      const texts = [
        'Straße nach München',
        '我家在上海东边。',
        'pineapple pie tonight',
        'pin the map',
        'İstanbul trip in May',
        "can't wait for the ΟΔΟΣ",
      ]
      const plain = (await alice.createGroup('plain twin', ['bob'])).id
      for (const text of texts) {
        await alice.send(chatId, { text }).sent
        await alice.send(plain, { text }).sent
      }
      await holdsText(bobTablet, chatId, texts.at(-1) as string)
      // Each query with what it finds: the device must find the same as the server in the twin chat.
      const queries: [string, number][] = [
        ['strasse', 1],
        ['MUNCH', 1],
        ['上海', 1],
        ['pin', 2],
        ['pin ', 1],
        ['istanbul may', 1],
        ['οδός', 1],
        ['CAN T', 1],
        ['nothing here', 0],
        ['!!', 0],
      ]
      for (const [q, n] of queries) {
        const onDevice = (await bobTablet.search(chatId, q)).map((m) => m.text)
        const onServer = (await bobPhone.search(plain, q)).map((m) => m.text)
        assert.deepEqual(onDevice, onServer, `"${q}": the device finds what the server finds`)
        assert.equal(onDevice.length, n, `"${q}" finds ${n}`)
      }
      assert.deepEqual(
        (await bobTablet.search(chatId, 'pin')).map((m) => m.text),
        ['pin the map', 'pineapple pie tonight'],
        'newest first, the last word a prefix',
      )
      const found = await bobTablet.search(chatId, 'lighth')
      assert.equal(found.length, 0, 'file contents are not searched, as on the server')
      const beach = await carol.search(chatId, 'beach')
      assert.deepEqual(
        beach.map((m) => [m.text, m.encrypted, m.type]),
        [['the beach', true, 'message']],
      )
      // A chat this device is not in: nothing to search there, as the server would answer.
      const other = (await alice.createGroup('without bob', ['carol'], { encrypted: true })).id
      await carol.whenEncryptionReady(other)
      await alice.send(other, { text: 'pineapple surprise for bob' }).sent
      await holdsText(carol, other, 'pineapple surprise for bob')
      assert.equal((await carol.search(other, 'surprise')).length, 1)
      await rejectsWith(bobTablet.search(other, 'surprise'), 'chat_not_found')
      assert.deepEqual(
        (await bobTablet.search(chatId, 'surprise')).map((m) => m.text),
        [],
        'a word from another chat is not found here',
      )
    })

    it('after a restart the device searches and downloads from what it kept, without decrypting again', async () => {
      await bobTablet.close()
      const again = await device('bob', 'tablet')
      assert.deepEqual(
        (await again.search(chatId, 'pineapple')).map((m) => m.text),
        ['pineapple pie tonight'],
      )
      const kept = await (storages.get('bob/tablet') as MlsStorage).loadMessages?.(chatId)
      const withFile = kept?.find((m) => m.encryptedMedia?.some((d) => d.id === file.media.id))
      assert.ok(withFile?.encryptedMedia?.[0], 'the message with its descriptor is kept on the device')
      const bytes = await again.downloadMedia(withFile.encryptedMedia[0])
      assert.ok(Buffer.from(bytes).equals(file.bytes))
    })
  })
}
