import { useEffect, useState } from 'preact/hooks'
import type { NatterClient, Profile } from '../client-sdk/src/index.ts'

// profile.get takes up to 1,000 ids a call.
const PER_CALL = 1000

/**
 * Profiles of the users on screen: display names (null: none set) and avatars (a mediaId, or
 * null), read with getProfiles in batches and kept from profile events; components follow one
 * user each (useName, useAvatar), so a new name or avatar redraws only where it shows.
 */
export class Names {
  readonly #names = new Map<string, string | null>()
  readonly #avatars = new Map<string, string | null>()
  readonly #listeners = new Map<string, Set<() => void>>()
  readonly #wanted = new Set<string>()
  #timer: ReturnType<typeof setTimeout> | undefined

  readonly client: NatterClient

  constructor(client: NatterClient) {
    this.client = client
    client.on('profile', (p) => this.#set(p))
    // Profile events are live only: after a reconnect the names shown are read again.
    client.on('state', (s) => {
      if (s === 'connected') this.#load([...this.#names.keys()])
    })
  }

  /** The user's display name, else their id; asks the server for users not known yet. */
  nameOf(userId: string): string {
    const n = this.#names.get(userId)
    if (n === undefined) this.want(userId)
    return n ?? userId
  }

  /** The mediaId of the user's avatar (docs/protocol.md#profiles), null when none is known. */
  avatarOf(userId: string): string | null {
    if (!this.#names.has(userId)) this.want(userId)
    return this.#avatars.get(userId) ?? null
  }

  /** Whether the user has a display name (known so far). */
  hasName(userId: string): boolean {
    return typeof this.#names.get(userId) === 'string'
  }

  want(userId: string): void {
    if (this.#names.has(userId) || this.#wanted.has(userId)) return
    this.#wanted.add(userId)
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined
      const ids = [...this.#wanted]
      this.#wanted.clear()
      this.#load(ids)
    }, 10)
  }

  subscribe(userId: string, f: () => void): () => void {
    let set = this.#listeners.get(userId)
    if (!set) {
      set = new Set()
      this.#listeners.set(userId, set)
    }
    set.add(f)
    return () => set.delete(f)
  }

  set(p: Profile): void {
    this.#set(p)
  }

  #set(p: Profile): void {
    if (
      this.#names.has(p.userId) &&
      this.#names.get(p.userId) === p.displayName &&
      (this.#avatars.get(p.userId) ?? null) === p.avatar
    ) {
      return
    }
    this.#names.set(p.userId, p.displayName)
    this.#avatars.set(p.userId, p.avatar)
    for (const f of this.#listeners.get(p.userId) ?? []) f()
  }

  #load(ids: string[]): void {
    for (let i = 0; i < ids.length; i += PER_CALL) {
      this.client.getProfiles(ids.slice(i, i + PER_CALL)).then(
        ({ profiles, notFound }) => {
          for (const p of profiles) this.#set(p)
          for (const u of notFound) this.#set({ userId: u, displayName: null, avatar: null, updatedAt: null })
        },
        () => {
          // Not connected yet, or a refusal: asked again in a second.
          setTimeout(() => {
            for (const u of ids) if (!this.#names.has(u)) this.want(u)
          }, 1000)
        },
      )
    }
  }
}

/** Re-renders the component when the user's display name changes. */
export function useName(names: Names, userId: string): string {
  const [, bump] = useState(0)
  useEffect(() => {
    const off = names.subscribe(userId, () => bump((n) => n + 1))
    // A name that came between the render and the subscription.
    bump((n) => n + 1)
    return off
  }, [names, userId])
  return names.nameOf(userId)
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
  useEffect(() => {
    const offs = userIds.map((u) => names.subscribe(u, () => bump((n) => n + 1)))
    // Names that came between the render and the subscription.
    bump((n) => n + 1)
    return () => {
      for (const off of offs) off()
    }
  }, [names, key])
  return (u) => names.nameOf(u)
}
