/** A small typed event emitter that runs in browsers and Node alike (node:events is not in browsers). */
export class Emitter<E extends object> {
  readonly #handlers = new Map<keyof E, Set<(value: never) => void>>()

  on<K extends keyof E>(event: K, fn: (value: E[K]) => void): () => void {
    let set = this.#handlers.get(event)
    if (!set) {
      set = new Set()
      this.#handlers.set(event, set)
    }
    set.add(fn as (value: never) => void)
    return () => this.off(event, fn)
  }

  off<K extends keyof E>(event: K, fn: (value: E[K]) => void): void {
    this.#handlers.get(event)?.delete(fn as (value: never) => void)
  }

  /** Resolves with the next value of an event that passes the test. */
  next<K extends keyof E>(event: K, test: (value: E[K]) => boolean = () => true): Promise<E[K]> {
    return new Promise((resolve) => {
      const off = this.on(event, (v) => {
        if (!test(v)) return
        off()
        resolve(v)
      })
    })
  }

  protected emit<K extends keyof E>(event: K, value: E[K]): void {
    for (const fn of [...(this.#handlers.get(event) ?? [])]) (fn as (value: E[K]) => void)(value)
  }
}
