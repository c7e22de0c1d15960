import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseEncryptedBody, parseEncryptedMedia } from '../client-sdk/src/mls/encrypted-body-schema.ts'
import { type EncryptedMedia, encryptMedia } from '../client-sdk/src/mls/encrypted-media.ts'

// What another member's SDK may put inside an encrypted message: the receiving SDK is the only
// one that can check it (the server never sees it). The descriptors are made by encryptMedia, as
// a sending SDK makes them, then changed as a faulty or hostile client would.
describe('the schemas of an encrypted message body and its media descriptors', async () => {
  const made = await encryptMedia(new TextEncoder().encode('a holiday picture, in bytes'), {
    contentType: 'image/png',
    name: 'beach.png',
    width: 64,
    height: 48,
  })
  const good: EncryptedMedia = { id: 'm_AbC-12_x', ...made.media }
  const with_ = (change: Record<string, unknown>) => ({ ...good, ...change })

  it('keeps a descriptor an SDK made as it is, and leaves out fields it does not know', () => {
    assert.deepEqual(parseEncryptedMedia(good), good)
    assert.deepEqual(parseEncryptedMedia(with_({ thumbnail: 'data:…', extra: { a: 1 } })), good)
  })

  it('derives the kind from the type; a type media may not have becomes application/octet-stream', () => {
    for (const contentType of ['text/html', 'image/svg+xml', 'IMAGE/PNG', 42, undefined]) {
      const d = parseEncryptedMedia(with_({ contentType, kind: 'image' }))
      assert.deepEqual(
        { kind: d?.kind, contentType: d?.contentType },
        { kind: 'file', contentType: 'application/octet-stream' },
        String(contentType),
      )
    }
    const audio = parseEncryptedMedia(with_({ contentType: 'audio/ogg', kind: 'file', durationMs: 3000 }))
    assert.deepEqual(
      { kind: audio?.kind, durationMs: audio?.durationMs },
      { kind: 'audio', durationMs: 3000 },
    )
    // A duration means nothing for an image: dropped.
    assert.equal(parseEncryptedMedia(with_({ durationMs: 3000 }))?.durationMs, null)
  })

  it('cleans the name and turns optional facts that are not well-formed into null', () => {
    const name = (n: unknown) => parseEncryptedMedia(with_({ name: n }))?.name
    assert.equal(name('invoice\u202Efdp.exe'), 'invoicefdp.exe')
    assert.equal(name('../../etc/passwd'), '.._.._etc_passwd')
    assert.equal(name('\u200b\u0007'), null)
    assert.equal(name(7), null)
    assert.equal([...(name('x'.repeat(300)) ?? '')].length, 255)
    const d = parseEncryptedMedia(with_({ width: -1, height: 1.5, durationMs: 'long' }))
    assert.deepEqual({ width: d?.width, height: d?.height }, { width: null, height: null })
    assert.deepEqual({ width: parseEncryptedMedia(with_({ width: undefined }))?.width }, { width: null })
  })

  it('refuses a descriptor whose id, size, hashes, key or nonce are not well-formed', () => {
    const key16 = Buffer.alloc(16, 1).toString('base64')
    const bad: Record<string, Record<string, unknown>> = {
      'no id': { id: undefined },
      'an id that is not a media id': { id: 'x_1' },
      'an id with a slash': { id: 'm_a/b' },
      'a negative size': { size: -1 },
      'a fractional size': { size: 1.5 },
      'a size as text': { size: '27' },
      'an upper-case hash': { sha256: good.sha256.toUpperCase() },
      'a short hash': { ciphertextSha256: good.ciphertextSha256.slice(2) },
      'a 16-byte key': { key: key16 },
      'a key that is not base64': { key: `${good.key.slice(0, -2)}!=` },
      'a key with spaces': { key: ` ${good.key}` },
      'a 16-byte nonce': { nonce: key16 },
      'no nonce': { nonce: undefined },
    }
    for (const [why, change] of Object.entries(bad))
      assert.equal(parseEncryptedMedia(with_(change)), null, why)
    for (const v of [null, 'm_abc', [good], 42]) assert.equal(parseEncryptedMedia(v), null)
  })

  it('a v1 body keeps its well-formed descriptors and leaves out the others, text and replyTo kept', () => {
    const body = parseEncryptedBody({
      v: 1,
      text: 'the beach',
      replyTo: 7,
      media: [good, with_({ key: 'short' }), 'm_bare', with_({ id: 'm_two', contentType: 'text/html' })],
    })
    assert.deepEqual(body, {
      v: 1,
      text: 'the beach',
      replyTo: 7,
      media: [good, { ...good, id: 'm_two', kind: 'file', contentType: 'application/octet-stream' }],
    })
  })

  it('a body without v (the first MLS SDKs) names bare media ids', () => {
    assert.deepEqual(parseEncryptedBody({ text: 'hi', media: ['m_a', 3, good] }), {
      text: 'hi',
      media: ['m_a'],
    })
    assert.deepEqual(parseEncryptedBody({}), {})
  })

  it('a body that is not of that shape gives the reason, naming the fields', () => {
    const cases: [unknown, RegExp][] = [
      [null, /the body/],
      ['the beach', /the body/],
      [[{ text: 'x' }], /the body/],
      [{ v: 2, text: 'from a newer SDK' }, /\bv\b/],
      [{ v: 1, text: 42 }, /text/],
      [{ v: 1, replyTo: 0 }, /replyTo/],
      [{ v: 1, replyTo: 2.5 }, /replyTo/],
      [{ v: 1, media: 'm_a' }, /media/],
    ]
    for (const [body, why] of cases) {
      const r = parseEncryptedBody(body)
      assert.equal(typeof r, 'string', JSON.stringify(body))
      assert.match(r as string, /^the message body is not well-formed/)
      assert.match(r as string, why)
    }
  })
})
