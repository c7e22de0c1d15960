import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import type { DeliveryStore, Revocation } from '../services/delivery/delivery-store.ts'
import type { RevocationList } from '../services/devices/revocation-list.ts'
import type { ClusterLink } from './cluster.ts'
import { announceToNodes } from './node-announcements.ts'
import type { Sessions } from './sessions.ts'

// Revocations go to every node on this topic of the broker's emitter (Redis pub/sub in a
// cluster; no client may subscribe to $ topics).
const REVOCATION_TOPIC = '$natter/revocation'
// A lost announcement (Redis restarting) leaves a node's list stale at most this long.
export const REVOCATION_RESYNC_MS = 60_000

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

  return announceToNodes<Revocation>({
    ...{ broker, cluster: d.cluster, topic: REVOCATION_TOPIC, resyncMs: REVOCATION_RESYNC_MS, log },
    what: 'a revocation',
    apply: (r) => {
      revocations.apply(r)
      cut(r.userId)
    },
    reload: async () => {
      revocations.load(await d.store.revocations())
      cut()
    },
  })
}
