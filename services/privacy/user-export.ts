import { Readable, Transform, type Writable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { ZipFile } from 'yazl'
import type { AccountRecord, AccountStatus } from '../accounts/account-store.ts'
import type { BlockStore } from '../blocks/block-store.ts'
import type { ChatKind, ChatStore, Role } from '../chats/chat-store.ts'
import type { DeliveryStore } from '../delivery/delivery-store.ts'
import type { MediaCatalog, MediaRecord, MediaStatus } from '../media/media-catalog.ts'
import { objectKey } from '../media/media-service.ts'
import type { ObjectStore } from '../media/object-store.ts'
import type { MessageStore, StoredMessage } from '../messages/message-store.ts'
import type { Profile, ProfileStore } from '../profiles/profile-store.ts'
import type { PushStore, Registration } from '../push/push-store.ts'

/**
 * A user's export: everything Natter holds about one user, as one zip archive streamed to a
 * Writable (an HTTP response, a file), in bounded memory whatever the number of messages or the
 * size of the media (docs/admin.md#export).
 */

/** What an export reads: the stores of a node (broker/node.ts), each only for what it needs here. */
export interface ExportDeps {
  profiles: Pick<ProfileStore, 'get'>
  delivery: Pick<DeliveryStore, 'devices'>
  push: Pick<PushStore, 'registrationsOf' | 'mutes'>
  blocks: Pick<BlockStore, 'blockedBy'>
  chats: Pick<ChatStore, 'chatsEver'>
  messages: Pick<MessageStore, 'sentBy'>
  media: Pick<MediaCatalog, 'uploadedBy'>
  objects: Pick<ObjectStore, 'stream'>
  /** The account's state (services/accounts/account-service.ts status): null in good standing. */
  accounts: { status(userId: string): Promise<AccountRecord | null> }
  /** ms since the epoch; tests pin it. */
  now?: () => number
}

/** What an export held, for the audit log. */
export interface ExportSummary {
  userId: string
  /** Chats the user is or was a member of. */
  chats: number
  /** Messages the user sent, tombstones included. */
  messages: number
  /** Media the user uploaded (records, whatever their status). */
  media: number
  /** Media files in the archive (uploaded and still in the object store). */
  mediaFiles: number
  /** Size of the archive written, bytes. */
  bytes: number
}

/** One device as devices.list shows it (docs/protocol.md#devices), without `current`. Times in ms. */
export interface ExportedDevice {
  deviceId: string
  firstSeenAt: number
  lastSeenAt: number
  connected: boolean
  push: 'fcm' | 'apns' | null
}

/** One chat of the user in user.json. Times in ms since the epoch. */
export interface ExportedChat {
  chatId: string
  kind: ChatKind
  /** Groups' name; null for direct chats. */
  name: string | null
  /** Their role now; null when they are no longer a member. */
  role: Role | null
  /** When they joined (the latest time); null when they are no longer a member. */
  joinedAt: number | null
  /** Whether they are still a member (false: left or removed). */
  member: boolean
  readSeq: number
  deliveredSeq: number
  /** Whether they muted its notifications. */
  muted: boolean
  /** Path in the archive of the messages they sent in it. */
  messages: string
  messageCount: number
}

/** One media record in user.json. */
export interface ExportedMedia {
  id: string
  /** The file name the user gave, or null. */
  name: string | null
  contentType: string
  /** bytes */
  size: number
  /** 64 hex digits: the SHA-256 of the file's bytes. */
  sha256: string
  createdAt: number
  status: MediaStatus
  /** Path of its bytes in the archive; null when it was never uploaded or is no longer stored. */
  file: string | null
}

/** One message in messages/<chatId>.json: the user's own words, as they sent them. */
export interface ExportedMessage {
  seq: number
  /** Server time of acceptance, ms. */
  at: number
  clientMsgId: string
  deviceId: string
  /** null once deleted, or for a message of media only. */
  text: string | null
  editedAt: number | null
  deletedAt: number | null
  /** The seq of the message it replies to. */
  replyTo?: number
  /** Media ids attached (their files are under media/ when the user uploaded them). */
  media?: string[]
}

/** user.json, the archive's index. */
export interface ExportedUser {
  userId: string
  exportedAt: number
  about: string
  /** The account's state an operator set; null in good standing. */
  account: { status: AccountStatus; since: number; reason: string | null } | null
  profile: Profile | null
  devices: ExportedDevice[]
  pushRegistrations: Registration[]
  /** Users this user blocks, with when (ms). */
  blocks: { userId: string; at: number }[]
  chats: ExportedChat[]
  media: ExportedMedia[]
}

/** Messages per sentBy call: one page in memory at a time. */
const PAGE = 500

const ABOUT =
  'What Natter holds about this user: account state (banned, erased) if any, profile, devices, ' +
  'push registrations, the users they block, the chats they are or were a member of with their read and ' +
  'delivered positions, every message they sent (messages/<chatId>.json, deleted ones as tombstones with ' +
  'text null) and the files they uploaded (media/). Not included: messages sent by others, which are ' +
  "their authors' data; the operators' audit log; the last-seen time, overwritten at every connect; and " +
  'what the server derives to run (search terms, delivery positions per device, push jobs). ' +
  'Times are milliseconds since the Unix epoch.'

const EXTENSIONS: Record<string, string> = {
  'image/jpeg': '.jpg',
  'image/png': '.png',
  'image/webp': '.webp',
  'image/gif': '.gif',
  'image/avif': '.avif',
  'video/mp4': '.mp4',
  'video/webm': '.webm',
  'video/quicktime': '.mov',
  'audio/mpeg': '.mp3',
  'audio/mp4': '.m4a',
  'audio/aac': '.aac',
  'audio/ogg': '.ogg',
  'audio/webm': '.weba',
  'audio/wav': '.wav',
  'application/pdf': '.pdf',
  'application/zip': '.zip',
  'text/plain': '.txt',
  'text/csv': '.csv',
  'application/msword': '.doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': '.docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': '.xlsx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': '.pptx',
}

/** The archive path of a media's bytes: by id (names are the user's and may clash), with the type's extension. */
export const mediaPath = (m: Pick<MediaRecord, 'id' | 'contentType'>): string =>
  `media/${m.id}${EXTENSIONS[m.contentType] ?? '.bin'}`

/** The archive path of the messages the user sent in a chat. */
export const messagesPath = (chatId: string): string => `messages/${chatId}.json`

/**
 * Writes the export of userId to out as a zip: user.json (ExportedUser), messages/<chatId>.json
 * (an array of ExportedMessage per chat, ascending by seq) and media/<id><ext> (the bytes of
 * each ready media the user uploaded). Messages are read PAGE at a time and media streamed from
 * the object store, one entry at a time, at out's pace (backpressure).
 *
 * An unknown user is not an error: the archive holds a user.json with profile null and empty
 * lists. Everything but the messages and the media bytes is read before the first byte is
 * written, so a store that is down rejects with out untouched (the caller can still answer
 * 500/503). A failure later (a store or the object store failing mid-way, out closing) rejects
 * and destroys out: the archive is cut before its central directory, so no unzip takes it for
 * whole. out is ended on success.
 */
export async function exportUser(userId: string, deps: ExportDeps, out: Writable): Promise<ExportSummary> {
  const exportedAt = (deps.now ?? Date.now)()
  const [account, profiles, sessions, registrations, mutes, blocks, chats, uploads] = await Promise.all([
    deps.accounts.status(userId),
    deps.profiles.get([userId]),
    deps.delivery.devices(userId),
    deps.push.registrationsOf(userId),
    deps.push.mutes([userId]),
    deps.blocks.blockedBy(userId),
    deps.chats.chatsEver(userId),
    deps.media.uploadedBy(userId),
  ])
  const platform = new Map(registrations.map((r) => [r.deviceId, r.platform]))
  const muted = new Set(mutes.filter((m) => m.userId === userId).map((m) => m.chatId))

  const zip = new ZipFile()
  let bytes = 0
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length
      done(null, chunk)
    },
  })
  const written = pipeline(zip.outputStream as Readable, counted, out)
  // The entry being copied: destroyed when out fails, so that its copy stops waiting.
  let current: Readable | undefined
  // Rejects when out or the zip fails; never resolves (success is produce's to report).
  const failed = new Promise<never>((_resolve, reject) => {
    const fail = (err: Error) => {
      current?.destroy(err)
      reject(err)
    }
    written.catch(fail)
    zip.on('error', fail)
  })
  // Entries are added one at a time, each once the previous one was read whole: one source open.
  const add = async (source: Readable, name: string, compress: boolean): Promise<void> => {
    current = source
    zip.addReadStream(source, name, { compress, mtime: new Date(exportedAt) })
    await finished(source)
  }

  const produce = async (): Promise<ExportSummary> => {
    const exportedChats: ExportedChat[] = []
    let messages = 0
    for (const c of chats) {
      let count = 0
      await add(
        Readable.from(
          jsonArray(sentBy(deps.messages, c.chat.id, userId), () => {
            count++
          }),
        ),
        messagesPath(c.chat.id),
        true,
      )
      messages += count
      exportedChats.push({
        chatId: c.chat.id,
        kind: c.chat.kind,
        name: c.chat.name,
        role: c.member?.role ?? null,
        joinedAt: c.member?.joinedAt ?? null,
        member: c.member !== null,
        readSeq: c.cursor.readSeq,
        deliveredSeq: c.cursor.deliveredSeq,
        muted: muted.has(c.chat.id),
        messages: messagesPath(c.chat.id),
        messageCount: count,
      })
    }
    const media: ExportedMedia[] = []
    let mediaFiles = 0
    for (const m of uploads) {
      const source = m.status === 'ready' ? await deps.objects.stream(objectKey(m.id)) : null
      // Media files are mostly compressed already: stored as they are.
      if (source) {
        await add(source, mediaPath(m), false)
        mediaFiles++
      }
      media.push({
        id: m.id,
        name: m.name,
        contentType: m.contentType,
        size: m.size,
        sha256: m.sha256,
        createdAt: m.createdAt,
        status: m.status,
        file: source ? mediaPath(m) : null,
      })
    }
    const user: ExportedUser = {
      userId,
      exportedAt,
      about: ABOUT,
      // Who set it (an operator's credential) is the operators' record, in the audit log.
      account: account && { status: account.status, since: account.since, reason: account.reason },
      profile: profiles.find((p) => p.userId === userId) ?? null,
      devices: sessions.map((s) => ({
        deviceId: s.deviceId,
        firstSeenAt: s.firstSeen,
        lastSeenAt: s.lastSeen,
        connected: s.connected,
        push: platform.get(s.deviceId) ?? null,
      })),
      pushRegistrations: registrations,
      blocks: blocks.map((b) => ({ userId: b.blockedId, at: b.at })),
      chats: exportedChats,
      media,
    }
    // Last, as only now are the message counts known; unzip tools list entries in any order.
    await add(Readable.from([Buffer.from(`${JSON.stringify(user, null, 2)}\n`)]), 'user.json', true)
    zip.end()
    await written
    return { userId, chats: chats.length, messages, media: uploads.length, mediaFiles, bytes }
  }

  try {
    return await Promise.race([produce(), failed])
  } catch (err) {
    current?.destroy()
    ;(zip.outputStream as Readable).destroy(err as Error)
    out.destroy(err as Error)
    // Settled either way, so that no rejection is left unhandled.
    await written.catch(() => undefined)
    throw err
  }
}

/** Every message userId sent in the chat, page by page, as exported. */
async function* sentBy(
  store: Pick<MessageStore, 'sentBy'>,
  chatId: string,
  userId: string,
): AsyncGenerator<ExportedMessage> {
  let after = 0
  for (;;) {
    const page = await store.sentBy(chatId, userId, after, PAGE)
    for (const m of page) yield exported(m)
    if (page.length < PAGE) return
    after = (page[page.length - 1] as StoredMessage).seq
  }
}

/** What the message holds in the user's own words: not the ids of whom it was hidden from. */
function exported(m: StoredMessage): ExportedMessage {
  const body = m.body as { media?: unknown; replyTo?: unknown }
  return {
    seq: m.seq,
    at: m.at,
    clientMsgId: m.clientMsgId,
    deviceId: m.deviceId,
    text: m.text,
    editedAt: m.editedAt,
    deletedAt: m.deletedAt,
    ...(typeof body.replyTo === 'number' ? { replyTo: body.replyTo } : {}),
    ...(Array.isArray(body.media) && body.media.length > 0 ? { media: body.media as string[] } : {}),
  }
}

/** A JSON array of the items, one per line, without holding them all. */
async function* jsonArray<T>(items: AsyncIterable<T>, each: () => void): AsyncGenerator<Buffer> {
  let first = true
  yield Buffer.from('[')
  for await (const item of items) {
    each()
    yield Buffer.from(`${first ? '\n' : ',\n'}${JSON.stringify(item)}`)
    first = false
  }
  yield Buffer.from(first ? ']\n' : '\n]\n')
}
