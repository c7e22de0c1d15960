/**
 * Runs work one after another per key (a chat, a cursor, a user) and concurrently across keys.
 * A failure settles that call only; the next in line still runs.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>()

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const mine = (this.#tails.get(key) ?? Promise.resolve()).then(work)
    const tail = mine.catch(() => {})
    this.#tails.set(key, tail)
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return mine
  }

  /** Resolves when everything queued so far has run. */
  async settled(): Promise<void> {
    await Promise.all(this.#tails.values())
  }
}
