import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createClient, type NatterClient, NatterRequestError } from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/**
 * uploadMedia's progress and abort in Node (docs/protocol.md#media, client-sdk/README.md): the
 * PUT to a real node's disk store is a counted stream body; an aborted upload is never completed,
 * so the same bytes are uploaded again in full afterwards, and nothing reaches the chat.
 */
describe('client SDK uploads: progress and abort', () => {
  let t: TestNode
  let alice: NatterClient
  let bob: NatterClient
  let chatId: string

  before(async () => {
    t = await startTestNode()
    alice = await createClient({
      url: t.mqttUrl,
      userId: 'alice',
      deviceId: 'laptop',
      getToken: () => t.token('alice'),
    })
    bob = await createClient({
      url: t.mqttUrl,
      userId: 'bob',
      deviceId: 'phone',
      getToken: () => t.token('bob'),
    })
    chatId = (await alice.direct('bob')).id
  })
  after(async () => {
    await alice?.close().catch(() => {})
    await bob?.close().catch(() => {})
    await t?.close()
  })

  it('reports progress from 0 to the whole size, rising, then the media is ready', async () => {
    const bytes = randomBytes(1_000_000)
    const seen: [number, number][] = []
    const up = await alice.uploadMedia(bytes, {
      chatId,
      contentType: 'application/octet-stream',
      name: 'blob.bin',
      onProgress: (sent, total) => seen.push([sent, total]),
    })
    assert.equal(up.uploaded, true)
    assert.equal(up.media.size, bytes.length)
    assert.deepEqual(seen[0], [0, bytes.length])
    assert.deepEqual(seen.at(-1), [bytes.length, bytes.length])
    assert.ok(seen.every(([, total]) => total === bytes.length))
    for (let i = 1; i < seen.length; i++)
      assert.ok((seen[i]?.[0] ?? 0) >= (seen[i - 1]?.[0] ?? 0), 'never goes back')
    // 64 KiB chunks: steps between the start and the end.
    const between = seen.filter(([sent]) => sent > 0 && sent < bytes.length)
    assert.ok(between.length >= 10, `${between.length} steps between start and end`)

    // The same bytes again: the server has them, nothing is sent, progress is whole at once.
    const again: [number, number][] = []
    const dup = await alice.uploadMedia(bytes, {
      chatId,
      contentType: 'application/octet-stream',
      onProgress: (sent, total) => again.push([sent, total]),
    })
    assert.equal(dup.uploaded, false)
    assert.deepEqual(again, [[bytes.length, bytes.length]])
  })

  it('aborts mid-PUT with code cancelled: the media is not completed and nothing is sent', async () => {
    const bytes = randomBytes(4_000_000)
    const abort = new AbortController()
    let lastSent = 0
    const failed = await alice
      .uploadMedia(bytes, {
        chatId,
        contentType: 'application/zip',
        name: 'big.zip',
        signal: abort.signal,
        onProgress: (sent) => {
          lastSent = sent
          // A quarter of the way: the person presses Cancel.
          if (sent >= bytes.length / 4 && sent < bytes.length) abort.abort()
        },
      })
      .then(
        () => null,
        (e: unknown) => e,
      )
    assert.ok(failed instanceof NatterRequestError, String(failed))
    assert.equal(failed.code, 'cancelled')
    assert.match(failed.message, /cancelled/)
    assert.ok(lastSent < bytes.length, `stopped at ${lastSent} of ${bytes.length} bytes`)

    // Never completed: the same bytes are not known to the server, they go up whole again.
    const up = await alice.uploadMedia(bytes, { chatId, contentType: 'application/zip', name: 'big.zip' })
    assert.equal(up.uploaded, true)

    // Bob's timeline holds no message from the aborted upload (only the chat's creation).
    const messages = await bob.open(chatId)
    assert.deepEqual(
      messages.filter((m) => m.kind !== 'event'),
      [],
    )
  })

  it('refuses at once with cancelled for a signal aborted before the start, asking the server nothing', async () => {
    const abort = new AbortController()
    abort.abort()
    const seen: number[] = []
    await assert.rejects(
      alice.uploadMedia(randomBytes(1000), {
        chatId,
        contentType: 'text/plain',
        signal: abort.signal,
        onProgress: (sent) => seen.push(sent),
      }),
      (e: unknown) => e instanceof NatterRequestError && e.code === 'cancelled',
    )
    assert.deepEqual(seen, [])
  })

  it('rejects with cancelled when aborted while the server is asked (media.begin)', async () => {
    const abort = new AbortController()
    const p = alice.uploadMedia(randomBytes(1000), {
      chatId,
      contentType: 'text/plain',
      signal: abort.signal,
    })
    abort.abort()
    await assert.rejects(p, (e: unknown) => e instanceof NatterRequestError && e.code === 'cancelled')
  })
})
