import type { DeviceIdentity } from '../auth/identity.ts'
import type { LimitName, RateLimits } from './rate-limits.ts'

/** One publish waiting for its turn on its connection. */
interface Waiting {
  /** When it arrived, ms since the epoch: it is held at most holdMs from then. */
  at: number
  who: DeviceIdentity
  resolve: (retryAfterMs: number) => void
  /** The limit that held it back (it, or a publish before it), if one did. */
  heldBy: LimitName | undefined
}

/** One connection's publishes of one kind, decided one at a time in arrival order. */
interface Lane {
  queue: Waiting[]
  running: boolean
  /** While the first waiting publish is held: the limit holding it (and everything behind it). */
  holding: LimitName | undefined
  /** After a refusal, until the limit has room again: what arrives meanwhile is refused too. */
  refuseUntil: number
  refusedBy: LimitName
}

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    // A held publish does not keep a stopping process alive.
    setTimeout(resolve, ms).unref()
  })

/**
 * Per-device and per-user limits for one kind of publish (chat sends, requests), with the
 * publish held rather than refused while the limit will have room soon:
 *
 * - A publish within both limits goes on at once.
 * - One over a limit that has room again within `holdMs` of its arrival waits for it (its PUBACK
 *   is delayed: the caller acknowledges only once this resolves), then goes on.
 * - One that would wait longer is refused with the time until the limit has room (retry-after),
 *   at the end of its hold, and so is everything the connection sends until then.
 *
 * Publishes of one connection are decided strictly in arrival order, so a held one is never
 * overtaken: what a device sends is stored in the order sent, and after a refusal nothing it
 * sent later is stored before it is sent again. Holding refusals to the end of the hold also
 * slows a flooding connection down: aedes reads a connection's next packets only once the ones
 * it read before are answered.
 */
export class PublishThrottle {
  readonly #limits: RateLimits
  readonly #perDevice: LimitName
  readonly #perUser: LimitName
  readonly #holdMs: number
  readonly #lanes = new WeakMap<object, Lane>()

  constructor(d: { limits: RateLimits; perDevice: LimitName; perUser: LimitName; holdMs: number }) {
    this.#limits = d.limits
    this.#perDevice = d.perDevice
    this.#perUser = d.perUser
    this.#holdMs = d.holdMs
  }

  /**
   * Resolves with 0 when the publish may go on, or with the ms after which the device should
   * send it again (at least 1) when it was refused. `connection` is the publishing connection
   * (any object that lives as long as it).
   */
  admit(connection: object, who: DeviceIdentity): Promise<number> {
    let lane = this.#lanes.get(connection)
    if (lane === undefined) {
      lane = { queue: [], running: false, holding: undefined, refuseUntil: 0, refusedBy: this.#perDevice }
      this.#lanes.set(connection, lane)
    }
    const l = lane
    return new Promise((resolve) => {
      l.queue.push({ at: Date.now(), who, resolve, heldBy: l.holding })
      // A fault in the limits must not leave publishes waiting for ever: what waits goes on.
      if (!l.running) this.#run(l).catch(() => this.#admitAll(l))
    })
  }

  async #run(lane: Lane): Promise<void> {
    lane.running = true
    try {
      for (let next = lane.queue[0]; next !== undefined; next = lane.queue[0]) {
        const op = next
        if (Date.now() < lane.refuseUntil) {
          await this.#refuse(lane, op)
          continue
        }
        const verdict = await this.#limits.checkPair(
          this.#perDevice,
          op.who.clientId,
          this.#perUser,
          op.who.userId,
        )
        if (verdict === null) {
          lane.queue.shift()
          if (op.heldBy !== undefined) this.#limits.delayed(op.heldBy)
          op.resolve(0)
          continue
        }
        const roomAt = Date.now() + verdict.waitMs
        if (roomAt - op.at <= this.#holdMs) {
          // Everything waiting behind it is held back by the same limit.
          for (const w of lane.queue) w.heldBy ??= verdict.limit
          lane.holding = verdict.limit
          await sleep(verdict.waitMs)
          lane.holding = undefined
          continue
        }
        lane.refuseUntil = roomAt
        lane.refusedBy = verdict.limit
        await this.#refuse(lane, op)
      }
    } finally {
      lane.running = false
    }
  }

  #admitAll(lane: Lane): void {
    for (const op of lane.queue.splice(0)) op.resolve(0)
  }

  /** Refuses the first waiting publish at the end of its hold (or when the limit has room, if sooner). */
  async #refuse(lane: Lane, op: Waiting): Promise<void> {
    const at = Math.min(op.at + this.#holdMs, lane.refuseUntil)
    const now = Date.now()
    if (at > now) await sleep(at - now)
    lane.queue.shift()
    this.#limits.refused(lane.refusedBy)
    op.resolve(Math.max(1, lane.refuseUntil - Date.now()))
  }
}
