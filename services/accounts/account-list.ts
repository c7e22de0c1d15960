import type { AccountStatus } from './account-store.ts'

/** Why an account may not connect: an erasing account is refused as erased. */
export type AccountRefusal = 'banned' | 'erased'

/**
 * The status of every banned, erasing and erased account, in memory: a CONNECT and an HTTP call
 * are checked against it without a store lookup, and no packet after the CONNECT is checked at
 * all (the account's connections are closed instead, broker/account-wiring.ts). Loaded from the
 * account store at start, kept current by the announcements of every change and a reload every
 * minute. Memory: one entry per banned or erased user.
 */
export class AccountList {
  readonly #status = new Map<string, AccountStatus>()

  /** Replaces every entry with these (the store's records, at start and at each resync). */
  load(records: Iterable<{ userId: string; status: AccountStatus }>): void {
    this.#status.clear()
    for (const r of records) this.#status.set(r.userId, r.status)
  }

  /** Sets one user's status; null: in good standing again (an unban). */
  set(userId: string, status: AccountStatus | null): void {
    if (status === null) this.#status.delete(userId)
    else this.#status.set(userId, status)
  }

  status(userId: string): AccountStatus | null {
    return this.#status.get(userId) ?? null
  }

  /** Why the account may not connect, or null when it may. */
  refusal(userId: string): AccountRefusal | null {
    const s = this.#status.get(userId)
    if (s === undefined) return null
    return s === 'banned' ? 'banned' : 'erased'
  }
}
