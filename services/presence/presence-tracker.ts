import type { Logger } from 'pino'
import { topics } from '../auth/topic-acl.ts'
import type { ChatStore } from '../chats/chat-store.ts'
import type { Publish } from '../messages/publisher.ts'
import type { PresenceEvent } from '../messages/wire.ts'
import { KeyedQueue } from '../storage/keyed-queue.ts'

/**
 * Presence, written by Natter alone from connects and disconnects: a user is online while any
 * of their devices is connected. Each change is stored (for last-seen across restarts) and
 * published retained on u/<userId>/presence.
 */
export class PresenceTracker {
  readonly #store: ChatStore
  readonly #publish: Publish
  readonly #log: Logger
  readonly #devices = new Map<string, number>()
  // Changes of one user are applied in order, so the last retained message is the truth.
  readonly #perUser = new KeyedQueue()
  #heartbeat?: NodeJS.Timeout

  constructor(d: { store: ChatStore; publish: Publish; log: Logger }) {
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
    for (const p of await this.#store.allPresence()) {
      if (p.online) await this.#store.setPresence({ ...p, online: false })
      await this.#announce(p.userId, false, p.lastSeen)
    }
    // Online users' last-seen moves on while they stay, so a crash loses at most one interval.
    this.#heartbeat = setInterval(() => {
      const now = Date.now()
      for (const userId of this.#devices.keys()) {
        this.#enqueue(userId, () => this.#store.setPresence({ userId, online: true, lastSeen: now }))
      }
    }, heartbeatMs)
    this.#heartbeat.unref()
  }

  stop(): void {
    clearInterval(this.#heartbeat)
  }

  connected(userId: string): void {
    const n = (this.#devices.get(userId) ?? 0) + 1
    this.#devices.set(userId, n)
    if (n === 1) this.#change(userId, true)
  }

  disconnected(userId: string): void {
    const n = (this.#devices.get(userId) ?? 0) - 1
    if (n > 0) {
      this.#devices.set(userId, n)
      return
    }
    this.#devices.delete(userId)
    this.#change(userId, false)
  }

  isOnline(userId: string): boolean {
    return this.#devices.has(userId)
  }

  /** Resolves when every change so far is stored and published (for shutdown and tests). */
  async settled(): Promise<void> {
    await this.#perUser.settled()
  }

  #change(userId: string, online: boolean): void {
    const at = Date.now()
    this.#enqueue(userId, async () => {
      await this.#store.setPresence({ userId, online, lastSeen: at })
      await this.#announce(userId, online, at)
    })
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
