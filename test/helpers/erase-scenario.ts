import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { connackCode, WAIT_MS } from './clients.ts'
import { Device } from './device.ts'

/** A node as a user sees it: its ports and tokens for it. */
export interface EraseTarget {
  mqttUrl: string
  httpUrl: string
  token(userId: string): Promise<string>
}

/** What a seeded user left in a node: everything an erase must remove, and what it must keep. */
export interface Seeded {
  ursula: string
  vera: string
  walt: string
  group: string
  direct: string
  /** Ursula's distinctive words, one in each of her messages. */
  words: string[]
  /** Vera's word: her message stays. */
  veraWord: string
  displayName: string
  deviceIds: string[]
  pushToken: string
  mediaIds: string[]
  /** The uploaded bytes (a PDF sent in the group, a PNG avatar). */
  mediaBytes: Buffer[]
  /** Ursula's two connected devices, and Vera's. */
  devices: Device[]
  veraDevice: Device
  messagesSent: number
}

type Answer = {
  status: number
  body: { result?: Record<string, unknown>; error?: { code: string; message: string } }
}

/** One operation over POST /v1/<op> with the user's token. */
export async function call(
  t: EraseTarget,
  userId: string,
  op: string,
  params: Record<string, unknown>,
): Promise<Answer> {
  const res = await fetch(`${t.httpUrl}/v1/${op}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await t.token(userId)}`, 'content-type': 'application/json' },
    body: JSON.stringify(params),
  })
  return { status: res.status, body: (await res.json()) as Answer['body'] }
}

async function ok(t: EraseTarget, userId: string, op: string, params: Record<string, unknown>) {
  const a = await call(t, userId, op, params)
  assert.equal(a.status, 200, `${op}: ${JSON.stringify(a.body)}`)
  return a.body.result as Record<string, unknown>
}

async function upload(t: EraseTarget, userId: string, chatId: string, bytes: Buffer, contentType: string) {
  const begun = await ok(t, userId, 'media.begin', {
    chatId,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
    contentType,
  })
  const up = begun.upload as { url: string; headers: Record<string, string> }
  const put = await fetch(up.url, { method: 'PUT', headers: up.headers, body: bytes })
  await put.arrayBuffer()
  assert.equal(put.status, 200)
  const mediaId = begun.mediaId as string
  await ok(t, userId, 'media.complete', { mediaId })
  return mediaId
}

/**
 * Ursula, with Vera and Walt: a group (Ursula its only admin) and a direct chat with Vera,
 * `perChat` messages of hers in each holding distinctive words, a PDF sent in the group, a PNG
 * avatar, a display name, a block on Walt, two connected devices (persistent sessions) and a
 * push registration. Vera says one thing in the group.
 */
export async function seedUser(t: EraseTarget, o: { perChat: number }): Promise<Seeded> {
  const tag = randomBytes(4).toString('hex')
  const [ursula, vera, walt] = [`ursula-${tag}`, `vera-${tag}`, `walt-${tag}`]
  const deviceIds = [`phonezq${tag}`, `laptopzq${tag}`]
  const words = [`quokkazq${tag}`, `marzipanzq${tag}`, `lanternzq${tag}`]
  const veraWord = `veronicazq${tag}`
  const devices = [
    await Device.connect(t.mqttUrl, ursula, deviceIds[0] as string, await t.token(ursula)),
    await Device.connect(t.mqttUrl, ursula, deviceIds[1] as string, await t.token(ursula)),
  ]
  const veraDevice = await Device.connect(t.mqttUrl, vera, 'tablet', await t.token(vera))
  const group = (await ok(t, ursula, 'chat.create', { name: 'Book club', members: [vera, walt] }))
    .id as string
  const direct = (await ok(t, ursula, 'chat.direct', { with: vera })).id as string
  const pdf = Buffer.concat([Buffer.from(`%PDF-1.4\n% pdfmarkerzq${tag}\n`), randomBytes(64)])
  const png = await sharp(randomBytes(12 * 12 * 3), { raw: { width: 12, height: 12, channels: 3 } })
    .png()
    .toBuffer()
  const pdfId = await upload(t, ursula, group, pdf, 'application/pdf')
  const pngId = await upload(t, ursula, group, png, 'image/png')
  const displayName = `Ursula Namezq${tag}`
  await ok(t, ursula, 'profile.set', { displayName, avatar: pngId })
  await ok(t, ursula, 'user.block', { userId: walt })
  const pushToken = `fcmtokenzq${tag}`
  await ok(t, ursula, 'push.register', { platform: 'fcm', token: pushToken, deviceId: deviceIds[0] })
  let sent = 0
  await ok(t, ursula, 'send', { chatId: group, clientMsgId: `pdf-${tag}`, text: words[0], media: [pdfId] })
  sent++
  for (const chatId of [group, direct]) {
    for (let from = 0; from < o.perChat; from += 50) {
      const n = Math.min(50, o.perChat - from)
      await Promise.all(
        Array.from({ length: n }, (_, k) =>
          ok(t, ursula, 'send', {
            chatId,
            clientMsgId: `${chatId}-${from + k}`,
            // Every fourth one long (~2.5 KB, her word throughout): long rows moved between pages
            // left fragments in the unused space of live pages after a crash mid-erase, until
            // the purge rebuilt the file.
            text:
              (from + k) % 4 === 3
                ? `${words[(from + k) % words.length]} note ${from + k} `.repeat(90).slice(0, 2500)
                : `${words[(from + k) % words.length]} note ${from + k}`,
          }),
        ),
      )
      sent += n
    }
  }
  // An edit leaves the old text in the search index and free pages until the purge.
  await ok(t, ursula, 'edit', { chatId: direct, seq: 2, text: `${words[2]} edited` })
  await ok(t, vera, 'send', { chatId: group, clientMsgId: `vera-${tag}`, text: `${veraWord} stays` })
  return {
    ursula,
    vera,
    walt,
    group,
    direct,
    words,
    veraWord,
    displayName,
    deviceIds,
    pushToken,
    mediaIds: [pdfId, pngId],
    mediaBytes: [pdf, png],
    devices,
    veraDevice,
    messagesSent: sent,
  }
}

/** Every file under dir, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...filesUnder(path))
    else out.push(path)
  }
  return out
}

/**
 * What an erase must leave, seen from outside: Ursula refused (CONNACK 5, HTTP 401), out of
 * both chats (Vera promoted), her messages tombstones with none of her words in history or
 * search while Vera's word is still found, her media gone (media.get, the object keys listed);
 * and with dataDir (SQLite), none of her words, device ids, push token, display name or media
 * bytes in the raw bytes of any file under it.
 */
export async function assertErased(
  t: EraseTarget,
  s: Seeded,
  o: { dataDir?: string; objectKeys?: () => Promise<string[]> } = {},
): Promise<void> {
  const clientId = `${s.ursula}/${s.deviceIds[0]}`
  assert.equal(await connackCode(t.mqttUrl, { clientId, password: await t.token(s.ursula) }), 5)
  const refused = await call(t, s.ursula, 'chat.list', {})
  assert.equal(refused.status, 401)
  assert.match(refused.body.error?.message ?? '', /account_erased/)

  for (const chatId of [s.group, s.direct]) {
    const chat = await ok(t, s.vera, 'chat.get', { chatId })
    const members = chat.members as Array<{ userId: string; role: string }>
    assert.ok(!members.some((m) => m.userId === s.ursula), 'ursula left the chat')
    const history = (await ok(t, s.vera, 'history', { chatId, limit: 100 })).messages as Array<
      Record<string, unknown>
    >
    const json = JSON.stringify(history)
    for (const needle of [...s.words, s.displayName, ...s.deviceIds, ...s.mediaIds])
      assert.ok(!json.includes(needle), `history of ${chatId} holds ${needle}`)
    const hers = history.filter((m) => m.senderId === s.ursula && m.kind === 'text')
    assert.ok(hers.length > 0)
    for (const m of hers) {
      assert.equal(m.text, null)
      assert.notEqual(m.deletedAt, null, 'a tombstone')
    }
    const removed = history.find(
      (m) => (m.event as Record<string, unknown> | undefined)?.type === 'member_removed',
    )
    assert.equal((removed?.event as Record<string, unknown>)?.userId, s.ursula)
    for (const word of s.words) {
      const found = (await ok(t, s.vera, 'search', { chatId, query: word, limit: 10 })).messages as unknown[]
      assert.deepEqual(found, [], `search finds ${word}`)
    }
  }
  const group = await ok(t, s.vera, 'chat.get', { chatId: s.group })
  assert.equal(
    (group.members as Array<{ userId: string; role: string }>).find((m) => m.userId === s.vera)?.role,
    'admin',
    'the longest-standing member took over as admin',
  )
  const found = (await ok(t, s.vera, 'search', { chatId: s.group, query: s.veraWord, limit: 10 }))
    .messages as unknown[]
  assert.equal(found.length, 1, 'another member’s message is still found')
  for (const mediaId of s.mediaIds) {
    const got = await call(t, s.vera, 'media.get', { mediaId })
    assert.equal(got.status, 404)
  }
  if (o.objectKeys) {
    const keys = await o.objectKeys()
    for (const mediaId of s.mediaIds)
      assert.ok(!keys.some((k) => k.includes(mediaId)), `object ${mediaId} still stored`)
  }
  if (o.dataDir) {
    const needles: Buffer[] = [
      ...s.words,
      s.displayName,
      ...s.deviceIds,
      s.pushToken,
      `pdfmarkerzq`,
      ...s.mediaIds,
    ].map((n) => Buffer.from(n))
    for (const bytes of s.mediaBytes) needles.push(Buffer.from(bytes))
    const files = filesUnder(o.dataDir)
    assert.ok(files.some((f) => f.endsWith('messages.db')))
    for (const file of files) {
      const bytes = readFileSync(file)
      for (const needle of needles)
        assert.ok(!bytes.includes(needle), `${file} holds ${needle.subarray(0, 40).toString('latin1')}`)
    }
  }
}

/**
 * Resolves when each of the devices' connections is closed. A socket error on the way (a cut
 * device that was writing) is not a failure: events.once, which closed() uses, would reject on it.
 */
export async function allClosed(devices: Device[], ms = WAIT_MS): Promise<void> {
  await Promise.all(
    devices.map(
      (d) =>
        new Promise<void>((resolve, reject) => {
          if (!d.client.connected) return resolve()
          const timer = setTimeout(() => reject(new Error(`${d.userId}/${d.deviceId} still connected`)), ms)
          d.client.once('close', () => {
            clearTimeout(timer)
            resolve()
          })
        }),
    ),
  )
}
