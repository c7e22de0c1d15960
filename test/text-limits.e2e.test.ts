import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { connect, mediaUrl, type NatterConnection, request, uploadMedia } from '../client-sdk/src/index.ts'
import { nextMessage } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'
import { type S3Server, s3Env, startVersitygw } from './helpers/versitygw.ts'

const FAMILY = '👨‍👩‍👧‍👦' // 7 code points, 11 UTF-16 units, 25 bytes: one character
const ZALGO = `a${'\u0301'.repeat(10_000)}` // one character of 10,001 code points

let counter = 0
const nextId = () => `t${++counter}`

/** POST /v1/<op> with a token: the status and the parsed body. */
async function http(t: TestNode, userId: string, op: string, params: unknown) {
  const res = await fetch(`${t.httpUrl}/v1/${op}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await t.token(userId)}`, 'content-type': 'application/json' },
    body: JSON.stringify(params),
  })
  return {
    status: res.status,
    body: (await res.json()) as { result?: unknown; error?: { code: string; message: string } },
  }
}

/** Sends over MQTT and resolves with the stored message's text, or the refusal notice. */
async function send(d: Device, chatId: string, payload: Record<string, unknown>) {
  const clientMsgId = (payload.clientMsgId as string | undefined) ?? nextId()
  const from = d.errors.length
  const seen = d.inbox.length
  await d.client.publishAsync(`c/${chatId}/send`, JSON.stringify({ clientMsgId, ...payload }), { qos: 1 })
  // The PUBACK came after the store and after any refusal notice was published; the notice or
  // the sender's own copy in its inbox follows on the same connection.
  await d.until(
    () =>
      d.errors.slice(from).some((e) => e.ref === clientMsgId) ||
      d.inbox.slice(seen).some((e) => e.clientMsgId === clientMsgId),
    `the outcome of ${clientMsgId}`,
  )
  const refused = d.errors.slice(from).find((e) => e.ref === clientMsgId)
  if (refused) return { refused }
  const stored = d.inbox.slice(seen).find((e) => e.clientMsgId === clientMsgId)
  return { stored }
}

describe('text limits count user-perceived characters, over MQTT and HTTP', () => {
  let t: TestNode
  let alice: Device
  let bob: Device
  let chatId: string
  before(async () => {
    t = await startTestNode()
    alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
    bob = await Device.connect(t.wsUrl, 'bob', 'web', await t.token('bob'))
    chatId = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
  })
  after(async () => {
    await Promise.all([alice?.close(), bob?.close()])
    await t?.close()
  })

  it('sends 2,001 and 4,000 emoji and 3,999 digits plus a family emoji: each is within 4,000 characters', async () => {
    for (const text of ['😀'.repeat(2001), '😀'.repeat(4000), `${'1'.repeat(3999)}${FAMILY}`]) {
      const clientMsgId = nextId()
      const { stored, refused } = await send(alice, chatId, { clientMsgId, text })
      assert.equal(refused, undefined, refused?.message)
      assert.equal(stored?.text, text)
      await bob.until(
        () => bob.messages(chatId).some((m) => m.clientMsgId === clientMsgId),
        `bob gets ${clientMsgId}`,
      )
      assert.equal(bob.messages(chatId).find((m) => m.clientMsgId === clientMsgId)?.text, text)
    }
  })

  it('refuses 4,001 characters with their count in characters, and stores nothing', async () => {
    for (const text of ['😀'.repeat(4001), `${'1'.repeat(4000)}${FAMILY}`, 'x'.repeat(4001)]) {
      const clientMsgId = nextId()
      const { refused } = await send(alice, chatId, { clientMsgId, text })
      assert.equal(refused?.code, 'too_large')
      assert.equal(refused?.message, 'text has 4001 characters; the limit is 4000')
      const stored = await t.node.stores.messages.after(chatId, 0, 1000)
      assert.ok(!stored.some((m) => m.clientMsgId === clientMsgId))
    }
  })

  it('POST /v1/send counts the same way', async () => {
    const ok = await http(t, 'alice', 'send', {
      chatId,
      clientMsgId: nextId(),
      text: `${'1'.repeat(3999)}${FAMILY}`,
    })
    assert.equal(ok.status, 200, ok.body.error?.message)
    const refused = await http(t, 'alice', 'send', { chatId, clientMsgId: nextId(), text: '😀'.repeat(4001) })
    assert.equal(refused.body.error?.code, 'too_large')
    assert.equal(refused.body.error?.message, 'text has 4001 characters; the limit is 4000')
  })

  it('refuses a character of 10,001 code points, and takes one of 32', async () => {
    const { refused } = await send(alice, chatId, { text: `hi ${ZALGO}` })
    assert.equal(refused?.code, 'too_large')
    assert.equal(
      refused?.message,
      'text has a character of 10001 code points (character 4); one character may have at most 32',
    )
    const fine = `e${'\u0301'.repeat(31)}`
    assert.equal((await send(alice, chatId, { text: fine })).stored?.text, fine)
  })

  it('edit counts the same way, over MQTT and HTTP', async () => {
    const { stored } = await send(alice, chatId, { text: 'to be edited' })
    const seq = stored?.seq as number
    for (const text of ['😀'.repeat(4000), `${'1'.repeat(3999)}${FAMILY}`, '😀'.repeat(2001)]) {
      const edited = await alice.request<{ message: { text: string } }>('edit', { chatId, seq, text })
      assert.equal(edited.message.text, text)
    }
    await assert.rejects(alice.request('edit', { chatId, seq, text: '😀'.repeat(4001) }), {
      code: 'too_large',
      message: 'text has 4001 characters; the limit is 4000',
    })
    await assert.rejects(alice.request('edit', { chatId, seq, text: ZALGO }), {
      code: 'too_large',
      message: 'text has a character of 10001 code points (character 1); one character may have at most 32',
    })
    const overHttp = await http(t, 'alice', 'edit', { chatId, seq, text: `${'1'.repeat(4000)}${FAMILY}` })
    assert.equal(overHttp.body.error?.code, 'too_large')
    assert.equal(overHttp.body.error?.message, 'text has 4001 characters; the limit is 4000')
    const ok = await http(t, 'alice', 'edit', { chatId, seq, text: `${'2'.repeat(3999)}${FAMILY}` })
    assert.equal(ok.status, 200)
    const [last] = await t.node.stores.messages.before(chatId, seq + 1, 1)
    assert.equal(last?.text, `${'2'.repeat(3999)}${FAMILY}`)
  })

  it('counts clientMsgId, request ids and the search query in characters too', async () => {
    const clientMsgId = '😀'.repeat(64)
    assert.equal(
      (await send(alice, chatId, { clientMsgId, text: 'emoji id' })).stored?.clientMsgId,
      clientMsgId,
    )
    const { refused } = await send(alice, chatId, { clientMsgId: '😀'.repeat(65), text: 'too long an id' })
    assert.equal(refused?.code, 'bad_request')
    assert.equal(refused?.message, 'clientMsgId: has 65 characters; the limit is 64')
    await assert.rejects(alice.request('search', { chatId, query: '😀'.repeat(201) }), {
      code: 'bad_request',
      message: 'params.query: has 201 characters; the limit is 200',
    })
    const found = await alice.request<{ messages: unknown[] }>('search', { chatId, query: '😀'.repeat(200) })
    assert.ok(Array.isArray(found.messages))
    const reply = nextMessage(alice.client, 'd/alice/phone/res')
    await alice.client.publishAsync('req/whoami', JSON.stringify({ id: '😀'.repeat(128) }), { qos: 1 })
    assert.equal(JSON.parse((await reply).payload.toString()).id, '😀'.repeat(128))
    const from = alice.errors.length
    await alice.client.publishAsync('req/whoami', JSON.stringify({ id: '😀'.repeat(129) }), { qos: 1 })
    await alice.until(() => alice.errors.length > from, 'the notice about a long request id')
    assert.equal(
      alice.errors[from]?.message,
      'request must be {"id": string, "params"?: object}: has 129 characters; the limit is 128',
    )
  })
})

describe('the text limit is a setting, in characters', () => {
  let t: TestNode
  let alice: Device
  before(async () => {
    t = await startTestNode({ NATTER_MAX_TEXT_CHARS: '2000' })
    alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
  })
  after(async () => {
    await alice?.close()
    await t?.close()
  })

  it('refuses 2,001 emoji at a limit of 2,000 with "2001 characters"', async () => {
    const chatId = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const { refused } = await send(alice, chatId, { text: '😀'.repeat(2001) })
    assert.equal(refused?.message, 'text has 2001 characters; the limit is 2000')
    assert.ok((await send(alice, chatId, { text: '😀'.repeat(2000) })).stored)
  })
})

describe('names people see, over MQTT and HTTP', () => {
  let t: TestNode
  let alice: Device
  before(async () => {
    t = await startTestNode()
    alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
  })
  after(async () => {
    await alice?.close()
    await t?.close()
  })

  it('chat.create refuses names that show as nothing or lie about themselves, and creates no chat', async () => {
    const before = (await alice.request<{ chats: unknown[] }>('chat.list')).chats.length
    const cases: Array<[string, string]> = [
      ['\u200b', 'params.name: U+200B ZERO WIDTH SPACE is an invisible format character'],
      ['\u3164', 'params.name: U+3164 HANGUL FILLER is a filler that shows as blank'],
      [
        '\u2800',
        'params.name: shows as blank: it has only invisible characters, such as U+2800 BRAILLE PATTERN BLANK',
      ],
      [
        '\u200d\u200d',
        'params.name: U+200D ZERO WIDTH JOINER is invisible; it is allowed only after a virama or between the parts of an emoji',
      ],
      [
        'admins\u202e',
        'params.name: U+202E RIGHT-TO-LEFT OVERRIDE is a bidirectional control: it makes text show in another order than it is stored',
      ],
      ['\u0007team', 'params.name: U+0007 is a control character'],
    ]
    for (const [name, message] of cases) {
      await assert.rejects(alice.request('chat.create', { name, members: ['bob'] }), {
        code: 'bad_request',
        message,
      })
      const overHttp = await http(t, 'alice', 'chat.create', { name, members: ['bob'] })
      assert.equal(overHttp.status, 400)
      assert.equal(overHttp.body.error?.message, message)
    }
    assert.equal((await alice.request<{ chats: unknown[] }>('chat.list')).chats.length, before)
  })

  it('chat.create takes emoji sequences and the joiners of Persian and Indic scripts, stored NFC and trimmed', async () => {
    for (const [name, stored] of [
      [`${FAMILY} family`, `${FAMILY} family`],
      ['می‌خواهم', 'می‌خواهم'],
      ['ශ්‍රී ලංකා', 'ශ්‍රී ලංකා'],
      ['  Zoe\u0308 ', 'Zoë'],
    ]) {
      const chat = await alice.request<{ id: string; name: string }>('chat.create', {
        name,
        members: ['bob'],
      })
      assert.equal(chat.name, stored)
      assert.equal((await alice.request<{ name: string }>('chat.get', { chatId: chat.id })).name, stored)
    }
  })

  it('media.begin refuses a file name with a right-to-left override', async () => {
    const chatId = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const params = {
      chatId,
      sha256: createHash('sha256').update('x').digest('hex'),
      size: 1,
      contentType: 'application/pdf',
      name: 'invoice\u202efdp.exe',
    }
    const message =
      'params.name: U+202E RIGHT-TO-LEFT OVERRIDE is a bidirectional control: it makes text show in another order than it is stored'
    await assert.rejects(alice.request('media.begin', params), { code: 'bad_request', message })
    assert.equal((await http(t, 'alice', 'media.begin', params)).body.error?.message, message)
    await assert.rejects(alice.request('media.begin', { ...params, name: 'a/b.pdf' }), {
      code: 'bad_request',
      message: 'params.name: a file name has no slashes',
    })
  })
})

for (const store of ['disk', 'S3 (versitygw)'] as const) {
  describe(`a file name stored before the name rules is served clean, on ${store}`, () => {
    let s3: S3Server | undefined
    let t: TestNode
    let alice: NatterConnection
    before(async () => {
      if (store !== 'disk') s3 = await startVersitygw()
      t = await startTestNode(s3 ? s3Env(s3) : {})
      alice = await connect({
        url: t.mqttUrl,
        userId: 'alice',
        deviceId: 'phone',
        token: await t.token('alice'),
        mqtt: { reconnectPeriod: 0 },
      })
    })
    after(async () => {
      await alice?.close()
      await t?.close()
      await s3?.stop()
    })

    it('Content-Disposition carries no bidirectional override, control or zero-width character', async () => {
      const chatId = (
        await request<{ id: string }>(alice.client, alice.clientId, 'chat.direct', { with: 'bob' })
      ).id
      const pdf = Buffer.from('%PDF-1.4\n% not an exe\n')
      const now = Date.now()
      // As an older version stored it, past today's checks: straight into the catalogue.
      const { record } = await t.node.stores.media.begin({
        id: 'm_legacyname',
        uploaderId: 'alice',
        sha256: createHash('sha256').update(pdf).digest('hex'),
        size: pdf.length,
        contentType: 'application/pdf',
        kind: 'file',
        name: 'invoice\u202efdp\u200b\u0007.exe',
        createdAt: now,
        expiresAt: now + 3600_000,
        durationMs: null,
      })
      // The same bytes from the same uploader continue that record (de-duplication by SHA-256).
      const up = await uploadMedia(alice, pdf, { chatId, contentType: 'application/pdf' })
      assert.equal(up.mediaId, record.id)
      const res = await fetch((await mediaUrl(alice, up.mediaId)).url)
      assert.equal(res.status, 200)
      assert.equal(
        res.headers.get('content-disposition'),
        `attachment; filename="invoicefdp.exe"; filename*=UTF-8''invoicefdp.exe`,
      )
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), pdf)
    })
  })
}
