import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { clientIdOf } from '../auth/topic-acl.ts'
import { hiddenFrom } from '../blocks/hidden.ts'
import type { ChatStore } from '../chats/chat-store.ts'
import { isEncryptedChat } from '../chats/encrypted-chats.ts'
import type { MessageStore, StoredMessage } from '../messages/message-store.ts'
import type { PushTelemetry } from '../metrics/push-metrics.ts'
import { NatterError } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestRouter } from '../requests/router.ts'
import type { DeviceLiveness } from './device-liveness.ts'
import { backoffMs, type PushNotification, type PushProvider, type SendResult } from './push-provider.ts'
import type { Platform, PushJob, PushStore, Registration } from './push-store.ts'
import { notificationText } from './push-text.ts'

// What a node knows of a user's devices and mutes may be this old when it creates jobs; the
// worker checks both again before it sends.
const CACHE_MS = 10_000
const POLL_MS = 1000
// Longer than any provider call may take, so that only a dead worker's job outlives it.
const LEASE_MS = 60_000
const SEND_TIMEOUT_MS = 15_000
const BATCH = 20
const MAX_ATTEMPTS = 8

export interface PushOptions {
  /** A device that reconnects within this long after a message gets no push for it. */
  graceMs: number
  /** First retry delay; later ones double, with jitter. */
  retryBaseMs?: number
  /** Names this worker in job leases. */
  workerId: string
}

interface Cached {
  devices: Registration[]
  muted: Set<string>
  at: number
}

const clientId = (r: { userId: string; deviceId: string }) => clientIdOf(r.userId, r.deviceId)

/**
 * Push notifications for devices without a live session. A message creates (or joins) one job
 * per such device and chat in the push store, due after a grace period; a worker on every node
 * claims due jobs, checks again that the device is still away, unmuted and behind, and sends one
 * notification for the burst: the newest text and the unread counts. Transient failures are
 * retried with backoff, dead tokens removed. A job's state is in the store at every step, so a
 * crash before the provider call means the push is sent after the restart, and a crash during
 * the call means it is not sent again (at most once).
 */
export class PushService {
  readonly #store: PushStore
  readonly #chats: ChatStore
  readonly #messages: MessageStore
  readonly #liveness: DeviceLiveness
  readonly #providers: Record<Platform, PushProvider>
  readonly #members: (chatId: string) => Iterable<string>
  readonly #refused: (userId: string) => boolean
  readonly #o: Required<PushOptions>
  readonly #log: Logger
  readonly #telemetry: PushTelemetry | undefined
  readonly #ops: Operations
  readonly #cache = new Map<string, Cached>()
  /** Lookups under way, by user. */
  readonly #lookups = new Map<string, Promise<void>>()
  readonly #enqueuing = new Set<Promise<void>>()
  readonly #owner: string
  #timer: NodeJS.Timeout | undefined
  #nextTickAt = Number.POSITIVE_INFINITY
  #ticking: Promise<void> = Promise.resolve()
  #stopped = true

  constructor(d: {
    store: PushStore
    chats: ChatStore
    messages: MessageStore
    liveness: DeviceLiveness
    providers: Record<Platform, PushProvider>
    members: (chatId: string) => Iterable<string>
    /** Banned and erased accounts (services/accounts/): no push reaches their devices. */
    refused?: (userId: string) => boolean
    options: PushOptions
    ops: Operations
    log: Logger
    telemetry?: PushTelemetry
  }) {
    this.#store = d.store
    this.#chats = d.chats
    this.#messages = d.messages
    this.#liveness = d.liveness
    this.#providers = d.providers
    this.#members = d.members
    this.#refused = d.refused ?? (() => false)
    this.#o = { retryBaseMs: 1000, ...d.options }
    this.#ops = d.ops
    this.#log = d.log
    this.#telemetry = d.telemetry
    this.#owner = `${d.options.workerId}:${randomBytes(4).toString('hex')}`
  }

  register(router: RequestRouter): void {
    const ops = this.#ops
    router.register('push.register', {
      params: ops['push.register'].params,
      handle: async (ctx, p) => {
        if (p.platform === 'apns' && !p.apnsTopic) {
          throw new NatterError('bad_request', 'params.apnsTopic: APNs needs the app’s bundle id')
        }
        const deviceId = p.deviceId ?? ctx.who.deviceId
        await this.#store.register({
          userId: ctx.who.userId,
          deviceId,
          platform: p.platform,
          token: p.token,
          apnsTopic: p.platform === 'apns' ? (p.apnsTopic ?? null) : null,
          sandbox: p.platform === 'apns' && (p.sandbox ?? false),
          locale: p.locale ?? null,
          hideText: p.hideText ?? false,
          updatedAt: Date.now(),
        })
        this.#cache.delete(ctx.who.userId)
        return { deviceId, registered: true }
      },
    })
    router.register('push.unregister', {
      params: ops['push.unregister'].params,
      handle: async (ctx, p) => {
        const removed = await this.#store.unregister(ctx.who.userId, p.deviceId ?? ctx.who.deviceId)
        this.#cache.delete(ctx.who.userId)
        return { removed }
      },
    })
    router.register('push.mute', {
      params: ops['push.mute'].params,
      handle: async (ctx, p) => {
        if (!(await this.#isMember(p.chatId, ctx.who.userId))) {
          throw new NatterError('chat_not_found', `no chat ${p.chatId}, or you are not a member`)
        }
        await this.#store.setMuted(ctx.who.userId, p.chatId, p.muted)
        this.#cache.delete(ctx.who.userId)
        return { chatId: p.chatId, muted: p.muted }
      },
    })
  }

  /** Removes a device's registration and its jobs (device.revoke); false when it had none. */
  async forgetDevice(userId: string, deviceId: string): Promise<boolean> {
    const removed = await this.#store.unregister(userId, deviceId)
    this.#cache.delete(userId)
    return removed
  }

  async #isMember(chatId: string, userId: string): Promise<boolean> {
    for (const m of this.#members(chatId)) if (m === userId) return true
    return false
  }

  /**
   * A message was stored and fanned out: jobs for the members' devices that are away. The send
   * path does not wait for it; the promise is for tests.
   */
  onMessage(m: StoredMessage): Promise<void> {
    if (m.kind !== 'text' || this.#nobodyToPush(m)) return Promise.resolve()
    const writing = this.#enqueueFor(m).catch((err: unknown) =>
      this.#log.error({ err, chatId: m.chatId, seq: m.seq }, 'could not create push jobs'),
    )
    this.#enqueuing.add(writing)
    return writing.finally(() => this.#enqueuing.delete(writing))
  }

  /**
   * True when the cache already says no recipient has a device to push to for this chat: the
   * common case (apps that do not register for push), decided without a promise per message.
   */
  #nobodyToPush(m: StoredMessage): boolean {
    const now = Date.now()
    for (const u of this.#members(m.chatId)) {
      if (u === m.senderId) continue
      const hit = this.#cache.get(u)
      if (!hit || now - hit.at >= CACHE_MS) return false
      if (hit.devices.length > 0 && !hit.muted.has(m.chatId)) return false
    }
    return true
  }

  async #enqueueFor(m: StoredMessage): Promise<void> {
    // Never the user the message is hidden from (a blocker: services/blocks/hidden.ts).
    const hidden = hiddenFrom(m)
    // Checked here, where a push may be made, not in #nobodyToPush, which runs for every message.
    const recipients = [...this.#members(m.chatId)].filter(
      (u) => u !== m.senderId && u !== hidden && !this.#refused(u),
    )
    const known = await this.#known(recipients)
    const candidates = recipients.flatMap((u) => {
      const k = known.get(u)
      return k && !k.muted.has(m.chatId) ? k.devices : []
    })
    if (candidates.length === 0) return
    const live = await this.#liveness.live(candidates.map(clientId))
    const dueAt = Date.now() + this.#o.graceMs
    const jobs = candidates
      .filter((r) => !live.has(clientId(r)))
      .map((r) => ({ userId: r.userId, deviceId: r.deviceId, chatId: m.chatId, seq: m.seq, dueAt }))
    if (jobs.length === 0) return
    await this.#store.enqueue(jobs)
    this.#log.debug(
      { event: 'push_queued', chatId: m.chatId, seq: m.seq, devices: jobs.length },
      'push jobs queued',
    )
    this.#wakeAt(dueAt)
  }

  /**
   * Devices and mutes of these users: from the cache, the rest in one query each (a group's
   * members at once). Messages that arrive while a user's lookup runs wait for it rather than
   * query again: after the cache expires, a busy chat would otherwise query once per message.
   */
  async #known(userIds: string[]): Promise<Map<string, Cached>> {
    const now = Date.now()
    const out = new Map<string, Cached>()
    const missing: string[] = []
    const running = new Set<Promise<void>>()
    for (const u of userIds) {
      const hit = this.#cache.get(u)
      if (hit && now - hit.at < CACHE_MS) out.set(u, hit)
      else {
        const lookup = this.#lookups.get(u)
        if (lookup) running.add(lookup)
        else missing.push(u)
      }
    }
    if (missing.length) running.add(this.#lookup(missing, now))
    if (running.size === 0) return out
    await Promise.all(running)
    for (const u of userIds) {
      const known = out.has(u) ? undefined : this.#cache.get(u)
      if (known) out.set(u, known)
    }
    return out
  }

  #lookup(userIds: string[], now: number): Promise<void> {
    const lookup = (async () => {
      const [devices, mutes] = await Promise.all([
        this.#store.registrations(userIds),
        this.#store.mutes(userIds),
      ])
      const found = new Map<string, Cached>(
        userIds.map((u) => [u, { devices: [], muted: new Set(), at: now }]),
      )
      for (const d of devices) found.get(d.userId)?.devices.push(d)
      for (const x of mutes) found.get(x.userId)?.muted.add(x.chatId)
      for (const [u, known] of found) {
        this.#cache.set(u, known)
        if (this.#cache.size > 100_000) this.#cache.delete(this.#cache.keys().next().value as string)
      }
    })().finally(() => {
      for (const u of userIds) if (this.#lookups.get(u) === lookup) this.#lookups.delete(u)
    })
    for (const u of userIds) this.#lookups.set(u, lookup)
    return lookup
  }

  start(): void {
    this.#stopped = false
    this.#wakeAt(Date.now())
  }

  /** Stops claiming jobs, and waits for the pushes under way and the jobs being written. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#ticking
    await Promise.all(this.#enqueuing)
  }

  #wakeAt(at: number): void {
    if (this.#stopped || at >= this.#nextTickAt) return
    clearTimeout(this.#timer)
    this.#nextTickAt = at
    this.#timer = setTimeout(
      () => {
        this.#nextTickAt = Number.POSITIVE_INFINITY
        this.#ticking = this.#ticking.then(() => this.#tick())
      },
      Math.max(0, at - Date.now()),
    )
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return
    let more = false
    try {
      const now = Date.now()
      const doubtful = await this.#store.recoverInDoubt(now, BATCH)
      for (const j of doubtful) {
        this.#telemetry?.inDoubt()
        this.#log.warn(
          {
            event: 'push_in_doubt',
            userId: j.userId,
            deviceId: j.deviceId,
            chatId: j.chatId,
            seq: j.claimedSeq,
          },
          'a worker died while sending this push; it is not sent again',
        )
      }
      const jobs = await this.#store.claim(now, this.#owner, LEASE_MS, BATCH)
      await Promise.all(jobs.map((j) => this.#process(j)))
      more = jobs.length === BATCH
    } catch (err) {
      this.#log.error({ err }, 'push worker tick failed')
    }
    this.#wakeAt(more ? Date.now() : Date.now() + POLL_MS)
  }

  async #process(job: PushJob): Promise<void> {
    const done = (covered = job.claimedSeq) =>
      this.#store.finish(job, this.#owner, covered, Date.now() + this.#o.graceMs)
    try {
      const to = await this.#store.registration(job.userId, job.deviceId)
      if (!to) return await done()
      if ((await this.#store.mutes([job.userId])).some((x) => x.chatId === job.chatId)) return await done()
      const skip = async (reason: 'device_back' | 'already_read') => {
        await done()
        this.#telemetry?.skipped(reason)
        this.#log.debug(
          { event: 'push_skipped', reason, userId: job.userId, deviceId: job.deviceId, chatId: job.chatId },
          'push not needed any more',
        )
      }
      // Back while the push waited: its session delivers the messages.
      if ((await this.#liveness.live([clientId(job)])).size > 0) return await skip('device_back')
      const notification = await this.#compose(job, to)
      if (!notification) return await skip('already_read')
      const provider = this.#providers[to.platform]
      if (!(await this.#store.markSending(job, this.#owner))) return
      const result = await withTimeout(provider.send(to, notification), SEND_TIMEOUT_MS)
      const at = {
        event: 'push',
        provider: provider.name,
        userId: job.userId,
        deviceId: job.deviceId,
        chatId: job.chatId,
      }
      if (result.ok) {
        await done()
        this.#telemetry?.sent(provider.name)
        this.#log.info({ ...at, seq: job.claimedSeq, badge: notification.badge }, 'push sent')
        return
      }
      if (result.kind === 'invalid_token') {
        // Removing the registration removes its jobs; a token replaced meanwhile stays, and so does the job.
        if (!(await this.#store.unregisterToken(job.userId, job.deviceId, to.token))) await done()
        this.#cache.delete(job.userId)
        this.#telemetry?.tokenRemoved(provider.name)
        this.#log.info({ ...at, reason: result.reason }, 'push token refused by the provider and removed')
        return
      }
      if (result.kind === 'retry' && job.attempts + 1 < MAX_ATTEMPTS) {
        const attempts = job.attempts + 1
        const delay = backoffMs(attempts, result.retryAfterMs, this.#o.retryBaseMs)
        await this.#store.retryAt(job, this.#owner, Date.now() + delay, attempts)
        this.#wakeAt(Date.now() + delay)
        this.#telemetry?.retried(provider.name)
        this.#log.info({ ...at, reason: result.reason, attempts, retryInMs: delay }, 'push failed; retrying')
        return
      }
      await done()
      this.#telemetry?.failed(provider.name)
      this.#log.warn({ ...at, reason: result.reason, attempts: job.attempts + 1 }, 'push failed; dropped')
    } catch (err) {
      this.#log.error(
        { err, userId: job.userId, deviceId: job.deviceId },
        'push job failed; retried after its lease',
      )
    }
  }

  /** The notification for a job, or null when the user has read everything it covers. */
  async #compose(job: PushJob, to: Registration): Promise<PushNotification | null> {
    const cursor = await this.#chats.cursor(job.chatId, job.userId)
    if (cursor.readSeq >= job.claimedSeq) return null
    const [chat, message] = await Promise.all([
      this.#chats.getChat(job.chatId),
      this.#messages.get(job.chatId, job.claimedSeq),
    ])
    if (!chat || !message || message.deletedAt !== null) return null
    const unread = await this.#messages.countUnread(job.chatId, cursor.readSeq, job.userId)
    let badge = unread
    for (const other of await this.#chats.chatsOf(job.userId)) {
      if (other.id === job.chatId) continue
      const c = await this.#chats.cursor(other.id, job.userId)
      badge += await this.#messages.countUnread(other.id, c.readSeq, job.userId)
    }
    const text = notificationText({
      chatKind: chat.kind,
      chatName: chat.name,
      message,
      unread,
      // An encrypted chat's message has no text the server could show (docs/e2ee.md).
      hideText: to.hideText || isEncryptedChat(job.chatId),
      locale: to.locale,
    })
    return { chatId: job.chatId, seq: job.claimedSeq, ...text, badge, unread }
  }
}

/** A provider call that does not answer in time counts as transient: tried again later. */
async function withTimeout(p: Promise<SendResult>, ms: number): Promise<SendResult> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<SendResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, kind: 'retry', reason: `no answer within ${ms} ms` }), ms)
  })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}
