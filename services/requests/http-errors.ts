import type { ServerResponse } from 'node:http'
import { type HttpErrorCode, httpStatusOf } from './envelope.ts'

/**
 * A refusal of an HTTP request, thrown by a route and answered by the HTTP port's catch-all as
 * `{"error": {code, message}}` with the code's status from the error catalogue
 * (docs/protocol.md#errors). Anything else thrown is a server fault: a logged 500.
 */
export class HttpError extends Error {
  override name = 'HttpError'
  readonly code: HttpErrorCode
  readonly status: number
  /** Extra response headers (www-authenticate, allow, retry-after). */
  readonly headers: Record<string, string>
  constructor(code: HttpErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.code = code
    this.status = httpStatusOf(code)
    this.headers = headers
  }
}

/** Answers with a JSON body (one line, newline-terminated). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(`${JSON.stringify(body)}\n`)
}

/** Answers an error of the catalogue, with the code's HTTP status. */
export function sendError(
  res: ServerResponse,
  code: HttpErrorCode,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, httpStatusOf(code), { error: { code, message } }, headers)
}
