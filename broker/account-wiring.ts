import type { Aedes, Client } from 'aedes'
import type { Logger } from 'pino'
import { AccountList } from '../services/accounts/account-list.ts'
import { AccountService } from '../services/accounts/account-service.ts'
import type { AccountStatus, AccountStore } from '../services/accounts/account-store.ts'
import { openAccountStore } from '../services/accounts/open-account-store.ts'
import { clientIdOf, topics } from '../services/auth/topic-acl.ts'
import type { BlockIndex } from '../services/blocks/block-index.ts'
import type { BlockStore } from '../services/blocks/block-store.ts'
import type { ChatService } from '../services/chats/chat-service.ts'
import type { MediaService } from '../services/media/media-service.ts'
import type { PresenceTracker } from '../services/presence/presence-tracker.ts'
import { Erasure } from '../services/privacy/erasure.ts'
import type { PushService } from '../services/push/push-service.ts'
import type { ClusterLink } from './cluster.ts'
import { announceToNodes } from './node-announcements.ts'
import type { Sessions } from './sessions.ts'
import type { Stores } from './stores.ts'

// Account states go to every node on this topic of the broker's emitter (Redis pub/sub in a
// cluster; no client may subscribe to $ topics).
const ACCOUNT_TOPIC = '$natter/account'
// A lost announcement (Redis restarting) leaves a node's list stale at most this long.
export const ACCOUNT_RESYNC_MS = 60_000

/**
 * Carries bans, unbans and erases to every node (broker/node-announcements.ts): each node sets the status in its in-memory AccountList (what CONNECTs and HTTP
 * calls are checked against) and closes the connections of a refused account it holds. In a
 * cluster the announcement travels on Redis pub/sub (a few ms); a lost one is made up by
 * reloading the list from the store every ACCOUNT_RESYNC_MS and when pub/sub is back, each
 * time closing what the list refuses.
 *
 * @returns announce (apply a status everywhere; null: in good standing) and stop (the resync timer)
 */
export function wireAccounts(d: {
  broker: Aedes
  sessions: Sessions
  list: AccountList
  store: AccountStore
  cluster: ClusterLink | undefined
  log: Logger
}): { announce: (change: { userId: string; status: AccountStatus | null }) => void; stop: () => void } {
  const { broker, sessions, list, log } = d
  const clients = () => Object.values((broker as unknown as { clients: Record<string, Client> }).clients)

  /** Closes this node's connections of accounts the list refuses (of one user, or all). */
  const cut = (userId?: string) => {
    for (const client of clients()) {
      const who = sessions.get(client)?.who
      if (!who || (userId !== undefined && who.userId !== userId)) continue
      const refusal = list.refusal(who.userId)
      if (refusal === null) continue
      log.info(
        { event: 'account_cut', clientId: who.clientId, status: refusal },
        'closing a refused account’s connection',
      )
      client.close()
    }
  }

  // A CONNECT that passed its check just before a ban joins the broker's clients after the cut
  // went through them: it is closed as it becomes ready.
  broker.on('clientReady', (client) => {
    const who = d.sessions.get(client)?.who
    if (who && list.refusal(who.userId) !== null) cut(who.userId)
  })

  return announceToNodes<{ userId: string; status: AccountStatus | null }>({
    ...{ broker, cluster: d.cluster, topic: ACCOUNT_TOPIC, resyncMs: ACCOUNT_RESYNC_MS, log },
    what: 'an account state',
    apply: ({ userId, status }) => {
      list.set(userId, status)
      cut(userId)
    },
    reload: async () => {
      list.load(await d.store.all())
      cut()
    },
  })
}

/** The account store and the in-memory list of refused accounts, loaded: open before the broker. */
export async function openAccounts(s: {
  mongodbUri?: string | undefined
  dataDir: string
}): Promise<{ store: AccountStore; list: AccountList }> {
  const store = await openAccountStore(s)
  const list = new AccountList()
  list.load(await store.all())
  return { store, list }
}

/**
 * Starts a node's part of account states once the broker runs: the announcements and resync
 * (wireAccounts), the erase runner (resuming pending erases now and every 30 s) and the
 * AccountService that the admin API and the CLI call.
 *
 * @param d.owner this node's name as an erase owner (the node id: stable across restarts)
 * @returns the service, and close (stops the runner at a step boundary, then closes the store)
 */
export function startAccounts(d: {
  accounts: { store: AccountStore; list: AccountList }
  broker: Aedes
  sessions: Sessions
  cluster: ClusterLink | undefined
  stores: Stores
  blockStore: BlockStore
  blocks: BlockIndex
  chats: ChatService
  media: MediaService
  push: PushService
  presence: PresenceTracker
  /** aedes' persistence: a device's stored subscriptions are removed from it. */
  persistence: unknown
  owner: string
  batch: number
  log: Logger
}): { service: AccountService; close: () => Promise<void> } {
  const { store, list } = d.accounts
  const wiring = wireAccounts({
    broker: d.broker,
    sessions: d.sessions,
    list,
    store,
    cluster: d.cluster,
    log: d.log,
  })
  const persistence = d.persistence as { cleanSubscriptions(c: { id: string }): Promise<unknown> }
  const erasure = new Erasure({
    accounts: store,
    stores: { ...d.stores, blocks: d.blockStore },
    hooks: {
      cut: (userId) => wiring.announce({ userId, status: 'erasing' }),
      leaveChat: async (chat, userId) => void (await d.chats.removeByOperator(chat, userId)),
      purgeMedia: (record) => d.media.remove(record),
      // Other nodes keep a stale block of a user who can no longer connect until their resync.
      blocksRemoved: async () => d.blocks.replaceAll(await d.blockStore.all()),
      forgetSubscriptions: async (dev) =>
        void (await persistence.cleanSubscriptions({ id: clientIdOf(dev.userId, dev.deviceId) })),
      forgetPush: async (userId, deviceId) => void (await d.push.forgetDevice(userId, deviceId)),
      clearPresence: async (userId) => {
        // The disconnects of the cut have written their presence by now: nothing rewrites it after.
        await d.presence.settled()
        await new Promise<void>((resolve, reject) =>
          d.broker.publish(
            {
              cmd: 'publish',
              topic: topics.presence(userId),
              payload: Buffer.alloc(0),
              qos: 1,
              retain: true,
              dup: false,
            },
            (err) => (err ? reject(err) : resolve()),
          ),
        )
      },
    },
    options: { owner: d.owner, batch: d.batch },
    log: d.log,
  })
  erasure.start()
  const service = new AccountService({
    store,
    list,
    announce: (userId, status) => wiring.announce({ userId, status }),
    erase: (userId) => erasure.run(userId),
    log: d.log,
  })
  return {
    service,
    close: async () => {
      wiring.stop()
      await erasure.stop()
      await store.close()
    },
  }
}
