/**
 * A store call that neither succeeded nor failed in time. The call itself may still be under
 * way (a MongoDB connection that stopped answering is not always closed by the driver); the
 * caller has stopped waiting for it.
 */
export class DeadlineError extends Error {
  override name = 'DeadlineError'
  /** @param what the call, for the logs; @param ms how long it was waited for (ms) */
  constructor(what: string, ms: number) {
    super(`${what}: no answer in ${ms} ms`)
  }
}

/**
 * `p`, or a DeadlineError once `ms` (ms) have passed without it settling. Its timer never keeps
 * the process alive.
 */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms)
    timer.unref()
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}
