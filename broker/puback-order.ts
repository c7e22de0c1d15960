import type { Client } from 'aedes'

/** aedes' callback of `authorizePublish`: its PUBACK (QoS 1) or PUBREC (QoS 2) is written when it is called. */
export type PublishDone = (err?: Error | null) => void

/**
 * The QoS 1 and 2 PUBLISHes of one connection whose outcome is not told to aedes yet, in
 * arrival order. Tickets are numbers handed out in order; slot `t - base` holds ticket t's
 * callback once it is decided. The arrays are reused (never shrunk): a connection that never
 * pipelines keeps one slot, one that pipelines a socket read's worth keeps that many.
 */
interface Line {
  base: number
  /** The oldest ticket not acknowledged yet. */
  head: number
  /** The next ticket to hand out. */
  next: number
  dones: Array<PublishDone | undefined>
  errs: Array<Error | null | undefined>
  flushing: boolean
}

const LINE = Symbol('natter.pubackLine')
type Lined = Client & { [LINE]?: Line }

/**
 * Acknowledgements in the order the PUBLISHes arrived, per connection: "it MUST send PUBACK
 * packets in the order in which the corresponding PUBLISH packets were received (QoS 1
 * messages)" and the same for PUBREC [MQTT-4.6.0-2], [MQTT-4.6.0-3].
 *
 * aedes hands every packet of one socket read to its handlers at once and writes a PUBLISH's
 * PUBACK as soon as `authorizePublish` calls back, so a refused publish (answered at once) was
 * acknowledged before the durable write of an earlier chat message finished. Here a publish
 * decided early waits until every earlier one of its connection is decided, then they are told
 * to aedes together, oldest first. A connection whose publishes are decided in order (the usual
 * case) pays one counter increment and one comparison per publish; nothing is allocated.
 *
 * QoS 0 publishes have no acknowledgement and are not held.
 */
export class PubackOrder {
  /**
   * Takes the next place in line for a PUBLISH that will be decided later; pass the ticket to
   * `decided`. Returns -1 for QoS 0 (nothing to order).
   */
  enter(client: Client, qos: number): number {
    if (qos === 0) return -1
    const c = client as Lined
    let line = c[LINE]
    if (line === undefined) {
      line = { base: 0, head: 0, next: 0, dones: [], errs: [], flushing: false }
      c[LINE] = line
    }
    const ticket = line.next++
    const i = ticket - line.base
    line.dones[i] = undefined
    line.errs[i] = undefined
    return ticket
  }

  /**
   * The PUBLISH of `ticket` is decided (err closes the connection, as aedes does with it):
   * `done` is called now if every earlier one was, else right after the last earlier one is.
   */
  decided(client: Client, ticket: number, done: PublishDone, err: Error | null = null): void {
    const line = (client as Lined)[LINE]
    if (ticket < 0 || line === undefined) {
      done(err)
      return
    }
    const i = ticket - line.base
    line.dones[i] = done
    line.errs[i] = err
    if (ticket === line.head) flush(line)
  }

  /**
   * For a PUBLISH decided at once: `done` now, unless an earlier PUBLISH of the connection is
   * still undecided; then after it.
   */
  now(client: Client, qos: number, done: PublishDone, err: Error | null = null): void {
    const line = (client as Lined)[LINE]
    if (qos === 0 || line === undefined || line.head === line.next) done(err)
    else this.decided(client, this.enter(client, qos), done, err)
  }
}

function flush(line: Line): void {
  // A callback that reaches back in (it does not in aedes 1.2, which defers its next step)
  // finds the loop running and leaves the rest to it.
  if (line.flushing) return
  line.flushing = true
  try {
    while (line.head < line.next) {
      const i = line.head - line.base
      const done = line.dones[i]
      if (done === undefined) break
      const err = line.errs[i] ?? null
      line.dones[i] = undefined
      line.errs[i] = undefined
      line.head++
      done(err)
    }
    // Empty: the next ticket starts at slot 0 again.
    if (line.head === line.next) line.base = line.head
  } finally {
    line.flushing = false
  }
}
