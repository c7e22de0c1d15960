import type { Logger } from 'pino'
import { clientIdOf } from '../auth/topic-acl.ts'
import type { CursorMove, DeliveryStore } from './delivery-store.ts'

/** Acknowledged cursors are gathered this long and written in one batch. */
const FLUSH_MS = 50
/** A batch that failed to be written is tried again after this. */
const RETRY_MS = 1000

/**
 * Device cursor moves gathered for FLUSH_MS and written in one `advance`: one store write per
 * acknowledged packet was the chat path's largest cost. A batch whose write fails is kept and
 * written later (a newer move of the same cursor wins), never dropped; batches are written one
 * after another, so a flush resolves only once every earlier move is stored.
 */
export class CursorBatch {
  readonly #store: Pick<DeliveryStore, 'advance'>
  readonly #log: Logger
  /**
   * Gathered moves by device (`<userId>/<deviceId>`), then chat; entries are updated in place.
   * Each carries the since of the session it was made in; of two sessions' moves the newer
   * session's wins (the store takes only the current session's, CursorMove).
   */
  readonly #moves = new Map<string, Map<string, Required<CursorMove>>>()
  #timer: NodeJS.Timeout | undefined
  #writing: Promise<void> = Promise.resolve()
  #closed = false

  constructor(store: Pick<DeliveryStore, 'advance'>, log: Logger) {
    this.#store = store
    this.#log = log
  }

  /**
   * Gathers a cursor move (to the highest seq seen for that device and chat). Called for every
   * acknowledged packet, so a cursor already gathered is moved without allocating.
   * @param device the device, with its client id `<userId>/<deviceId>` and the since (ms) of the
   *   session the move was made in (CursorMove)
   */
  move(
    device: { userId: string; deviceId: string; clientId: string; since: number },
    chatId: string,
    seq: number,
  ): void {
    this.#gather(device, chatId, seq)
    this.#schedule(FLUSH_MS)
  }

  /** Writes the gathered moves now; resolves when they and every earlier batch are written. */
  async flush(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const batch: Required<CursorMove>[] = []
    for (const chats of this.#moves.values()) for (const m of chats.values()) batch.push(m)
    this.#moves.clear()
    const mine = this.#writing.then(() => (batch.length ? this.#write(batch) : undefined))
    this.#writing = mine.catch(() => {})
    await mine
  }

  /** No more retries after this: the last flush's failure is the caller's to report. */
  close(): Promise<void> {
    this.#closed = true
    return this.flush()
  }

  #gather(
    device: { userId: string; deviceId: string; clientId: string; since: number },
    chatId: string,
    seq: number,
  ): void {
    let chats = this.#moves.get(device.clientId)
    if (!chats) {
      chats = new Map()
      this.#moves.set(device.clientId, chats)
    }
    const had = chats.get(chatId)
    if (!had)
      chats.set(chatId, {
        userId: device.userId,
        deviceId: device.deviceId,
        chatId,
        seq,
        since: device.since,
      })
    else if (had.since < device.since) {
      // A newer session of the device: the older one's move would be refused by the store anyway.
      had.since = device.since
      had.seq = seq
    } else if (had.since === device.since && had.seq < seq) had.seq = seq
  }

  async #write(batch: Required<CursorMove>[]): Promise<void> {
    try {
      await this.#store.advance(batch)
    } catch (err) {
      for (const m of batch)
        this.#gather({ ...m, clientId: clientIdOf(m.userId, m.deviceId) }, m.chatId, m.seq)
      if (this.#closed) throw err
      this.#log.warn({ err, cursors: batch.length }, 'could not write delivery cursors; retrying')
      this.#schedule(RETRY_MS)
    }
  }

  #schedule(ms: number): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined
      this.flush().catch(() => {})
    }, ms)
  }
}
