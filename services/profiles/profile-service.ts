import type { Logger } from 'pino'
import type { MembershipIndex } from '../chats/membership-index.ts'
import type { MediaCatalog, MediaRecord } from '../media/media-catalog.ts'
import type { ProfileEvent } from '../messages/wire.ts'
import { NatterError } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestContext, RequestRouter } from '../requests/router.ts'
import type { Profile, ProfileStore } from './profile-store.ts'

/** A profile as profile.get answers it; updatedAt is null for a user who never set one. */
export interface ProfileView {
  userId: string
  displayName: string | null
  avatar: string | null
  updatedAt: number | null
}

const view = (userId: string, p: Profile | undefined): ProfileView => ({
  userId,
  displayName: p?.displayName ?? null,
  avatar: p?.avatar ?? null,
  updatedAt: p?.updatedAt ?? null,
})

/**
 * Profiles: a display name and an avatar per user, set by the user (profile.set), read by the
 * user and by users who share a chat with them (profile.get). A change reaches the user's
 * other devices and chat partners as a profile event on their inbox, live only (like
 * receipts): a device that was offline reads profiles with profile.get.
 */
export class ProfileService {
  readonly #store: ProfileStore
  readonly #media: Pick<MediaCatalog, 'get'>
  readonly #index: Pick<MembershipIndex, 'chatsOf' | 'members' | 'shareChat'>
  readonly #toUsers: (event: ProfileEvent, to: string[]) => void
  readonly #ops: Operations
  readonly #log: Logger

  constructor(d: {
    store: ProfileStore
    /** The media catalogue: an avatar must be a ready image the user uploaded. */
    media: Pick<MediaCatalog, 'get'>
    index: Pick<MembershipIndex, 'chatsOf' | 'members' | 'shareChat'>
    /** Sends an event to the inbox of every connected device of these users, on every node. */
    toUsers: (event: ProfileEvent, to: string[]) => void
    ops: Operations
    log: Logger
  }) {
    this.#store = d.store
    this.#media = d.media
    this.#index = d.index
    this.#toUsers = d.toUsers
    this.#ops = d.ops
    this.#log = d.log
  }

  register(router: RequestRouter): void {
    router.register('profile.set', {
      params: this.#ops['profile.set'].params,
      handle: (ctx, p) => this.set(ctx, p),
    })
    router.register('profile.get', {
      params: this.#ops['profile.get'].params,
      handle: (ctx, p) => this.get(ctx, p.userIds),
    })
  }

  /**
   * Applies a partial change (undefined keeps a field, null clears it) and tells the user's
   * devices and chat partners. Errors: media_not_found when the avatar is not a ready media
   * the caller uploaded; unsupported_media_type when it is not an image.
   */
  async set(
    ctx: RequestContext,
    p: { displayName?: string | null | undefined; avatar?: string | null | undefined },
  ): Promise<{ profile: ProfileView }> {
    const userId = ctx.who.userId
    if (typeof p.avatar === 'string') this.#checkAvatar(userId, p.avatar, await this.#media.get(p.avatar))
    const profile = await this.#store.set({
      userId,
      ...(p.displayName !== undefined ? { displayName: p.displayName } : {}),
      ...(p.avatar !== undefined ? { avatar: p.avatar } : {}),
      at: Date.now(),
    })
    const to = this.#audience(userId)
    this.#toUsers(
      {
        type: 'profile',
        userId,
        displayName: profile.displayName,
        avatar: profile.avatar,
        updatedAt: profile.updatedAt,
      },
      to,
    )
    this.#log.info({ event: 'profile_set', userId, recipients: to.length })
    return { profile: view(userId, profile) }
  }

  #checkAvatar(userId: string, mediaId: string, record: MediaRecord | null): void {
    // Someone else's media is answered like a missing one: it does not tell what exists.
    if (!record || record.uploaderId !== userId || record.status !== 'ready') {
      throw new NatterError(
        'media_not_found',
        `no media ${mediaId} uploaded by you: an avatar is an image you uploaded (media.begin with purpose "avatar", the PUT, media.complete)`,
      )
    }
    if (record.kind !== 'image') {
      throw new NatterError(
        'unsupported_media_type',
        `an avatar is an image; ${mediaId} is ${record.contentType}`,
      )
    }
  }

  /** The user and everyone who shares a chat with them: who sees the user's profile. */
  #audience(userId: string): string[] {
    const to = new Set([userId])
    for (const chatId of this.#index.chatsOf(userId)) for (const u of this.#index.members(chatId)) to.add(u)
    return [...to]
  }

  /**
   * The profiles the caller may see, in the order asked (each id once); every other id, a
   * stranger or a user that does not exist alike, is in notFound.
   */
  async get(
    ctx: RequestContext,
    userIds: string[],
  ): Promise<{ profiles: ProfileView[]; notFound: string[] }> {
    const me = ctx.who.userId
    const wanted = [...new Set(userIds)]
    const visible = wanted.filter((u) => this.#index.shareChat(me, u))
    const stored = new Map((await this.#store.get(visible)).map((p) => [p.userId, p]))
    return {
      profiles: visible.map((u) => view(u, stored.get(u))),
      notFound: wanted.filter((u) => !this.#index.shareChat(me, u)),
    }
  }

  /** Whether userId may download media `record` as someone's avatar: it shares a chat with an owner. */
  async mayReadAvatar(record: MediaRecord, userId: string): Promise<boolean> {
    if (record.kind !== 'image') return false
    for (const owner of await this.#store.avatarOwners(record.id)) {
      if (this.#index.shareChat(owner, userId)) return true
    }
    return false
  }
}
