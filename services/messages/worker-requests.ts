import type { MessagePort } from 'node:worker_threads'

/** A worker's reply to a request that failed: the error's message and, when it has one, its code (SQLite's `ERR_SQLITE_ERROR`, …). */
export type FailedReply = { id: number; ok: false; message: string; code?: string }

/** The failed reply to request `id` for `err` (an Error, possibly carrying a `code`). */
export function failedReply(id: number, err: unknown): FailedReply {
  const e = err as Error & { code?: string }
  return { id, ok: false, message: e.message, ...(e.code ? { code: e.code } : {}) }
}

/**
 * Answers each request that comes on `port` (a worker's parentPort) with what `handle` returns:
 * a reply is posted at once, a promise's once it settles, `null` posts nothing. A throw or a
 * rejection becomes a {@link FailedReply} of the request's id, so the main thread's promise for
 * it always settles and the worker keeps serving.
 */
export function answerRequests<Req extends { id: number }, Reply>(
  port: MessagePort,
  handle: (req: Req) => Reply | Promise<Reply> | null,
): void {
  port.on('message', (req: Req) => {
    let reply: Reply | FailedReply | Promise<Reply> | null
    try {
      reply = handle(req)
    } catch (err) {
      reply = failedReply(req.id, err)
    }
    if (reply instanceof Promise) {
      reply.then(
        (r) => port.postMessage(r),
        (err: unknown) => port.postMessage(failedReply(req.id, err)),
      )
    } else if (reply) port.postMessage(reply)
  })
}
