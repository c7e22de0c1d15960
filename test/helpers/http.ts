import { request } from 'node:http'
import { connect } from 'node:net'

export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  /** The body as JSON, undefined when it is not JSON. */
  json: unknown
}

/**
 * One HTTP request with exactly the headers given, Host included (fetch replaces Host with the
 * URL's, so a DNS-rebinding request cannot be written with it).
 */
export function httpRequest(
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  // Node's client frames a DELETE or OPTIONS body with neither Content-Length nor chunks.
  const chunked = Object.keys(o.headers ?? {}).some((h) => h.toLowerCase() === 'transfer-encoding')
  const length =
    o.body === undefined || chunked ? {} : { 'content-length': String(Buffer.byteLength(o.body)) }
  const headers = { ...length, ...o.headers }
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch {
          json = undefined
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
      })
    })
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer from ${url}`)))
    req.on('error', reject)
    req.end(o.body)
  })
}

/**
 * Writes bytes to a port as they are (a request Node's client would not send: a bad request
 * target, no Host, a broken header) and resolves with the status code of the answer, or 0 when
 * the server closed the connection without one.
 */
export function rawHttp(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let got = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer on port ${port} within ${timeoutMs} ms`))
    }, timeoutMs)
    const finish = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(got)?.[1] ?? 0))
    }
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1')
      if (/^HTTP\/1\.[01] \d{3}/.test(got)) finish()
    })
    socket.on('close', finish)
    socket.on('error', () => finish())
    socket.write(bytes)
  })
}
