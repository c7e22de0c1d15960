import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createReadStream, createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { HttpErrorCode } from '../requests/envelope.ts'
import { decodePathPart, requestTarget } from '../requests/request-target.ts'
import {
  type GetTerms,
  hexToBase64,
  type ObjectInfo,
  type ObjectStore,
  type PutTerms,
  type SignedUpload,
} from './object-store.ts'

/** Where the disk store's URLs point: Natter's HTTP port serves them under this path. */
export const DISK_OBJECT_PATH = '/media/o/'

const KEY = /^(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9._/-]{0,250}$/

interface Meta {
  contentType: string
  sha256: string
}

class UrlError extends Error {
  readonly status: number
  readonly code: HttpErrorCode
  constructor(status: number, code: HttpErrorCode, message: string) {
    super(message)
    this.status = status
    this.code = code
  }
}

/**
 * Media as files in a directory, for one machine. Its URLs lead to Natter's own HTTP port and
 * carry an HMAC over what they allow (method, key, expiry, and for an upload the type, size
 * and SHA-256), so they behave as S3's presigned URLs do: other bytes, another size or type, a
 * changed URL or a late request are refused. The key for the HMAC is made on first start.
 */
export class DiskObjectStore implements ObjectStore {
  readonly kind = 'disk'
  readonly #dir: string
  readonly #baseUrl: () => string
  readonly #secret: Buffer
  #tmp = 0

  /** baseUrl: where clients reach the HTTP port; a function when the port is known only later. */
  constructor(o: { dir: string; baseUrl: string | (() => string); secret?: Buffer }) {
    this.#dir = o.dir
    const base = o.baseUrl
    this.#baseUrl = () => (typeof base === 'string' ? base : base()).replace(/\/+$/, '')
    mkdirSync(join(o.dir, 'tmp'), { recursive: true })
    this.#secret = o.secret ?? loadOrCreateKey(join(o.dir, 'url-signing.key'))
  }

  async signPut(key: string, t: PutTerms): Promise<SignedUpload> {
    const exp = expiry(t.signedAt, t.expiresInSeconds)
    const sig = this.#sign(['PUT', key, exp, t.contentType, t.size, t.sha256])
    return {
      method: 'PUT',
      url: `${this.#url(key)}?${new URLSearchParams({ size: String(t.size), sha256: t.sha256, exp: String(exp), sig })}`,
      headers: { 'content-type': t.contentType, 'x-amz-checksum-sha256': hexToBase64(t.sha256) },
    }
  }

  async signGet(key: string, t: GetTerms): Promise<string> {
    const exp = expiry(t.signedAt, t.expiresInSeconds)
    const sig = this.#sign(['GET', key, exp, t.contentType, t.disposition])
    const q = new URLSearchParams({ type: t.contentType, disposition: t.disposition, exp: String(exp), sig })
    return `${this.#url(key)}?${q}`
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const path = this.#path(key)
    const st = await stat(path).catch(() => null)
    if (!st?.isFile()) return null
    const meta = await readMeta(path)
    return { size: st.size, contentType: meta?.contentType, sha256: meta?.sha256 }
  }

  async read(key: string, maxBytes: number): Promise<Buffer | null> {
    const info = await this.head(key)
    if (!info) return null
    if (info.size > maxBytes) throw new Error(`object ${key} has ${info.size} bytes, over ${maxBytes}`)
    return readFile(this.#path(key)).catch(() => null)
  }

  async stream(key: string): Promise<Readable | null> {
    // Opened first, so that a removal after the open cannot cut the stream short.
    const file = await open(this.#path(key), 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'EISDIR') return null
      throw err
    })
    return file ? file.createReadStream() : null
  }

  async write(key: string, bytes: Buffer, contentType: string): Promise<void> {
    const path = this.#path(key)
    const tmp = this.#tmpPath()
    await writeFile(tmp, bytes)
    await this.#publish(path, tmp, { contentType, sha256: createHash('sha256').update(bytes).digest('hex') })
  }

  async remove(key: string): Promise<void> {
    const path = this.#path(key)
    await rm(path, { force: true })
    await rm(`${path}.meta`, { force: true })
  }

  async close(): Promise<void> {}

  /**
   * Serves one signed URL (GET, HEAD or PUT on DISK_OBJECT_PATH + key). Errors are JSON with a
   * code, as elsewhere on Natter's HTTP port.
   */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Routed here by its path, so the target parses; the key's escapes may still not be UTF-8.
    const url = requestTarget(req.url) ?? new URL(`http://localhost${DISK_OBJECT_PATH}`)
    const key = decodePathPart(url.pathname.slice(DISK_OBJECT_PATH.length))
    // A signed URL is its own permission, so any web page holding one may use it.
    res.setHeader('access-control-allow-origin', '*')
    res.setHeader('access-control-expose-headers', 'content-length, content-range, content-disposition')
    if (req.method === 'OPTIONS') {
      res
        .writeHead(204, {
          'access-control-allow-methods': 'GET, HEAD, PUT',
          'access-control-allow-headers': 'content-type, x-amz-checksum-sha256, range',
          'access-control-max-age': '3600',
        })
        .end()
      return
    }
    try {
      if (key === null || !KEY.test(key)) throw new UrlError(404, 'not_found', 'no such object')
      if (req.method === 'PUT') await this.#receive(req, key, url.searchParams)
      else if (req.method === 'GET' || req.method === 'HEAD')
        return await this.#send(req, res, key, url.searchParams)
      else throw new UrlError(405, 'method_not_allowed', 'use GET, HEAD or PUT')
      res.writeHead(200, { 'content-length': 0 }).end()
    } catch (err) {
      if (!(err instanceof UrlError)) throw err
      if (res.headersSent) return void res.destroy()
      // The body of a refused upload is not read: closing stops the client sending it.
      if (req.method === 'PUT' && !req.readableEnded) res.setHeader('connection', 'close')
      res
        .writeHead(err.status, { 'content-type': 'application/json' })
        .end(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`)
    }
  }

  async #receive(req: IncomingMessage, key: string, q: URLSearchParams): Promise<void> {
    const size = Number(q.get('size'))
    const sha256 = q.get('sha256') ?? ''
    const contentType = req.headers['content-type'] ?? ''
    this.#verify(q, ['PUT', key, q.get('exp') ?? '', contentType, q.get('size') ?? '', sha256])
    if (req.headers['x-amz-checksum-sha256'] !== hexToBase64(sha256)) {
      throw new UrlError(
        403,
        'signature_mismatch',
        'the x-amz-checksum-sha256 header differs from the signed one',
      )
    }
    const declared = req.headers['content-length']
    if (declared !== undefined && Number(declared) !== size) {
      throw new UrlError(403, 'signature_mismatch', `Content-Length must be ${size}`)
    }
    const tmp = this.#tmpPath()
    const hash = createHash('sha256')
    let received = 0
    try {
      await pipeline(
        req,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            received += chunk.length
            if (received > size) throw new UrlError(400, 'bad_digest', `more than the signed ${size} bytes`)
            hash.update(chunk)
            yield chunk
          }
        },
        createWriteStream(tmp),
      )
      if (received !== size)
        throw new UrlError(400, 'bad_digest', `got ${received} bytes of the signed ${size}`)
      if (hash.digest('hex') !== sha256) {
        throw new UrlError(400, 'bad_digest', 'the SHA-256 of the bytes differs from the signed one')
      }
      await this.#publish(this.#path(key), tmp, { contentType, sha256 })
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
  }

  async #send(req: IncomingMessage, res: ServerResponse, key: string, q: URLSearchParams): Promise<void> {
    const type = q.get('type') ?? ''
    const disposition = q.get('disposition') ?? ''
    this.#verify(q, ['GET', key, q.get('exp') ?? '', type, disposition])
    const path = this.#path(key)
    const st = await stat(path).catch(() => null)
    if (!st?.isFile()) throw new UrlError(404, 'not_found', 'no such object')
    const headers: Record<string, string | number> = {
      'content-type': type,
      'content-disposition': disposition,
      'x-content-type-options': 'nosniff',
      'accept-ranges': 'bytes',
      'cache-control': 'private, max-age=300',
    }
    const range = parseRange(req.headers.range, st.size)
    if (range === 'unsatisfiable') {
      res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end()
      return
    }
    const [start, end] = range ?? [0, st.size - 1]
    headers['content-length'] = Math.max(0, end - start + 1)
    if (range) headers['content-range'] = `bytes ${start}-${end}/${st.size}`
    res.writeHead(range ? 206 : 200, headers)
    if (req.method === 'HEAD' || st.size === 0) return void res.end()
    await pipeline(createReadStream(path, { start, end }), res)
  }

  #verify(q: URLSearchParams, fields: (string | number)[]): void {
    const exp = Number(q.get('exp'))
    const given = Buffer.from(q.get('sig') ?? '', 'base64url')
    const wanted = Buffer.from(this.#sign(fields), 'base64url')
    if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
      throw new UrlError(403, 'signature_mismatch', 'the URL or the signed headers were changed')
    }
    if (!(exp * 1000 > Date.now())) throw new UrlError(403, 'url_expired', 'the URL has expired')
  }

  #sign(fields: (string | number)[]): string {
    return createHmac('sha256', this.#secret).update(fields.join('\n')).digest('base64url')
  }

  #url(key: string): string {
    return `${this.#baseUrl()}${DISK_OBJECT_PATH}${key.split('/').map(encodeURIComponent).join('/')}`
  }

  #path(key: string): string {
    if (!KEY.test(key)) throw new Error(`bad object key ${key}`)
    return join(this.#dir, 'objects', key)
  }

  #tmpPath(): string {
    return join(this.#dir, 'tmp', `${process.pid}-${Date.now()}-${++this.#tmp}`)
  }

  /** The rename of the bytes is what makes an object appear: a half-written one never shows. */
  async #publish(path: string, tmp: string, meta: Meta): Promise<void> {
    mkdirSync(dirname(path), { recursive: true })
    await writeFile(`${path}.meta`, JSON.stringify(meta))
    await rename(tmp, path)
  }
}

function expiry(signedAt: Date | undefined, seconds: number): number {
  return Math.floor((signedAt ?? new Date()).getTime() / 1000) + seconds
}

async function readMeta(path: string): Promise<Meta | null> {
  try {
    return JSON.parse(await readFile(`${path}.meta`, 'utf8')) as Meta
  } catch {
    return null
  }
}

function loadOrCreateKey(path: string): Buffer {
  try {
    return readFileSync(path)
  } catch {
    const key = randomBytes(32)
    writeFileSync(path, key, { mode: 0o600, flag: 'wx' })
    return key
  }
}

/** One byte range of a Range header (the only form players send); null: the whole object. */
function parseRange(header: string | undefined, size: number): [number, number] | null | 'unsatisfiable' {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null
  if (!m || (m[1] === '' && m[2] === '')) return null
  let start: number
  let end: number
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]))
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  }
  if (start > end || start >= size) return 'unsatisfiable'
  return [start, end]
}

/** The HTTP route that serves a disk store's signed URLs; none for other stores (S3 serves its own). */
export function diskObjectRoute(
  objects: ObjectStore,
): { prefix: string; serve: (req: IncomingMessage, res: ServerResponse) => Promise<void> } | undefined {
  return objects instanceof DiskObjectStore
    ? { prefix: DISK_OBJECT_PATH, serve: (req, res) => objects.serve(req, res) }
    : undefined
}
