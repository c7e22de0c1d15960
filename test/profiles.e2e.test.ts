import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import sharp from 'sharp'
import { createClient, type NatterClient, type Profile } from '../client-sdk/src/index.ts'
import { Device, type InboxEvent } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const DAY = 24 * 3600_000
const profileEvents = (d: Device, userId?: string) =>
  d.inbox.filter((e) => e.type === 'profile' && (userId === undefined || e.userId === userId)) as Array<
    InboxEvent & { displayName: string | null; avatar: string | null; updatedAt: number }
  >

async function refused(work: Promise<unknown>, code: string): Promise<string> {
  const err = (await work.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  )) as { code: string; message: string }
  assert.equal(err.code, code, err.message)
  return err.message
}

/** Uploads bytes through media.begin, a PUT to the signed URL and media.complete; the mediaId. */
async function upload(d: Device, chatId: string, bytes: Buffer, contentType: string): Promise<string> {
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  const begun = await d.request<{
    mediaId: string
    status: string
    upload?: { url: string; headers: Record<string, string> }
  }>('media.begin', { chatId, sha256, size: bytes.length, contentType })
  if (begun.upload) {
    const put = await fetch(begun.upload.url, { method: 'PUT', headers: begun.upload.headers, body: bytes })
    await put.arrayBuffer()
    assert.equal(put.status, 200)
  }
  await d.request('media.complete', { mediaId: begun.mediaId })
  return begun.mediaId
}

for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`profiles end to end on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let alicePhone: Device
    let aliceLaptop: Device
    let bob: Device
    let carol: Device
    let direct: string
    let carolsChat: string

    before(async () => {
      if (backend === 'SQLite') t = await startTestNode()
      else {
        ferret = await startFerretDb()
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri })
      }
      alicePhone = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      aliceLaptop = await Device.connect(t.wsUrl, 'alice', 'laptop', await t.token('alice'))
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
      carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
      direct = (await alicePhone.request<{ id: string }>('chat.direct', { with: 'bob' })).id
      // Carol shares no chat with Alice or Bob: a stranger to them.
      carolsChat = (await carol.request<{ id: string }>('chat.create', { name: 'Solo', members: [] })).id
    })
    after(async () => {
      for (const d of [alicePhone, aliceLaptop, bob, carol]) await d?.close().catch(() => {})
      await t?.close()
      await ferret?.stop()
    })

    it('a display name reaches chat partners and the user’s other devices, not strangers', async () => {
      const { profile } = await alicePhone.request<{ profile: Record<string, unknown> }>('profile.set', {
        displayName: '  Alice Liddell ',
      })
      assert.equal(profile.displayName, 'Alice Liddell', 'trimmed')
      assert.equal(profile.avatar, null)
      for (const d of [bob, aliceLaptop, alicePhone]) {
        await d.until(() => profileEvents(d, 'alice').length === 1, 'alice’s profile event')
        const [e] = profileEvents(d, 'alice')
        assert.deepEqual(
          { type: e?.type, displayName: e?.displayName, avatar: e?.avatar, updatedAt: e?.updatedAt },
          { type: 'profile', displayName: 'Alice Liddell', avatar: null, updatedAt: profile.updatedAt },
        )
      }
      // Carol's own change reaches her after anything sent to her before it: Alice's is not there.
      await carol.request('profile.set', { displayName: 'Carol' })
      await carol.until(() => profileEvents(carol, 'carol').length === 1, 'carol’s own profile event')
      assert.deepEqual(profileEvents(carol, 'alice'), [])
      assert.deepEqual(profileEvents(bob, 'carol'), [])
    })

    it('profile.get answers chat partners and oneself, and every other id alike as not found', async () => {
      const got = await bob.request<{ profiles: Array<Record<string, unknown>>; notFound: string[] }>(
        'profile.get',
        { userIds: ['alice', 'carol', 'nobody', 'bob', 'alice'] },
      )
      assert.deepEqual(
        got.profiles.map((p) => [p.userId, p.displayName]),
        [
          ['alice', 'Alice Liddell'],
          ['bob', null],
        ],
      )
      assert.equal(got.profiles[1]?.updatedAt, null, 'bob never set one')
      assert.deepEqual(got.notFound, ['carol', 'nobody'], 'an existing stranger looks like no user at all')
      const byCarol = await carol.request<{ profiles: unknown[]; notFound: string[] }>('profile.get', {
        userIds: ['alice'],
      })
      assert.deepEqual(byCarol, { profiles: [], notFound: ['alice'] })
      // Over HTTP the same.
      const res = await fetch(`${t.httpUrl}/v1/profile.get`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token('carol')}` },
        body: JSON.stringify({ userIds: ['carol', 'bob'] }),
      })
      const body = (await res.json()) as {
        result: { profiles: Array<{ userId: string }>; notFound: string[] }
      }
      assert.deepEqual(
        body.result.profiles.map((p) => p.userId),
        ['carol'],
      )
      assert.deepEqual(body.result.notFound, ['bob'])
    })

    it('refuses names that are blank, too long, or hide characters, and changes nothing', async () => {
      for (const displayName of [
        '',
        '   ',
        'a'.repeat(65),
        'evil\u202Egpj.exe',
        'ze\u200Bro',
        'bell\u0007',
      ]) {
        await refused(alicePhone.request('profile.set', { displayName }), 'bad_request')
      }
      assert.match(
        await refused(alicePhone.request('profile.set', {}), 'bad_request'),
        /displayName or avatar/,
      )
      await refused(alicePhone.request('profile.set', { displayName: 'x', extra: 1 }), 'bad_request')
      // 64 characters, some of several code points, are fine.
      const long = `${'👩‍👩‍👧'.repeat(4)}${'é'.repeat(60)}`
      await bob.request('profile.set', { displayName: long })
      const [alice] = (
        await bob.request<{ profiles: Array<{ displayName: string }> }>('profile.get', {
          userIds: ['alice'],
        })
      ).profiles
      assert.equal(alice?.displayName, 'Alice Liddell')
    })

    it('an avatar is an image the user uploaded; chat partners may download it, strangers not', async () => {
      const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c33' } })
        .png()
        .toBuffer()
      const avatar = await upload(alicePhone, direct, png, 'image/png')
      const pdf = Buffer.from('%PDF-1.4\n% not much of a document\n')
      const notImage = await upload(alicePhone, direct, pdf, 'application/pdf')
      const bobsImage = await upload(bob, direct, await sharp(png).rotate(90).png().toBuffer(), 'image/png')
      const carolsImage = await upload(carol, carolsChat, png, 'image/png')

      await refused(alicePhone.request('profile.set', { avatar: bobsImage }), 'media_not_found')
      await refused(alicePhone.request('profile.set', { avatar: 'm_nothing' }), 'media_not_found')
      await refused(alicePhone.request('profile.set', { avatar: notImage }), 'unsupported_media_type')
      // Uploaded but not sent: only Alice may read it so far.
      await refused(bob.request('media.get', { mediaId: avatar }), 'media_not_found')

      const before = profileEvents(bob, 'alice').length
      await alicePhone.request('profile.set', { avatar })
      await bob.until(() => profileEvents(bob, 'alice').length === before + 1, 'the avatar event')
      const e = profileEvents(bob, 'alice').at(-1)
      assert.equal(e?.avatar, avatar)
      assert.equal(e?.displayName, 'Alice Liddell', 'a partial update keeps the name')

      const urls = await bob.request<{ url: string; thumbnailUrl: string }>('media.get', { mediaId: avatar })
      const download = await fetch(urls.url)
      assert.deepEqual(Buffer.from(await download.arrayBuffer()), png)
      await refused(carol.request('media.get', { mediaId: avatar }), 'media_not_found')

      // The sweep keeps an avatar that no message sent, long after an unsent upload would go.
      const removed = await t.node.media.sweep(Date.now() + 30 * DAY)
      assert.ok(removed >= 1, 'unsent uploads are swept')
      await bob.request('media.get', { mediaId: avatar })
      await refused(carol.request('media.get', { mediaId: carolsImage }), 'media_not_found')
      await refused(alicePhone.request('media.get', { mediaId: notImage }), 'media_not_found')

      // null clears the avatar, and the download right goes with it.
      await alicePhone.request('profile.set', { avatar: null })
      await bob.until(() => profileEvents(bob, 'alice').at(-1)?.avatar === null, 'the cleared avatar')
      await refused(bob.request('media.get', { mediaId: avatar }), 'media_not_found')
    })
  })
}

describe('profiles through the client SDK', () => {
  let t: TestNode
  const clients: NatterClient[] = []
  const client = async (userId: string) => {
    const c = await createClient({
      url: t.mqttUrl,
      userId,
      deviceId: 'phone',
      getToken: () => t.token(userId),
    })
    clients.push(c)
    return c
  }
  before(async () => {
    t = await startTestNode()
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    await t?.close()
  })

  it('setProfile, getProfiles and the profile event', async () => {
    const alice = await client('alice')
    const bob = await client('bob')
    const chat = await alice.direct('bob')
    await bob.open(chat.id)
    const heard = new Promise<Profile>((resolve) => {
      const off = bob.on('profile', (p) => {
        off()
        resolve(p)
      })
    })
    const mine = await alice.setProfile({ displayName: 'Alice' })
    assert.equal(mine.displayName, 'Alice')
    assert.deepEqual(await heard, {
      userId: 'alice',
      displayName: 'Alice',
      avatar: null,
      updatedAt: mine.updatedAt,
    })
    // The event is not a chat message: the timeline holds the chat's one event only.
    assert.deepEqual(
      bob.messages(chat.id).map((m) => m.seq),
      [1],
    )
    assert.deepEqual(await bob.getProfiles(['alice', 'zed']), {
      profiles: [{ userId: 'alice', displayName: 'Alice', avatar: null, updatedAt: mine.updatedAt }],
      notFound: ['zed'],
    })
    await assert.rejects(alice.setProfile({ displayName: '\u202Eevil' }), { code: 'bad_request' })
  })
})
