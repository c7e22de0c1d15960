import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import type { DeliveryStore, Revocation } from '../services/delivery/delivery-store.ts'
import type { RevocationList } from '../services/devices/revocation-list.ts'
import type { ClusterLink } from './cluster.ts'
import type { Sessions } from './sessions.ts'

// Revocations go to every node on this topic of the broker's emitter (Redis pub/sub in a
// cluster; no client may subscribe to $ topics).
const REVOCATION_TOPIC = '$natter/revocation'
// A lost announcement (Redis restarting) leaves a node's list stale at most this long.
export const REVOCATION_RESYNC_MS = 60_000

interface Emitter {
  emit(m: { topic: string; payload: string }, cb?: (err?: Error) => void): void
  on(topic: string, fn: (m: { payload: string }, done: () => void) => void): void
}

/**
 * Carries device revocations to every node: each node adds it to its in-memory RevocationList
 * (what CONNECTs are checked against) and closes the revoked connections it holds, found by the
 * `iat` their CONNECT's token had. In a cluster the announcement travels on Redis pub/sub (a few
 * ms); a lost one is made up by reloading the list from the store every REVOCATION_RESYNC_MS
 * and when pub/sub is back, each time closing what the list says is revoked.
 *
 * @returns announce (apply a revocation everywhere) and stop (the resync timer)
 */
export function wireDevices(d: {
  broker: Aedes
  sessions: Sessions
  revocations: RevocationList
  store: DeliveryStore
  cluster: ClusterLink | undefined
  log: Logger
}): { announce: (r: Revocation) => void; stop: () => void } {
  const { broker, sessions, revocations, log } = d
  const mq = (broker as unknown as { mq: Emitter }).mq
  const clients = () => Object.values((broker as unknown as { clients: Record<string, Client> }).clients)

  /** Closes this node's connections that the list now refuses (of one user, or all). */
  const cut = (userId?: string) => {
    for (const client of clients()) {
      const session = sessions.get(client)
      if (!session || (userId !== undefined && session.who.userId !== userId)) continue
      const { who, issuedAt } = session
      if (!revocations.isRevoked(who.userId, who.deviceId, issuedAt)) continue
      log.info({ event: 'device_cut', clientId: who.clientId }, 'closing a revoked device’s connection')
      client.close()
    }
  }

  mq.on(REVOCATION_TOPIC, (m, done) => {
    done()
    const r = JSON.parse(m.payload) as Revocation
    revocations.apply(r)
    cut(r.userId)
  })

  const resync = () =>
    d.store.revocations().then(
      (all) => {
        revocations.load(all)
        cut()
      },
      (err: unknown) => log.warn({ err }, 'could not reload device revocations'),
    )
  let timer: NodeJS.Timeout | undefined
  if (d.cluster) {
    timer = setInterval(resync, REVOCATION_RESYNC_MS)
    timer.unref()
    d.cluster.onResubscribed(() => void resync())
  }

  return {
    announce: (r) => {
      // This node at once; every node (this one again, harmlessly) through the emitter.
      cut(r.userId)
      mq.emit({ topic: REVOCATION_TOPIC, payload: JSON.stringify(r) }, (err) => {
        if (err)
          log.warn(
            { err: err.message },
            'could not announce a revocation; other nodes resync within a minute',
          )
      })
    },
    stop: () => clearInterval(timer),
  }
}
