import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import {
  createSecureServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
} from 'node:http2'
import { Agent as HttpsAgent } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls'
import { decodeJwt, decodeProtectedHeader, importSPKI, jwtVerify } from 'jose'

/** A self-signed certificate for 127.0.0.1 and localhost, in a fresh directory. */
export interface TestCert {
  dir: string
  certFile: string
  cert: string
  key: string
  cleanup(): void
}

export function makeCert(): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'natter-push-'))
  const keyFile = join(dir, 'server-key.pem')
  const certFile = join(dir, 'server-cert.pem')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'ignore' },
  )
  return {
    dir,
    certFile,
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

export interface Reply {
  status: number
  body?: unknown
  headers?: Record<string, string>
}

export interface Received {
  at: number
  path: string
  headers: IncomingHttpHeaders
  body: Record<string, unknown>
  /** What the endpoint found wrong with the request, as the real service would refuse it. */
  problems: string[]
}

/** An HTTP/2 TLS server that checks each request, answers from a script, and records it. */
class FakeEndpoint {
  readonly received: Received[] = []
  readonly #script: Reply[] = []
  readonly #waiters = new Set<{ n: number; resolve: () => void }>()
  readonly #sessions = new Set<ServerHttp2Session>()
  server!: Http2Server
  port = 0

  async listen(
    cert: TestCert,
    handle: (
      method: string,
      path: string,
      headers: IncomingHttpHeaders,
      body: string,
    ) => Promise<Reply | Received>,
  ) {
    this.server = createSecureServer({ key: cert.key, cert: cert.cert, allowHTTP1: true })
    this.server.on('session', (s) => {
      this.#sessions.add(s)
      s.on('close', () => this.#sessions.delete(s))
    })
    this.server.on('request', async (req, res) => {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const out = await handle(req.method, req.url, req.headers, Buffer.concat(chunks).toString('utf8'))
      let reply: Reply
      if ('problems' in out) {
        this.received.push(out)
        reply = out.problems.length
          ? { status: 400, body: { problems: out.problems } }
          : (this.#script.shift() ?? { status: 200 })
        for (const w of this.#waiters) {
          if (this.received.length >= w.n) {
            this.#waiters.delete(w)
            w.resolve()
          }
        }
      } else reply = out
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers })
      res.end(reply.body === undefined ? '{}' : JSON.stringify(reply.body))
    })
    this.server.listen(0, '127.0.0.1')
    await once(this.server, 'listening')
    this.port = (this.server.address() as AddressInfo).port
  }

  /** The next answers, in order; after them every request gets 200. */
  script(...replies: Reply[]): void {
    this.#script.push(...replies)
  }

  /** Resolves once n requests have arrived in all. */
  waitFor(n: number, ms = 20_000): Promise<void> {
    if (this.received.length >= n) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const w = { n, resolve }
      this.#waiters.add(w)
      setTimeout(() => {
        if (this.#waiters.delete(w))
          reject(new Error(`${this.received.length} of ${n} requests within ${ms} ms`))
      }, ms).unref()
    })
  }

  async close(): Promise<void> {
    for (const s of this.#sessions) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/**
 * APNs as Apple checks a request: POST /3/device/<token> over HTTP/2, an ES256 provider JWT
 * from the team and key, the topic, push type and collapse id, and an aps payload.
 */
export class FakeApns extends FakeEndpoint {
  readonly teamId = 'TEAM123456'
  readonly keyId = 'KEY1234567'
  readonly keyFile: string
  readonly #publicKey: string

  constructor(dir: string) {
    super()
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    this.keyFile = join(dir, `AuthKey_${this.keyId}.p8`)
    writeFileSync(this.keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }))
    this.#publicKey = publicKey.export({ type: 'spki', format: 'pem' }) as string
  }

  async start(cert: TestCert): Promise<this> {
    const key = await importSPKI(this.#publicKey, 'ES256')
    await this.listen(cert, async (method, path, headers, text) => {
      const problems: string[] = []
      if (method !== 'POST') problems.push('method')
      if (!/^\/3\/device\/[0-9a-f]{16,}$/.test(path)) problems.push('path')
      const jwt = String(headers.authorization ?? '').replace(/^bearer /, '')
      try {
        if (decodeProtectedHeader(jwt).kid !== this.keyId) problems.push('kid')
        await jwtVerify(jwt, key, { issuer: this.teamId, algorithms: ['ES256'], maxTokenAge: '1h' })
      } catch {
        problems.push('authorization')
      }
      if (!headers['apns-topic']) problems.push('apns-topic')
      if (headers['apns-push-type'] !== 'alert') problems.push('apns-push-type')
      if (!headers['apns-collapse-id']) problems.push('apns-collapse-id')
      let body: Record<string, unknown> = {}
      try {
        body = JSON.parse(text)
      } catch {
        problems.push('body')
      }
      const aps = body.aps as { alert?: { title?: unknown; body?: unknown }; badge?: unknown } | undefined
      if (typeof aps?.alert?.title !== 'string' || typeof aps.alert.body !== 'string')
        problems.push('aps.alert')
      if (typeof aps?.badge !== 'number') problems.push('aps.badge')
      return { at: Date.now(), path, headers, body, problems }
    })
    return this
  }
}

/**
 * Google's two endpoints in one: the OAuth token endpoint (a JWT assertion signed with the
 * service account's key) and FCM HTTP v1 (the Bearer token it issued, the project's path, a
 * message with token and notification).
 */
export class FakeFcm extends FakeEndpoint {
  readonly projectId = 'natter-test'
  readonly credentialsFile: string
  readonly #clientEmail = 'push@natter-test.iam.gserviceaccount.com'
  readonly #publicKey: string
  readonly #issued = new Set<string>()
  tokenRequests = 0

  constructor(dir: string) {
    super()
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    this.#publicKey = publicKey.export({ type: 'spki', format: 'pem' }) as string
    this.credentialsFile = join(dir, 'service-account.json')
    writeFileSync(
      this.credentialsFile,
      JSON.stringify({
        type: 'service_account',
        project_id: this.projectId,
        private_key_id: 'k1',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
        client_email: this.#clientEmail,
        client_id: '1',
        token_uri: 'https://oauth2.googleapis.com/token',
      }),
    )
  }

  async start(cert: TestCert): Promise<this> {
    const key = await importSPKI(this.#publicKey, 'RS256')
    await this.listen(cert, async (method, path, headers, text) => {
      if (method === 'POST' && path === '/token') {
        this.tokenRequests++
        const assertion = new URLSearchParams(text).get('assertion') ?? ''
        try {
          await jwtVerify(assertion, key, {
            issuer: this.#clientEmail,
            audience: 'https://oauth2.googleapis.com/token',
          })
        } catch {
          return { status: 400, body: { error: 'invalid_grant' } }
        }
        if (!String(decodeJwt(assertion).scope ?? '').includes('firebase.messaging')) {
          return { status: 400, body: { error: 'invalid_scope' } }
        }
        const token = `ya29.${randomBytes(12).toString('hex')}`
        this.#issued.add(token)
        return { status: 200, body: { access_token: token, expires_in: 3600, token_type: 'Bearer' } }
      }
      const problems: string[] = []
      if (method !== 'POST' || path !== `/v1/projects/${this.projectId}/messages:send`) problems.push('path')
      if (!this.#issued.has(String(headers.authorization ?? '').replace(/^Bearer /, '')))
        problems.push('authorization')
      let body: Record<string, unknown> = {}
      try {
        body = JSON.parse(text)
      } catch {
        problems.push('body')
      }
      const m = body.message as
        | {
            token?: unknown
            notification?: { title?: unknown; body?: unknown }
            android?: { collapse_key?: unknown }
          }
        | undefined
      if (typeof m?.token !== 'string') problems.push('message.token')
      if (typeof m?.notification?.title !== 'string' || typeof m.notification.body !== 'string') {
        problems.push('message.notification')
      }
      if (typeof m?.android?.collapse_key !== 'string') problems.push('message.android.collapse_key')
      return { at: Date.now(), path, headers, body, problems }
    })
    return this
  }

  /** Sends every connection, whatever host it names, to this server: Google's hosts are fixed in firebase-admin. */
  agent(cert: TestCert): HttpsAgent {
    const port = () => this.port
    return new (class extends HttpsAgent {
      override createConnection(o: ConnectionOptions) {
        return tlsConnect({ ...o, host: '127.0.0.1', port: port(), ca: cert.cert, servername: 'localhost' })
      }
    })({ keepAlive: true })
  }
}

/** FCM's answer for an error, with its FcmError detail. */
export function fcmError(status: number, name: string, errorCode?: string): Reply {
  return {
    status,
    body: {
      error: {
        code: status,
        message: `fake ${name}`,
        status: name,
        ...(errorCode
          ? { details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode }] }
          : {}),
      },
    },
  }
}
