import type { Logger } from 'pino'
import { topics } from '../auth/topic-acl.ts'
import type { ChatStore } from '../chats/chat-store.ts'
import type { Publish } from '../messages/publisher.ts'
import type { PresenceEvent } from '../messages/wire.ts'
import { KeyedQueue } from '../storage/keyed-queue.ts'
import {
  type DeviceCounter,
  HEARTBEAT_MS,
  LocalDeviceCounter,
  RECONCILE_HEARTBEATS,
} from './device-counter.ts'

/** How often the state of users whose last publish failed is published again, in ms. */
export const RETRY_MS = RECONCILE_HEARTBEATS * HEARTBEAT_MS
// A publish is checked against the total it published; this many rounds, then the retry takes over.
const MAX_ROUNDS = 5
// Users read from the store at a time when every user's presence is published again.
const REPUBLISH_BATCH = 100

/**
 * Presence, written by Natter alone from connects and disconnects: a user is online while any
 * of their devices is connected, on any node of a cluster (the DeviceCounter knows). Each change
 * is stored (for last-seen across restarts) and published retained on u/<userId>/presence.
 *
 * This node's counts (#devices) are the truth for its share. Each change sets the node's count in
 * the counter, and when the user's total crossed 0 the state is published, then the total read
 * again: if it changed meanwhile (another node published too, and the two retained messages may
 * have been stored in either order) the state is published again, so that the last one stored is
 * the truth. The counter asks for a recheck of users whose state may be wrong (a dead node's
 * users, users whose count it had to write again).
 */
export class PresenceTracker {
  readonly #store: ChatStore
  readonly #publish: Publish
  readonly #log: Logger
  /** Devices connected to this node, per user. */
  readonly #devices = new Map<string, number>()
  /** Connections counted in #devices, when the caller names them: a disconnect of another is ignored. */
  readonly #counted = new WeakSet<object>()
  readonly #counter: DeviceCounter
  // Changes of one user are applied in order, so the last retained message is the truth.
  readonly #perUser = new KeyedQueue()
  /** Work queued per user, to tell a user with a change under way. */
  readonly #queued = new Map<string, number>()
  /** Users whose last publish failed: published again every RETRY_MS. */
  readonly #failed = new Map<string, number>()
  #heartbeat?: NodeJS.Timeout
  #retry?: NodeJS.Timeout
  #stopped = false

  constructor(d: { store: ChatStore; publish: Publish; log: Logger; counter?: DeviceCounter }) {
    this.#counter = d.counter ?? new LocalDeviceCounter()
    this.#store = d.store
    this.#publish = d.publish
    this.#log = d.log
  }

  /**
   * After a crash no disconnect was seen: everyone still marked online is set offline at the
   * last time they were known to be connected, and every user's presence is published again
   * (retained messages of the embedded default live in memory). heartbeatMs (ms): how often
   * online users' last-seen is stored.
   */
  async start(heartbeatMs = 30_000): Promise<void> {
    // In a cluster the other nodes' users are online, and a dead node is counted out by the
    // DeviceCounter; retained presence lives in Redis (and is published again from the store by
    // the counter's lost() when Redis comes back empty).
    if (!this.#counter.shared) {
      for (const p of await this.#store.allPresence()) {
        if (p.online) await this.#store.setPresence({ ...p, online: false })
        await this.#announce(p.userId, false, p.lastSeen)
      }
    }
    await this.#counter.start({
      devices: () => this.#devices,
      recheck: (userId, o = {}) => {
        // Refused once stopped: a dead node's user then stays on its list for another survivor.
        if (this.#stopped) return Promise.reject(new Error('presence is stopped on this node'))
        if (o.ifIdle && this.#queued.has(userId)) return Promise.resolve()
        return this.#syncLater(userId, { force: true, lastSeen: o.lastSeen ?? Date.now() })
      },
      lost: () => {
        this.#republishAll().catch((err: unknown) =>
          this.#log.error({ err }, 'could not publish every user’s presence again'),
        )
      },
    })
    // Online users' last-seen moves on while they stay, so a crash loses at most one interval.
    this.#heartbeat = setInterval(() => {
      const now = Date.now()
      for (const userId of this.#devices.keys()) {
        this.#enqueue(userId, () => this.#store.setPresence({ userId, online: true, lastSeen: now })).catch(
          () => {},
        )
      }
    }, heartbeatMs)
    this.#heartbeat.unref()
    this.#retry = setInterval(() => {
      for (const [userId, lastSeen] of this.#failed) {
        this.#failed.delete(userId)
        this.#syncLater(userId, { force: true, lastSeen }).catch(() => {})
      }
    }, RETRY_MS)
    this.#retry.unref()
  }

  /**
   * Stops counting, first thing in a node's shutdown: the devices it is about to disconnect
   * reconnect elsewhere, so they are not announced offline from here. In a cluster the node's
   * heartbeat then lapses and a surviving node counts out whatever devices did not come back;
   * a single node sets everyone offline when it starts again.
   */
  stop(): void {
    this.#stopped = true
    clearInterval(this.#heartbeat)
    clearInterval(this.#retry)
    this.#counter.stop()
  }

  /**
   * A device of the user is connected here. connection, when given (the same object at the
   * disconnect), lets a disconnect of a connection that was never counted be ignored.
   */
  connected(userId: string, connection?: object): void {
    if (this.#stopped) return
    if (connection) {
      if (this.#counted.has(connection)) return
      this.#counted.add(connection)
    }
    this.#devices.set(userId, (this.#devices.get(userId) ?? 0) + 1)
    this.#syncLater(userId, { force: false, lastSeen: Date.now() }).catch(() => {})
  }

  disconnected(userId: string, connection?: object): void {
    if (this.#stopped) return
    if (connection) {
      if (!this.#counted.has(connection)) return
      this.#counted.delete(connection)
    }
    const n = (this.#devices.get(userId) ?? 0) - 1
    if (n > 0) this.#devices.set(userId, n)
    else this.#devices.delete(userId)
    this.#syncLater(userId, { force: false, lastSeen: Date.now() }).catch(() => {})
  }

  /** Whether a device of the user is connected to this node. */
  isOnline(userId: string): boolean {
    return this.#devices.has(userId)
  }

  /** Resolves when every change so far is stored and published (for shutdown and tests). */
  async settled(): Promise<void> {
    await this.#perUser.settled()
  }

  /**
   * Writes this node's count of the user's devices (as it is now) and, when the user's total
   * crossed 0 or when forced, publishes the user's state; lastSeen (ms) dates an offline state.
   * The counter keeps the user marked as being published by this node until that is done.
   */
  async #sync(userId: string, o: { force: boolean; lastSeen: number }): Promise<void> {
    const change = await this.#counter.set(userId, this.#devices.get(userId) ?? 0, { force: o.force })
    if (!change.publish) return
    await this.#publishTotal(userId, change.after, o.lastSeen)
    await this.#counter.release(userId)
  }

  /**
   * Publishes the state a total of devices means, then reads the total again and publishes again
   * while it says otherwise: the state published last is then the one the counts hold.
   */
  async #publishTotal(userId: string, total: number, lastSeen: number): Promise<void> {
    let online = total > 0
    let at = online ? Date.now() : lastSeen
    for (let round = 1; ; round++) {
      await this.#apply(userId, online, at)
      const now = (await this.#counter.total(userId)) > 0
      if (now === online) return
      if (round === MAX_ROUNDS) throw new Error(`presence kept changing during ${MAX_ROUNDS} publishes`)
      online = now
      at = Date.now()
    }
  }

  /** Publishes every stored user's presence again: Redis lost its retained messages. */
  async #republishAll(): Promise<void> {
    const all = await this.#store.allPresence()
    this.#log.info(
      { event: 'presence_republished', users: all.length },
      'publishing every user’s presence again',
    )
    for (let i = 0; i < all.length && !this.#stopped; i += REPUBLISH_BATCH) {
      await Promise.allSettled(
        all
          .slice(i, i + REPUBLISH_BATCH)
          .map((p) => this.#syncLater(p.userId, { force: true, lastSeen: p.lastSeen })),
      )
    }
  }

  /** Stores the state (for last-seen across restarts) and publishes it retained. */
  async #apply(userId: string, online: boolean, at: number): Promise<void> {
    try {
      await this.#store.setPresence({ userId, online, lastSeen: at })
    } catch (err) {
      // The retained message is what users see; the stored last-seen catches up with the next change.
      this.#log.warn({ err, userId }, 'could not store presence')
    }
    await this.#announce(userId, online, at)
  }

  /**
   * Queues a #sync of the user. A failure is logged, and the user's state is published again
   * after RETRY_MS (dated lastSeen when offline); the returned promise rejects then too.
   */
  #syncLater(userId: string, o: { force: boolean; lastSeen: number }): Promise<void> {
    return this.#enqueue(userId, () => this.#sync(userId, o)).catch((err: unknown) => {
      if (!this.#stopped) this.#failed.set(userId, o.lastSeen)
      throw err
    })
  }

  /** Runs work in the user's queue; a failure is logged, and the returned promise rejects. */
  #enqueue(userId: string, work: () => Promise<void>): Promise<void> {
    this.#queued.set(userId, (this.#queued.get(userId) ?? 0) + 1)
    return this.#perUser
      .run(userId, work)
      .catch((err: unknown) => {
        this.#log.error({ err, userId }, 'presence update failed')
        throw err
      })
      .finally(() => {
        const left = (this.#queued.get(userId) ?? 1) - 1
        if (left > 0) this.#queued.set(userId, left)
        else this.#queued.delete(userId)
      })
  }

  #announce(userId: string, online: boolean, lastSeen: number): Promise<void> {
    const body: PresenceEvent = {
      userId,
      online,
      lastSeenAt: lastSeen,
      lastSeen: new Date(lastSeen).toISOString(),
    }
    return this.#publish(topics.presence(userId), body, { qos: 1, retain: true })
  }
}
