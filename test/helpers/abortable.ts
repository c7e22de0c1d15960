/**
 * Rejects as soon as the signal aborts (an error naming its reason); otherwise settles as p
 * does. The work behind p goes on after an abort, and its result is dropped.
 */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p
  if (signal.aborted) return Promise.reject(new Error(`run aborted: ${String(signal.reason)}`))
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error(`run aborted: ${String(signal.reason)}`))
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
