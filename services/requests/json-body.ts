import type { IncomingMessage } from 'node:http'
import { HttpError } from './http-errors.ts'

/**
 * Reads a request body of at most maxBytes. Resolves with the bytes; throws HttpError
 * too_large (413) as soon as more arrive (the rest is left unread, the stream open), or when
 * Content-Length already says more. A client that goes away mid-body rejects with the stream's
 * own error.
 */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (declared > maxBytes) throw new HttpError('too_large', `request body over ${maxBytes} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  // Not destroyed when the limit stops the loop: the rest is drained before the 413 is sent.
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    size += (chunk as Buffer).length
    if (size > maxBytes) throw new HttpError('too_large', `request body over ${maxBytes} bytes`)
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks, size)
}

/**
 * How deeply arrays and objects nest in JSON text, counted without parsing it, stopping as soon
 * as the count passes max (so a body of a million `[` costs one pass and no recursion). The text
 * need not be valid JSON: brackets inside strings are skipped, and what is not JSON is left to
 * JSON.parse.
 */
export function jsonDepthOver(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      // A backslash escapes the next character; a quote ends the string.
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}

/**
 * Parses a JSON body whose nesting is at most maxDepth arrays or objects deep (JSON.parse
 * itself copes with any depth, but what later walks the value recursively, JSON.stringify
 * included, overflows the stack on a few thousand). An empty body is `{}`. Throws HttpError
 * bad_request (400) for a body too deep, not UTF-8 text of JSON, or not JSON.
 */
export function parseJsonBody(body: Buffer, maxDepth: number): unknown {
  if (body.length === 0) return {}
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(body)
  } catch {
    throw new HttpError('bad_request', 'body is not UTF-8')
  }
  if (jsonDepthOver(text, maxDepth)) {
    throw new HttpError('bad_request', `body nests arrays and objects over ${maxDepth} deep`)
  }
  try {
    return JSON.parse(text)
  } catch {
    throw new HttpError('bad_request', 'body is not JSON')
  }
}
