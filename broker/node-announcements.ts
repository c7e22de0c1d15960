import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import type { ClusterLink } from './cluster.ts'

interface Emitter {
  emit(m: { topic: string; payload: string }, cb?: (err?: Error) => void): void
  on(topic: string, fn: (m: { payload: string }, done: () => void) => void): void
}

/**
 * One kind of change every node must apply (a device revocation, an account state), carried on
 * a `$natter/…` topic of the broker's emitter: Redis pub/sub in a cluster, a few ms; no client
 * may subscribe to `$` topics. A lost announcement (Redis restarting) is made up by `reload`,
 * which every node runs every `resyncMs` and when its pub/sub connection is back.
 *
 * @param d.apply what a node does with an announcement, this one's included (it must be idempotent)
 * @param d.reload reads the whole state from the shared store again (a rejection is logged)
 * @returns announce (apply here at once, then on every node) and stop (the resync timer)
 */
export function announceToNodes<T>(d: {
  broker: Aedes
  cluster: ClusterLink | undefined
  topic: string
  resyncMs: number
  /** What is announced, for the logs ("a revocation", "an account state"). */
  what: string
  apply: (change: T) => void
  reload: () => Promise<void>
  log: Logger
}): { announce: (change: T) => void; stop: () => void } {
  const mq = (d.broker as unknown as { mq: Emitter }).mq
  mq.on(d.topic, (m, done) => {
    done()
    d.apply(JSON.parse(m.payload) as T)
  })
  const resync = () =>
    d.reload().catch((err: unknown) => d.log.warn({ err }, `could not reload after ${d.what}`))
  let timer: NodeJS.Timeout | undefined
  if (d.cluster) {
    timer = setInterval(resync, d.resyncMs)
    timer.unref()
    d.cluster.onResubscribed(() => void resync())
  }
  return {
    announce: (change) => {
      // This node at once; every node (this one again, harmlessly) through the emitter.
      d.apply(change)
      mq.emit({ topic: d.topic, payload: JSON.stringify(change) }, (err) => {
        if (err)
          d.log.warn(
            { err: err.message },
            `could not announce ${d.what}; other nodes resync within ${d.resyncMs / 1000} s`,
          )
      })
    },
    stop: () => clearInterval(timer),
  }
}
