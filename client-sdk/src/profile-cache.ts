/** A user's profile; updatedAt (ms) is null for a user who never set one. */
export interface Profile {
  userId: string
  /** Show it instead of the user id when not null. */
  displayName: string | null
  /** A mediaId: mediaUrl gives its URLs. */
  avatar: string | null
  updatedAt: number | null
}

/** profile.get's answer (docs/protocol.md#profiles). */
export interface ProfilesAnswer {
  profiles: Profile[]
  notFound: string[]
}

/** profile.get takes 1 to this many ids a call (docs/protocol.md#profiles). */
export const PROFILES_PER_CALL = 1000

/**
 * The profiles a device has read or heard of, by user id: a name shown on every message costs
 * one profile.get for all, not one per render. Reads of ids being read share that request; a
 * profile is replaced only by one at least as new (updatedAt), so a late answer does not undo a
 * live change. Ids not found are not kept: the user may share a chat later.
 */
export class ProfileCache {
  readonly #ask: (userIds: string[]) => Promise<ProfilesAnswer>
  readonly #changed: (p: Profile) => void
  readonly #profiles = new Map<string, Profile>()
  readonly #asking = new Map<string, Promise<Profile | undefined>>()

  /**
   * `ask` sends one profile.get (at most PROFILES_PER_CALL ids); `changed` hears of each profile
   * that became known or changed.
   */
  constructor(ask: (userIds: string[]) => Promise<ProfilesAnswer>, changed: (p: Profile) => void) {
    this.#ask = ask
    this.#changed = changed
  }

  /**
   * The profiles of these users, in the order asked, each id once; ids the server did not find
   * in notFound. Rejects with the request's error. Ids outside what profile.get takes (none, over
   * PROFILES_PER_CALL) go to the server as asked, for its bad_request.
   */
  async get(userIds: string[]): Promise<ProfilesAnswer> {
    const ids = [...new Set(userIds)]
    if (ids.length === 0 || ids.length > PROFILES_PER_CALL) return this.#ask(userIds)
    const missing = ids.filter((u) => !this.#profiles.has(u) && !this.#asking.has(u))
    if (missing.length > 0) this.#read(missing).catch(() => {})
    const answers = await Promise.all(ids.map((u) => this.#profiles.get(u) ?? this.#asking.get(u)))
    const profiles: Profile[] = []
    const notFound: string[] = []
    ids.forEach((u, i) => {
      const p = answers[i]
      if (p) profiles.push({ ...p })
      else notFound.push(u)
    })
    return { profiles, notFound }
  }

  /** The cached profile of a user, or undefined when not read yet. */
  of(userId: string): Profile | undefined {
    const p = this.#profiles.get(userId)
    return p && { ...p }
  }

  get size(): number {
    return this.#profiles.size
  }

  /** Reads every cached profile again (after a reconnect: the server's events are live only). */
  async refresh(): Promise<void> {
    const ids = [...this.#profiles.keys()]
    const reads: Promise<unknown>[] = []
    for (let i = 0; i < ids.length; i += PROFILES_PER_CALL) {
      reads.push(this.#read(ids.slice(i, i + PROFILES_PER_CALL), true))
    }
    await Promise.all(reads)
  }

  /**
   * Takes a profile (a profile event, profile.set's answer) unless older (by updatedAt) than the
   * one held; tells `changed` when it is new or differs.
   */
  keep(p: Profile): void {
    const held = this.#profiles.get(p.userId)
    if (held && (held.updatedAt ?? -1) > (p.updatedAt ?? -1)) return
    const next: Profile = {
      userId: p.userId,
      displayName: p.displayName,
      avatar: p.avatar,
      updatedAt: p.updatedAt,
    }
    if (
      held &&
      held.displayName === next.displayName &&
      held.avatar === next.avatar &&
      held.updatedAt === next.updatedAt
    ) {
      return
    }
    this.#profiles.set(p.userId, next)
    this.#changed({ ...next })
  }

  /**
   * One profile.get; each id's answer waits in #asking meanwhile, for concurrent reads.
   * `refresh`: ids no longer found (no chat shared any more) leave the cache.
   */
  #read(ids: string[], refresh = false): Promise<unknown> {
    const asked = this.#ask(ids).then((r) => {
      for (const p of r.profiles) this.keep(p)
      if (refresh) for (const u of r.notFound) this.#profiles.delete(u)
      return r
    })
    for (const u of ids) {
      const one = asked.then((r) =>
        r.profiles.some((p) => p.userId === u) ? this.#profiles.get(u) : undefined,
      )
      this.#asking.set(u, one)
      const forget = () => {
        if (this.#asking.get(u) === one) this.#asking.delete(u)
      }
      one.then(forget, forget)
    }
    return asked
  }
}
