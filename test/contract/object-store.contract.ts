import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { GetTerms, ObjectStore, PutTerms } from '../../services/media/object-store.ts'

export interface ObjectStoreHarness {
  store: ObjectStore
  cleanup(): Promise<void>
}

let n = 0
const key = (what: string) => `m/${what}-${process.pid}-${++n}`
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
/** The status of a GET, its body read to the end (undici trips over a body left unread when the server closes). */
async function statusOf(url: string): Promise<number> {
  const res = await fetch(url)
  await res.arrayBuffer()
  return res.status
}

/** Flips one character of the signature, as someone tampering with a URL would. */
function tampered(url: string): string {
  const u = new URL(url)
  const name = u.searchParams.has('X-Amz-Signature') ? 'X-Amz-Signature' : 'sig'
  const sig = u.searchParams.get(name) ?? ''
  u.searchParams.set(name, (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1))
  return u.toString()
}

/** What every object store must do, whatever holds the bytes: checked through real HTTP. */
export function objectStoreContract(name: string, open: () => Promise<ObjectStoreHarness>): void {
  describe(`object store contract: ${name}`, () => {
    let h: ObjectStoreHarness
    let store: ObjectStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    const terms = (bytes: Buffer, contentType = 'image/png'): PutTerms => ({
      sha256: sha(bytes),
      size: bytes.length,
      contentType,
      expiresInSeconds: 60,
    })
    const getUrl = (k: string, o: Partial<GetTerms> = {}) =>
      store.signGet(k, { expiresInSeconds: 60, contentType: 'image/png', disposition: 'inline', ...o })
    const put = async (url: string, headers: Record<string, string>, body: Buffer) => {
      const res = await fetch(url, { method: 'PUT', headers, body })
      await res.arrayBuffer()
      return res.status
    }

    it('takes the signed bytes through a signed URL and serves them back through another', async () => {
      const k = key('photo')
      const bytes = randomBytes(5000)
      const up = await store.signPut(k, terms(bytes))
      assert.equal(up.method, 'PUT')
      assert.equal(await put(up.url, up.headers, bytes), 200)
      assert.deepEqual(await store.head(k), { size: 5000, contentType: 'image/png', sha256: sha(bytes) })
      const url = await getUrl(k, { disposition: 'inline; filename="photo.png"' })
      const res = await fetch(url)
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'image/png')
      assert.equal(res.headers.get('content-disposition'), 'inline; filename="photo.png"')
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes)
    })

    it('serves a byte range, as video players ask', async () => {
      const k = key('video')
      const bytes = randomBytes(1000)
      await store.write(k, bytes, 'video/mp4')
      const url = await getUrl(k, { contentType: 'video/mp4' })
      const res = await fetch(url, { headers: { range: 'bytes=100-199' } })
      assert.equal(res.status, 206)
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes.subarray(100, 200))
    })

    it('refuses bytes that do not match the signed SHA-256, and stores nothing', async () => {
      const k = key('liar')
      const declared = randomBytes(2000)
      const up = await store.signPut(k, terms(declared))
      const other = randomBytes(2000)
      const status = await put(up.url, up.headers, other)
      assert.ok(status >= 400 && status < 500, `status ${status}`)
      assert.equal(await store.head(k), null)
    })

    it('refuses another size or content type than the signed ones', async () => {
      const k = key('sized')
      const bytes = randomBytes(1000)
      const up = await store.signPut(k, terms(bytes))
      const longer = Buffer.concat([bytes, Buffer.from('x')])
      const longerStatus = await put(up.url, up.headers, longer)
      assert.ok(longerStatus >= 400 && longerStatus < 500, `longer: ${longerStatus}`)
      assert.equal(await put(up.url, { ...up.headers, 'content-type': 'text/html' }, bytes), 403)
      assert.equal(await store.head(k), null)
      assert.equal(await put(up.url, up.headers, bytes), 200, 'the URL still works for the right upload')
    })

    it('refuses a tampered URL, for uploads and downloads', async () => {
      const k = key('tamper')
      const bytes = randomBytes(100)
      const up = await store.signPut(k, terms(bytes))
      assert.equal(await put(tampered(up.url), up.headers, bytes), 403)
      assert.equal(await store.head(k), null)
      await store.write(k, bytes, 'image/png')
      const url = await getUrl(k)
      assert.equal(await statusOf(tampered(url)), 403)
      const otherKey = url.replace(k.split('/')[1] as string, key('elsewhere').split('/')[1] as string)
      assert.equal(await statusOf(otherKey), 403)
    })

    it('refuses an expired URL, for uploads and downloads', async () => {
      const k = key('late')
      const bytes = randomBytes(100)
      const longAgo = new Date(Date.now() - 3600_000)
      const up = await store.signPut(k, { ...terms(bytes), expiresInSeconds: 60, signedAt: longAgo })
      assert.equal(await put(up.url, up.headers, bytes), 403)
      assert.equal(await store.head(k), null)
      await store.write(k, bytes, 'image/png')
      const url = await getUrl(k, { signedAt: longAgo })
      assert.equal(await statusOf(url), 403)
    })

    it('streams an object whole, and none when there is none', async () => {
      const k = key('export')
      assert.equal(await store.stream(k), null)
      // Larger than any one chunk of a file or HTTP stream, so several chunks make it up.
      const bytes = randomBytes(3 * 1024 * 1024 + 17)
      await store.write(k, bytes, 'application/octet-stream')
      const stream = await store.stream(k)
      assert.ok(stream)
      const chunks: Buffer[] = []
      for await (const chunk of stream) chunks.push(Buffer.from(chunk))
      assert.ok(chunks.length > 1, `${chunks.length} chunk`)
      assert.equal(sha(Buffer.concat(chunks)), sha(bytes))
      await store.remove(k)
      assert.equal(await store.stream(k), null)
    })

    it('writes, reads and removes objects for the server itself', async () => {
      const k = key('thumb')
      const bytes = randomBytes(300)
      assert.equal(await store.read(k, 1000), null)
      await store.write(k, bytes, 'image/webp')
      assert.deepEqual(await store.read(k, 1000), bytes)
      await assert.rejects(store.read(k, 299), /over 299/)
      assert.equal((await store.head(k))?.contentType, 'image/webp')
      await store.remove(k)
      assert.equal(await store.head(k), null)
      await store.remove(k)
      const url = await getUrl(k, { contentType: 'image/webp' })
      assert.equal(await statusOf(url), 404)
    })
  })
}
