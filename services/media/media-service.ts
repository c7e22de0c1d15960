import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { MediaInfo } from '../../client-sdk/src/index.ts'
import { isEncryptedChat } from '../chats/encrypted-chats.ts'
import type { MediaTelemetry } from '../metrics/media-metrics.ts'
import { NatterError } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestContext, RequestRouter } from '../requests/router.ts'
import { InvalidImageError, imageFacts } from './image-facts.ts'
import type { MediaCatalog, MediaFacts, MediaRecord, SweepCutoffs } from './media-catalog.ts'
import { acceptedTypes, contentDisposition, kindOf, type MediaKind, mediaKinds } from './media-kinds.ts'
import type { ObjectStore } from './object-store.ts'

/** The only content type of an encrypted chat's media on the server (client-sdk/src/mls/encrypted-media.ts). */
const ENCRYPTED_MEDIA_TYPE = 'application/octet-stream'
const HOUR = 3600_000
const DAY = 24 * HOUR
// A pending upload may still be completed this long after its URL expired (a slow last PUT).
const COMPLETE_GRACE_MS = HOUR
// Uploaded but never sent: kept this long for an outbox that sends later.
const UNSENT_KEEP_MS = 7 * DAY
const SWEEP_BATCH = 100

export interface MediaLimits {
  maxBytes: Record<MediaKind, number>
  uploadUrlSeconds: number
  downloadUrlSeconds: number
  /** Message retention: media last sent longer ago than this is deleted with its messages. */
  retentionDays: number
}

/** Whether a user is a member of a chat now. */
export type IsMember = (chatId: string, userId: string) => boolean | Promise<boolean>

/** Uses of media beyond chat messages (avatars: services/profiles/). */
export interface MediaServiceHooks {
  /** Whether userId may download this ready media although no chat of theirs carried it. */
  alsoReadable?: (record: MediaRecord, userId: string) => Promise<boolean>
  /** Whether the sweep must keep this media although no message needs it (an avatar in use). */
  keep?: (mediaId: string) => Promise<boolean>
}

const newMediaId = () => `m_${randomBytes(16).toString('base64url')}`
/** Where a media's bytes are in the object store. */
export const objectKey = (id: string) => `m/${id}`
const thumbnailKey = (id: string) => `m/${id}.thumb.webp`

function info(r: MediaRecord): MediaInfo {
  return {
    id: r.id,
    kind: r.kind,
    contentType: r.contentType,
    size: r.size,
    sha256: r.sha256,
    name: r.name,
    width: r.width,
    height: r.height,
    durationMs: r.durationMs,
    uploaderId: r.uploaderId,
    createdAt: r.createdAt,
  }
}

const notFound = (id: string) => new NatterError('media_not_found', `no media ${id}, or you may not see it`)

/**
 * Media beside the chat: uploads through signed URLs straight to the object store, checked on
 * completion, de-duplicated per uploader by SHA-256, downloadable by the members of the chats
 * they were sent in, and deleted once the messages that sent them are gone. A profile photo is
 * uploaded without a chat (purpose "avatar"); the hooks let its owner's chat partners read it
 * and keep it while it is the avatar (services/profiles/).
 */
export class MediaService {
  readonly #catalog: MediaCatalog
  readonly #objects: ObjectStore
  readonly #limits: MediaLimits
  readonly #isMember: IsMember
  readonly #ops: Operations
  readonly #log: Logger
  readonly #telemetry: MediaTelemetry | undefined
  readonly #alsoReadable: MediaServiceHooks['alsoReadable']
  readonly #keep: MediaServiceHooks['keep']

  constructor(
    d: {
      catalog: MediaCatalog
      objects: ObjectStore
      limits: MediaLimits
      isMember: IsMember
      ops: Operations
      log: Logger
      telemetry?: MediaTelemetry
    } & MediaServiceHooks,
  ) {
    this.#telemetry = d.telemetry
    this.#alsoReadable = d.alsoReadable
    this.#keep = d.keep
    this.#catalog = d.catalog
    this.#objects = d.objects
    this.#limits = d.limits
    this.#isMember = d.isMember
    this.#ops = d.ops
    this.#log = d.log
  }

  register(router: RequestRouter): void {
    const ops = this.#ops
    router.register('media.begin', {
      params: ops['media.begin'].params,
      handle: (ctx, p) => this.begin(ctx, p),
    })
    router.register('media.complete', {
      params: ops['media.complete'].params,
      handle: (ctx, p) => this.complete(ctx, p.mediaId),
    })
    router.register('media.get', {
      params: ops['media.get'].params,
      handle: (ctx, p) => this.get(ctx, p.mediaId),
    })
  }

  /**
   * Starts an upload (docs/protocol.md#media): for a chat the caller is a member of (`chatId`),
   * or of a profile photo (`purpose: "avatar"`, no chat needed: images only, within the image
   * cap). Exactly one of the two; the router's schema enforces it. The same bytes uploaded by the
   * caller before, as the same type and size, come back ready, whatever they were first uploaded for. Errors:
   * unsupported_media_type (a type not accepted, or not an image for an avatar), too_large (over
   * the kind's cap, in bytes), chat_not_found (not a member); for an end-to-end encrypted chat also
   * the rules of #checkEncrypted (docs/e2ee.md §10). The same bytes begun under another
   * content type or size are a record of their own beside the first (pending or ready), uploaded
   * and checked on their own; a pending one under the same type and size is continued (a new URL).
   */
  async begin(
    ctx: RequestContext,
    p: {
      chatId?: string | undefined
      purpose?: 'avatar' | undefined
      sha256: string
      size: number
      contentType: string
      name?: string | undefined
      durationMs?: number | undefined
    },
  ) {
    const userId = ctx.who.userId
    if (p.chatId !== undefined && isEncryptedChat(p.chatId)) this.#checkEncrypted(p.chatId, p)
    const kind = kindOf(p.contentType)
    if (!kind) {
      const accepted = mediaKinds.map((k) => acceptedTypes(k).join(', ')).join(', ')
      throw new NatterError(
        'unsupported_media_type',
        `${p.contentType} is not accepted; accepted: ${accepted}`,
      )
    }
    if (p.purpose === 'avatar' && kind !== 'image') {
      throw new NatterError(
        'unsupported_media_type',
        `a profile photo is an image (${acceptedTypes('image').join(', ')}); ${p.contentType} is not`,
      )
    }
    const max = this.#limits.maxBytes[kind]
    if (p.size > max)
      throw new NatterError(
        'too_large',
        `${kind} uploads are limited to ${max} bytes; this one has ${p.size}`,
      )
    if (p.purpose !== 'avatar') {
      // Reached only by a direct call that skipped the router's schema.
      if (p.chatId === undefined) throw new NatterError('bad_request', 'name a chatId, or purpose "avatar"')
      if (!(await this.#isMember(p.chatId, userId))) {
        throw new NatterError('chat_not_found', `no chat ${p.chatId}, or you are not a member`)
      }
    }
    const now = Date.now()
    const expiresAt = now + this.#limits.uploadUrlSeconds * 1000
    const begin = () =>
      this.#catalog.begin({
        id: newMediaId(),
        uploaderId: userId,
        sha256: p.sha256,
        size: p.size,
        contentType: p.contentType,
        kind,
        name: p.name ?? null,
        createdAt: now,
        expiresAt: expiresAt + COMPLETE_GRACE_MS,
        durationMs: kind === 'audio' || kind === 'video' ? (p.durationMs ?? null) : null,
      })
    let { record } = await begin()
    if (record.status === 'deleting') {
      // The sweep is deleting the uploader's earlier copy: finish that, and start afresh.
      await this.#purge(record)
      ;({ record } = await begin())
    }
    if (record.status === 'ready') {
      this.#telemetry?.upload(record.kind, 'duplicate', 0)
      return { mediaId: record.id, status: 'ready' as const, media: info(record) }
    }
    await this.#catalog.extend(record.id, expiresAt + COMPLETE_GRACE_MS)
    const upload = await this.#objects.signPut(objectKey(record.id), {
      sha256: record.sha256,
      size: record.size,
      contentType: record.contentType,
      expiresInSeconds: this.#limits.uploadUrlSeconds,
    })
    return { mediaId: record.id, status: 'upload' as const, upload: { ...upload, expiresAt } }
  }

  /**
   * An upload for an end-to-end encrypted chat is the client's ciphertext (docs/e2ee.md, "Media"):
   * its type is ENCRYPTED_MEDIA_TYPE (the real one goes inside the message: a type the server
   * knew would also send an image down the decoding and thumbnail path, which ciphertext fails),
   * and it has no `name` and no `durationMs`, which the server must not learn. So the server
   * stores no more than the ciphertext's size and hash; the file cap is its size limit.
   * Errors: unsupported_media_type (another type), not_allowed (a name or a duration).
   */
  #checkEncrypted(
    chatId: string,
    p: { contentType: string; name?: string | undefined; durationMs?: number | undefined },
  ): void {
    if (p.contentType !== ENCRYPTED_MEDIA_TYPE)
      throw new NatterError(
        'unsupported_media_type',
        `chat ${chatId} is end-to-end encrypted: upload the encrypted bytes as ${ENCRYPTED_MEDIA_TYPE}; the real type goes inside the message, not ${p.contentType}`,
      )
    if (p.name !== undefined)
      throw new NatterError(
        'not_allowed',
        `chat ${chatId} is end-to-end encrypted: the server must not learn file names; the name goes inside the message`,
      )
    if (p.durationMs !== undefined)
      throw new NatterError(
        'not_allowed',
        `chat ${chatId} is end-to-end encrypted: durationMs goes inside the message, not to the server`,
      )
  }

  async complete(ctx: RequestContext, mediaId: string) {
    const record = await this.#catalog.get(mediaId)
    if (!record || record.uploaderId !== ctx.who.userId || record.status === 'deleting')
      throw notFound(mediaId)
    if (record.status === 'ready') return { mediaId, status: 'ready' as const, media: info(record) }
    const key = objectKey(mediaId)
    const stored = await this.#objects.head(key)
    if (!stored) {
      throw new NatterError(
        'upload_incomplete',
        `nothing has been uploaded for ${mediaId} yet: PUT the bytes to the upload URL`,
      )
    }
    const facts = await this.#check(record, stored)
    const ready =
      (await this.#catalog.complete(mediaId, facts, Date.now())) ?? (await this.#catalog.get(mediaId))
    if (ready?.status !== 'ready') throw notFound(mediaId)
    this.#telemetry?.upload(ready.kind, 'ready', ready.size)
    this.#log.info({
      event: 'media_ready',
      mediaId,
      kind: ready.kind,
      size: ready.size,
      uploaderId: ready.uploaderId,
    })
    return { mediaId, status: 'ready' as const, media: info(ready) }
  }

  /** Checks the stored bytes against the declared ones, and learns what it can of an image. */
  async #check(
    record: MediaRecord,
    stored: { size: number; sha256: string | undefined },
  ): Promise<MediaFacts> {
    const key = objectKey(record.id)
    const refuse = async (code: 'checksum_mismatch' | 'invalid_image', message: string): Promise<never> => {
      this.#telemetry?.upload(record.kind, code, 0)
      await this.#objects.remove(key)
      throw new NatterError(code, message)
    }
    if (stored.size !== record.size) {
      return refuse('checksum_mismatch', `${stored.size} bytes were stored, not the declared ${record.size}`)
    }
    if (stored.sha256 !== undefined && stored.sha256 !== record.sha256) {
      return refuse('checksum_mismatch', 'the stored bytes do not have the declared SHA-256')
    }
    if (record.kind !== 'image' && stored.sha256 !== undefined)
      return { width: null, height: null, hasThumbnail: false }
    // Images are read anyway for their thumbnail; other objects only when the store keeps no checksum.
    const bytes = await this.#objects.read(key, record.size)
    if (!bytes) throw new NatterError('upload_incomplete', `nothing has been uploaded for ${record.id} yet`)
    if (createHash('sha256').update(bytes).digest('hex') !== record.sha256) {
      return refuse('checksum_mismatch', 'the stored bytes do not have the declared SHA-256')
    }
    if (record.kind !== 'image') return { width: null, height: null, hasThumbnail: false }
    try {
      const image = await imageFacts(bytes, record.contentType)
      await this.#objects.write(thumbnailKey(record.id), image.thumbnail, 'image/webp')
      return { width: image.width, height: image.height, hasThumbnail: true }
    } catch (err) {
      if (err instanceof InvalidImageError) return refuse('invalid_image', err.message)
      throw err
    }
  }

  async get(ctx: RequestContext, mediaId: string) {
    const record = await this.#catalog.get(mediaId)
    if (!record || !(await this.#mayUse(record, ctx.who.userId))) throw notFound(mediaId)
    const expiresInSeconds = this.#limits.downloadUrlSeconds
    const url = await this.#objects.signGet(objectKey(mediaId), {
      expiresInSeconds,
      contentType: record.contentType,
      disposition: contentDisposition(record.kind, record.name),
    })
    const thumbnailUrl = record.hasThumbnail
      ? await this.#objects.signGet(thumbnailKey(mediaId), {
          expiresInSeconds,
          contentType: 'image/webp',
          disposition: 'inline',
        })
      : null
    return { media: info(record), url, thumbnailUrl, expiresAt: Date.now() + expiresInSeconds * 1000 }
  }

  /** Ready, and the user uploaded it, is a member of a chat it was sent in, or a hook allows it (avatars). */
  async #mayUse(record: MediaRecord, userId: string): Promise<boolean> {
    if (record.status !== 'ready') return false
    if (record.uploaderId === userId) return true
    for (const chatId of await this.#catalog.chatsOf(record.id)) {
      if (await this.#isMember(chatId, userId)) return true
    }
    return (await this.#alsoReadable?.(record, userId)) ?? false
  }

  /**
   * Lets a message in chatId carry these media: each must be ready and usable by the sender
   * (its own, or from a chat the sender is in: forwarding). Returns the first that is not,
   * or null when all are, and are now recorded as sent in the chat.
   */
  async attach(userId: string, chatId: string, mediaIds: string[], at: number): Promise<string | null> {
    const ids = [...new Set(mediaIds)]
    for (const id of ids) {
      const record = await this.#catalog.get(id)
      if (!record || !(await this.#mayUse(record, userId))) return id
    }
    for (const id of ids) {
      // A sweep may have taken it since the check: reference() refuses media no longer ready.
      if (!(await this.#catalog.reference(id, chatId, at))) return id
    }
    return null
  }

  /**
   * Deletes expired uploads and media no message needs any more: never sent within a week of
   * upload, or last sent before the message retention. Returns how many went.
   */
  async sweep(now = Date.now()): Promise<number> {
    const cutoffs: SweepCutoffs = {
      now,
      unsentBefore: now - UNSENT_KEEP_MS,
      // An hour's margin, so the media outlives the last message that shows it.
      sentBefore: now - this.#limits.retentionDays * DAY - HOUR,
    }
    let removed = 0
    // Each record is tried once per sweep, so a store that keeps failing cannot loop it.
    const seen = new Set<string>()
    for (;;) {
      const batch = (await this.#catalog.due(cutoffs, SWEEP_BATCH + seen.size)).filter((r) => !seen.has(r.id))
      if (batch.length === 0) break
      for (const record of batch) {
        seen.add(record.id)
        try {
          if (await this.#keep?.(record.id)) continue
          if (!(await this.#catalog.markDeleting(record.id, cutoffs))) continue
          await this.#purge(record)
          removed++
        } catch (err) {
          this.#log.error({ err, mediaId: record.id }, 'could not delete media; the next sweep tries again')
        }
      }
    }
    if (removed > 0) this.#telemetry?.deleted(removed)
    return removed
  }

  /**
   * Deletes a media now, whoever uses it (an account erase): its objects (the bytes and the
   * thumbnail) from the object store, then its catalog record. Idempotent.
   */
  async remove(record: MediaRecord): Promise<void> {
    await this.#purge(record)
  }

  /** Objects first, then the record: a crash in between leaves a record the next sweep finishes. */
  async #purge(record: MediaRecord): Promise<void> {
    await this.#objects.remove(thumbnailKey(record.id))
    await this.#objects.remove(objectKey(record.id))
    await this.#catalog.remove(record.id)
  }
}
