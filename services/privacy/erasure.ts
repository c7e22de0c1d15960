import type { Logger } from 'pino'
import type { AccountStore } from '../accounts/account-store.ts'
import type { BlockStore } from '../blocks/block-store.ts'
import type { Chat, ChatStore } from '../chats/chat-store.ts'
import type { DeliveryStore, DeviceRef } from '../delivery/delivery-store.ts'
import type { MediaCatalog, MediaRecord } from '../media/media-catalog.ts'
import type { MessageStore } from '../messages/message-store.ts'
import type { KeyPackageStore } from '../mls/key-package-store.ts'
import type { ProfileStore } from '../profiles/profile-store.ts'
import type { PushStore } from '../push/push-store.ts'

/**
 * The steps of an erase, in order. Each is idempotent: a node that resumes an erase runs the
 * recorded step again from its start (docs/admin.md#erase).
 */
export const ERASE_STEPS = ['cut', 'chats', 'messages', 'media', 'data', 'purge'] as const
export type EraseStep = (typeof ERASE_STEPS)[number]
/** The step recorded when an erase begins. */
export const FIRST_ERASE_STEP: EraseStep = 'cut'

/** What the erase reaches beyond the stores: the parts of a running node it must tell. */
export interface ErasureHooks {
  /** Closes the user's connections on every node (the account list already refuses them). */
  cut(userId: string): void
  /** Removes the user from a chat they are a member of, with the membership event to the others. */
  leaveChat(chat: Chat, userId: string): Promise<void>
  /** Deletes a media record's objects from the object store (disk or S3), then its catalog record. */
  purgeMedia(record: MediaRecord): Promise<void>
  /** The blocks of or on the user are gone from the store: the in-memory block index follows. */
  blocksRemoved(userId: string): Promise<void>
  /** Removes a device's subscriptions (and session) from aedes' persistence. */
  forgetSubscriptions(device: DeviceRef): Promise<void>
  /** Removes a device's push registration (and what the push service caches of the user). */
  forgetPush(userId: string, deviceId: string): Promise<void>
  /** Clears the retained `u/<userId>/presence` message (an empty retained publish). */
  clearPresence(userId: string): Promise<void>
}

/** The stores an erase removes the user's data from. */
export interface ErasureStores {
  chats: ChatStore
  messages: MessageStore
  media: MediaCatalog
  profiles: ProfileStore
  blocks: BlockStore
  delivery: DeliveryStore
  push: PushStore
  /** MLS KeyPackages: they carry the user's devices and public keys. */
  keyPackages: KeyPackageStore
}

export interface ErasureOptions {
  /**
   * This node's name as the owner of the erases it works on: stable across restarts (the node
   * id in a cluster), so that a node restarted after a crash resumes its erase at once instead of
   * waiting for its own lease to run out.
   */
  owner: string
  /** Messages erased per store call (NATTER_ERASE_BATCH). */
  batch: number
  /** How long a claim lasts, ms; renewed at every step and batch. Default 120,000. */
  leaseMs?: number
  /** How often pending erases whose lease ran out are looked for, ms. Default 30,000. */
  scanMs?: number
}

/**
 * Erases users, resumably: the account record (services/accounts/) holds the step reached and
 * who works on it under a lease, so an erase survives a crash of its node (another node, or the
 * same one restarted, claims it once the lease runs out: at start and every scanMs) and only
 * one node works on it at a time. The steps (docs/admin.md#erase):
 *
 * 1. cut: the account is already refused (erasing); every node closes its connections;
 * 2. chats: the user leaves every chat they are a member of, groups and direct chats;
 * 3. messages: every message they sent in every chat they ever were in, erased in batches of
 *    `batch`, a structured `erase_progress` log line per batch (counts and ids, no text);
 * 4. media: every media they uploaded (avatars too), objects first, then the record;
 * 5. data: profile, blocks both ways, devices (sessions, device cursors, revocations, aedes
 *    subscriptions), push registrations and jobs, chat cursors, presence (row and retained message);
 * 6. purge: the stores make the erased content unrecoverable from their files (purgeErased);
 * then the status becomes erased.
 */
export class Erasure {
  readonly #accounts: AccountStore
  readonly #stores: ErasureStores
  readonly #hooks: ErasureHooks
  readonly #owner: string
  readonly #batch: number
  readonly #leaseMs: number
  readonly #scanMs: number
  readonly #log: Logger
  /** Erases running on this node, by user id. */
  readonly #running = new Map<string, Promise<void>>()
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor(d: {
    accounts: AccountStore
    stores: ErasureStores
    hooks: ErasureHooks
    options: ErasureOptions
    log: Logger
  }) {
    this.#accounts = d.accounts
    this.#stores = d.stores
    this.#hooks = d.hooks
    this.#owner = d.options.owner
    this.#batch = d.options.batch
    this.#leaseMs = d.options.leaseMs ?? 120_000
    this.#scanMs = d.options.scanMs ?? 30_000
    this.#log = d.log
  }

  /** Resumes the pending erases now, and looks for more every scanMs (erases a dead node left). */
  start(): void {
    this.#scan()
    this.#timer = setInterval(() => this.#scan(), this.#scanMs)
    this.#timer.unref()
  }

  /** Stops looking for erases and waits for the ones under way here to reach a step boundary. */
  async stop(): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    await Promise.allSettled([...this.#running.values()])
  }

  /**
   * Runs (or resumes) the user's erase on this node, unless another node holds it: resolves
   * when it is done, handed over (lease lost) or stopped. Never rejects: a failure is logged and
   * the erase is left for the next scan (its lease runs out).
   */
  run(userId: string): Promise<void> {
    const running = this.#running.get(userId)
    if (running) return running
    const work = this.#run(userId)
      .catch((err: unknown) => {
        if (err instanceof LeaseLost) return
        this.#log.error(
          { err, event: 'erase_failed', userId },
          'erase failed; it is resumed when its lease runs out',
        )
      })
      .finally(() => this.#running.delete(userId))
    this.#running.set(userId, work)
    return work
  }

  #scan(): void {
    if (this.#stopped) return
    this.#accounts.all().then(
      (records) => {
        const now = Date.now()
        for (const r of records) {
          if (r.status !== 'erasing' || this.#running.has(r.userId)) continue
          const lease = r.erase
          if (lease && lease.owner !== null && lease.owner !== this.#owner && lease.leaseUntil > now) continue
          void this.run(r.userId)
        }
      },
      (err: unknown) => this.#log.warn({ err }, 'could not look for pending erases'),
    )
  }

  async #run(userId: string): Promise<void> {
    const claimed = await this.#accounts.claimErase(userId, this.#owner, Date.now(), this.#leaseMs)
    if (!claimed) return
    let step = (claimed.erase?.step ?? FIRST_ERASE_STEP) as EraseStep
    let done = claimed.erase?.done ?? 0
    const started = Date.now()
    this.#log.info({ event: 'erase_started', userId, step, done, owner: this.#owner }, 'erasing a user')
    for (let i = Math.max(0, ERASE_STEPS.indexOf(step)); i < ERASE_STEPS.length; i++) {
      if (this.#stopped) return
      step = ERASE_STEPS[i] as EraseStep
      if (!(await this.#record(userId, step, done))) return
      done = await this.#step(userId, step, done)
    }
    if (!(await this.#accounts.finishErase(userId, this.#owner, Date.now()))) return this.#lost(userId)
    this.#log.info({ event: 'erase_done', userId, messages: done, ms: Date.now() - started }, 'user erased')
  }

  /** Records the step reached and renews the lease; false when another node took the erase over. */
  async #record(userId: string, step: EraseStep, done: number): Promise<boolean> {
    const kept = await this.#accounts.progress(userId, this.#owner, {
      step,
      done,
      leaseUntil: Date.now() + this.#leaseMs,
    })
    if (!kept) this.#lost(userId)
    return kept
  }

  #lost(userId: string): void {
    this.#log.warn(
      { event: 'erase_lease_lost', userId, owner: this.#owner },
      'another node took the erase over',
    )
  }

  /** Runs one step; returns the count of messages erased so far. */
  async #step(userId: string, step: EraseStep, done: number): Promise<number> {
    const s = this.#stores
    switch (step) {
      case 'cut':
        this.#hooks.cut(userId)
        return done
      case 'chats': {
        // Current memberships, also of a member with no cursor (chatsEver finds chats by cursor).
        const ever = await s.chats.chatsEver(userId)
        const chats = new Map(ever.filter((c) => c.member !== null).map((c) => [c.chat.id, c.chat]))
        for (const chat of await s.chats.chatsOf(userId)) chats.set(chat.id, chat)
        for (const chat of chats.values()) await this.#hooks.leaveChat(chat, userId)
        return done
      }
      case 'messages':
        return this.#eraseMessages(userId, done)
      case 'media':
        for (const record of await s.media.uploadedBy(userId)) await this.#hooks.purgeMedia(record)
        return done
      case 'data': {
        await s.profiles.remove(userId)
        await s.keyPackages.removeUser(userId)
        await s.blocks.removeUser(userId)
        await this.#hooks.blocksRemoved(userId)
        // Listed first: forgetUser returns only what it removed, and a resumed erase must still
        // find the devices whose aedes subscriptions it did not get to.
        const sessions = await s.delivery.devices(userId)
        for (const d of sessions) await this.#hooks.forgetSubscriptions({ userId, deviceId: d.deviceId })
        for (const d of await s.delivery.forgetUser(userId)) await this.#hooks.forgetSubscriptions(d)
        for (const r of await s.push.registrationsOf(userId)) await this.#hooks.forgetPush(userId, r.deviceId)
        await s.push.forgetUser(userId)
        await this.#hooks.clearPresence(userId)
        await s.chats.forgetUser(userId)
        return done
      }
      case 'purge':
        // Every store the steps deleted from: on SQLite each truncates its WAL (old page images).
        await s.messages.purgeErased()
        for (const store of [
          s.chats,
          s.media,
          s.profiles,
          s.blocks,
          s.delivery,
          s.push,
          s.keyPackages,
          this.#accounts,
        ])
          await store.purgeErased()
        return done
    }
  }

  async #eraseMessages(userId: string, done: number): Promise<number> {
    let total = done
    for (const { chat } of await this.#stores.chats.chatsEver(userId)) {
      for (;;) {
        if (this.#stopped) return total
        const erased = await this.#stores.messages.eraseSender(chat.id, userId, this.#batch)
        if (erased === 0) break
        total += erased
        if (!(await this.#record(userId, 'messages', total))) throw new LeaseLost()
        // After the record: a line says what a resumed erase starts from.
        this.#log.info({ event: 'erase_progress', userId, chatId: chat.id, erased, done: total })
      }
    }
    return total
  }
}

/** The erase was taken over by another node mid-step: this one stops. */
class LeaseLost extends Error {}
