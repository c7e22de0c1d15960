/** Counts work under way (sends, publishes) so that a graceful stop can wait for it to end. */
export class InFlight {
  #count = 0
  #idle = new Set<() => void>()

  track<T>(work: Promise<T>): Promise<T> {
    this.#count++
    return work.finally(() => {
      if (--this.#count > 0) return
      for (const resolve of this.#idle) resolve()
      this.#idle.clear()
    })
  }

  /** Resolves when nothing is under way, or after timeoutMs (false then). */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#count === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        resolve(true)
      }
      const timer = setTimeout(() => {
        this.#idle.delete(done)
        resolve(false)
      }, timeoutMs)
      this.#idle.add(done)
    })
  }
}
