import { useEffect, useState } from 'preact/hooks'
import type { NatterClient, Profile } from '../client-sdk/src/index.ts'

/** profile.get takes up to this many ids a call (docs/protocol.md#profiles). */
const PER_CALL = 1000
/** Ids asked for within this long (ms) of the first go in one getProfiles call. */
const BATCH_MS = 10

/**
 * Display names and avatars of the users on screen, from the SDK's profile cache
 * (`client.profileOf`, kept current by `profile` events and read again after each reconnect).
 * Users not in the cache yet are asked for with `getProfiles`, those named within 10 ms in one
 * call; components follow one user each (useName, useAvatar), so a new name or avatar redraws
 * only where it shows.
 */
export class Names {
  readonly #listeners = new Map<string, Set<() => void>>()
  /** Asked for, no answer yet: not asked again meanwhile. */
  readonly #asking = new Set<string>()
  /** Not found by the server (no chat shared): not asked again until the next reconnect. */
  readonly #notFound = new Set<string>()
  /**
   * The last profile seen of each user shown: the SDK's cache drops a user who shares no chat
   * any more (a group one was removed from), whose messages still show under their name.
   */
  readonly #last = new Map<string, Profile>()
  /** Ids to ask for in the next batch. */
  readonly #wanted = new Set<string>()
  #timer: ReturnType<typeof setTimeout> | undefined

  readonly client: NatterClient

  constructor(client: NatterClient) {
    this.client = client
    client.on('profile', (p) => {
      this.#last.set(p.userId, p)
      for (const f of this.#listeners.get(p.userId) ?? []) f()
    })
    client.on('state', (s) => {
      if (s !== 'connected') return
      // A user not found before may share a chat now; asks that failed offline go out now.
      const again = [...this.#notFound, ...this.#listeners.keys()].filter((u) => !client.profileOf(u))
      this.#notFound.clear()
      for (const u of again) this.want(u)
    })
  }

  /** The user's profile from the SDK's cache, else the last one seen; asks for users not cached. */
  profileOf(userId: string): Profile | undefined {
    const p = this.client.profileOf(userId)
    if (!p) this.want(userId)
    return p ?? this.#last.get(userId)
  }

  /** The user's display name, else their id. */
  nameOf(userId: string): string {
    return this.profileOf(userId)?.displayName ?? userId
  }

  /** The mediaId of the user's avatar (docs/protocol.md#profiles), null when none is known. */
  avatarOf(userId: string): string | null {
    return this.profileOf(userId)?.avatar ?? null
  }

  /** Whether the user has a display name (known so far). */
  hasName(userId: string): boolean {
    return typeof this.profileOf(userId)?.displayName === 'string'
  }

  /** Asks for the user's profile in the next batch, unless cached, being asked for or not found. */
  want(userId: string): void {
    if (this.#asking.has(userId) || this.#notFound.has(userId) || this.#wanted.has(userId)) return
    if (this.client.profileOf(userId)) return
    this.#wanted.add(userId)
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined
      const ids = [...this.#wanted]
      this.#wanted.clear()
      for (let i = 0; i < ids.length; i += PER_CALL) this.#ask(ids.slice(i, i + PER_CALL))
    }, BATCH_MS)
  }

  /** Calls f whenever the user's profile becomes known or changes; returns the unsubscribe. */
  subscribe(userId: string, f: () => void): () => void {
    let set = this.#listeners.get(userId)
    if (!set) {
      set = new Set()
      this.#listeners.set(userId, set)
    }
    set.add(f)
    return () => {
      set.delete(f)
      if (set.size === 0) this.#listeners.delete(userId)
    }
  }

  #ask(ids: string[]): void {
    for (const u of ids) this.#asking.add(u)
    // The profiles found come back as `profile` events from the cache, which redraw their users.
    this.client.getProfiles(ids).then(
      ({ notFound }) => {
        for (const u of ids) this.#asking.delete(u)
        for (const u of notFound) this.#notFound.add(u)
      },
      () => {
        // Not connected (an offline start), or a timeout: asked again at the next connect, and
        // in a second in case the connection never dropped.
        for (const u of ids) this.#asking.delete(u)
        setTimeout(() => {
          for (const u of ids) this.want(u)
        }, 1000)
      },
    )
  }
}

/** What of a user's profile shows: changes when their name or avatar does. */
function shownOf(names: Names, userIds: readonly string[]): string {
  return userIds
    .map((u) => {
      const p = names.profileOf(u)
      return p ? `${p.displayName}\u0000${p.avatar}` : ''
    })
    .join('\u0001')
}

/** Re-renders the component when the user's display name or avatar changes. */
export function useName(names: Names, userId: string): string {
  return useNames(names, [userId])(userId)
}

/** Re-renders the component when the user's avatar changes: its mediaId, or null. */
export function useAvatar(names: Names, userId: string): string | null {
  useName(names, userId)
  return names.avatarOf(userId)
}

/** Re-renders when any of these users' names change. */
export function useNames(names: Names, userIds: readonly string[]): (userId: string) => string {
  const [, bump] = useState(0)
  const key = userIds.join(',')
  const shown = shownOf(names, userIds)
  useEffect(() => {
    const offs = userIds.map((u) => names.subscribe(u, () => bump((n) => n + 1)))
    // Profiles that came between the render and the subscriptions.
    if (shownOf(names, userIds) !== shown) bump((n) => n + 1)
    return () => {
      for (const off of offs) off()
    }
  }, [names, key])
  return (u) => names.nameOf(u)
}
