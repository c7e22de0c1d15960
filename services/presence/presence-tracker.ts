import type { Logger } from 'pino'
import { topics } from '../auth/topic-acl.ts'
import type { ChatStore } from '../chats/chat-store.ts'
import type { Publish } from '../messages/publisher.ts'
import type { PresenceEvent } from '../messages/wire.ts'
import { KeyedQueue } from '../storage/keyed-queue.ts'
import { type DeviceCounter, LocalDeviceCounter } from './device-counter.ts'

/**
 * Presence, written by Natter alone from connects and disconnects: a user is online while any
 * of their devices is connected, on any node of a cluster (the DeviceCounter knows). Each change
 * is stored (for last-seen across restarts) and published retained on u/<userId>/presence.
 */
export class PresenceTracker {
  readonly #store: ChatStore
  readonly #publish: Publish
  readonly #log: Logger
  /** Devices connected to this node, per user. */
  readonly #devices = new Map<string, number>()
  readonly #counter: DeviceCounter
  // Changes of one user are applied in order, so the last retained message is the truth.
  readonly #perUser = new KeyedQueue()
  #heartbeat?: NodeJS.Timeout
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
   * (retained messages of the embedded default live in memory).
   */
  async start(heartbeatMs = 30_000): Promise<void> {
    // In a cluster the other nodes' users are online, and a dead node is counted out by the
    // DeviceCounter; retained presence lives in Redis.
    if (!this.#counter.shared) {
      for (const p of await this.#store.allPresence()) {
        if (p.online) await this.#store.setPresence({ ...p, online: false })
        await this.#announce(p.userId, false, p.lastSeen)
      }
    }
    await this.#counter.start((userId, lastSeen) =>
      this.#enqueue(userId, () => this.#apply(userId, false, lastSeen)),
    )
    // Online users' last-seen moves on while they stay, so a crash loses at most one interval.
    this.#heartbeat = setInterval(() => {
      const now = Date.now()
      for (const userId of this.#devices.keys()) {
        this.#enqueue(userId, () => this.#store.setPresence({ userId, online: true, lastSeen: now }))
      }
    }, heartbeatMs)
    this.#heartbeat.unref()
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
    this.#counter.stop()
  }

  connected(userId: string): void {
    if (this.#stopped) return
    this.#devices.set(userId, (this.#devices.get(userId) ?? 0) + 1)
    const at = Date.now()
    this.#enqueue(userId, async () => {
      if ((await this.#counter.connected(userId)) === 1) await this.#apply(userId, true, at)
    })
  }

  disconnected(userId: string): void {
    if (this.#stopped) return
    const n = (this.#devices.get(userId) ?? 0) - 1
    if (n > 0) this.#devices.set(userId, n)
    else this.#devices.delete(userId)
    const at = Date.now()
    this.#enqueue(userId, async () => {
      if ((await this.#counter.disconnected(userId)) === 0) await this.#apply(userId, false, at)
    })
  }

  /** Whether a device of the user is connected to this node. */
  isOnline(userId: string): boolean {
    return this.#devices.has(userId)
  }

  /** Resolves when every change so far is stored and published (for shutdown and tests). */
  async settled(): Promise<void> {
    await this.#perUser.settled()
  }

  async #apply(userId: string, online: boolean, at: number): Promise<void> {
    await this.#store.setPresence({ userId, online, lastSeen: at })
    await this.#announce(userId, online, at)
  }

  #enqueue(userId: string, work: () => Promise<void>): void {
    this.#perUser
      .run(userId, work)
      .catch((err: unknown) => this.#log.error({ err, userId }, 'presence update failed'))
  }

  #announce(userId: string, online: boolean, lastSeen: number): Promise<void> {
    const body: PresenceEvent = { userId, online, lastSeen: new Date(lastSeen).toISOString() }
    return this.#publish(topics.presence(userId), body, { qos: 1, retain: true })
  }
}
