import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Settings } from '../config/schema.ts'
import { type createTokenVerifier, TokenError, type TokenVerifier } from '../services/auth/token-verifier.ts'
import { clientIdOf } from '../services/auth/topic-acl.ts'
import { BlockIndex } from '../services/blocks/block-index.ts'
import { BlockService } from '../services/blocks/block-service.ts'
import { openBlockStore } from '../services/blocks/open-block-store.ts'
import { ChatService } from '../services/chats/chat-service.ts'
import { MembershipIndex } from '../services/chats/membership-index.ts'
import type { Revocation } from '../services/delivery/delivery-store.ts'
import { DeviceService } from '../services/devices/device-service.ts'
import { RevocationList } from '../services/devices/revocation-list.ts'
import { MediaService } from '../services/media/media-service.ts'
import { MessageService } from '../services/messages/message-service.ts'
import type { Publish } from '../services/messages/publisher.ts'
import { startRetention } from '../services/messages/retention.ts'
import { TypingGate } from '../services/messages/typing-gate.ts'
import { UndeliveredTracker } from '../services/messages/undelivered-tracker.ts'
import { createMediaMetrics } from '../services/metrics/media-metrics.ts'
import { createMetrics } from '../services/metrics/metrics.ts'
import { createPushMetrics } from '../services/metrics/push-metrics.ts'
import { CommitService } from '../services/mls/commit-service.ts'
import { KeyPackageService } from '../services/mls/key-package-service.ts'
import { RedisDeviceCounter } from '../services/presence/device-counter.ts'
import { PresenceTracker } from '../services/presence/presence-tracker.ts'
import { ProfileService } from '../services/profiles/profile-service.ts'
import { LocalDeviceLiveness, RedisDeviceLiveness } from '../services/push/device-liveness.ts'
import { PushService } from '../services/push/push-service.ts'
import { MAX_PAGE_SIZE, operations } from '../services/requests/operations.ts'
import { RequestRouter } from '../services/requests/router.ts'
import { registerSessionOps } from '../services/requests/session-ops.ts'
import { openAccounts } from './account-wiring.ts'
import type { ClusterLink } from './cluster.ts'
import { wireInbox } from './inbox-wiring.ts'
import { mediaLimits } from './media-limits.ts'
import { pushProviders } from './push-providers.ts'
import { wireRateLimits } from './rate-limit-wiring.ts'
import type { Sessions } from './sessions.ts'
import { openObjectStore, openStores } from './stores.ts'

// Typing indicators vanish on receivers after this long without a new one.
const TYPING_EXPIRES_MS = 6000
// Cluster: membership changes are announced to the other nodes on this (unreachable for
// clients: no client may subscribe to $ topics) topic of the shared emitter.
const MEMBERSHIP_TOPIC = '$natter/membership'
// A lost announcement (Redis restarting) leaves a node's membership stale at most this long.
const MEMBERSHIP_RESYNC_MS = 60_000
// Cluster: blocks and unblocks are announced to the other nodes on this topic, and reloaded
// from the shared store as often as memberships.
const BLOCKS_TOPIC = '$natter/blocks'

/** What the services need from the node's transports, bound late where the transport comes later. */
export interface ServiceDeps {
  settings: Settings
  log: Logger
  /** Verifies a JWT as on CONNECT (services/auth/token-verifier.ts). */
  verify: ReturnType<typeof createTokenVerifier>
  sessions: Sessions
  cluster: ClusterLink | undefined
  /** Publishes through the broker (created after the services). */
  publish: Publish
  /** Tracks a send until its PUBACK, so a graceful stop lets it finish. */
  track: <T>(work: Promise<T>) => Promise<T>
  /** Bytes waiting in the listeners' socket buffers (for the metrics). */
  bufferedBytes: () => number
  /** Where clients reach this node's HTTP port (its port is known once bound). */
  httpBase: () => string
  /** Carries a device revocation to every node (broker/device-wiring.ts, wired to the broker). */
  announceRevocation: (r: Revocation) => void
}

/**
 * The services of a node, wired to their stores and to each other, apart from the transports
 * (broker/node.ts creates the broker, its hooks and the listeners on top of these): stores and
 * the in-memory indexes over them, the request router with every operation registered, chats,
 * messages, media, profiles, blocks, devices, accounts, push, presence, typing, rate limits,
 * metrics, inbox delivery, retention, and in a cluster the sharing of memberships and blocks.
 *
 * @returns the services, and close() for what the transports do not close (see broker/node.ts)
 */
export async function wireServices(d: ServiceDeps) {
  const { settings, log, sessions, cluster } = d
  const stores = await openStores(settings)
  log.info({ event: 'stores', kind: stores.kind }, 'message and chat stores open')
  const index = new MembershipIndex()
  index.load(await stores.chats.allMembers())
  const blockStore = await openBlockStore(settings)
  const blocks = new BlockIndex()
  blocks.load(await blockStore.all())
  // Topic rules: membership, and blocks that hide presence (services/blocks/).
  const access = {
    isMember: (chatId: string, userId: string) => index.isMember(chatId, userId),
    shareChat: (a: string, b: string) => index.shareChat(a, b),
    eitherBlocks: (a: string, b: string) => blocks.eitherBlocks(a, b),
  }
  const objects = await openObjectStore(settings, d.httpBase)
  log.info({ event: 'media_store', kind: objects.kind }, 'media store open')
  const undelivered = new UndeliveredTracker()
  const { registry, telemetry } = createMetrics({
    oldestUndeliveredSeconds: () => undelivered.oldestAgeSeconds(),
    bufferedBytes: d.bufferedBytes,
    undeliveredCount: () => undelivered.count(),
  })
  const limits = wireRateLimits({ settings, registry, log })
  const router = new RequestRouter()
  const ops = operations({ maxGroupMembers: settings.maxGroupMembers, maxPageSize: MAX_PAGE_SIZE })
  registerSessionOps(router, ops)
  const wiring = wireInbox({
    settings,
    stores,
    index,
    sessions,
    cluster,
    log,
    onDelivered: (userId, chatId, seq, at) => messageService.delivered(userId, chatId, seq, at),
    onWritten: () => telemetry.messageOut('inbox'),
  })
  const { inbox } = wiring
  const chatService = new ChatService({
    chats: stores.chats,
    messages: stores.messages,
    index,
    inbox: wiring.sink,
    limits: { maxGroupMembers: settings.maxGroupMembers },
    ops,
    blocks,
    isErased: (userId) => accounts.list.refusal(userId) === 'erased',
    mutedChats: async (userId) => new Set((await stores.push.mutes([userId])).map((m) => m.chatId)),
  })
  chatService.register(router)
  new BlockService({ store: blockStore, index: blocks, ops }).register(router)
  const mediaService = new MediaService({
    catalog: stores.media,
    objects,
    limits: mediaLimits(settings),
    isMember: (chatId, userId) => index.isMember(chatId, userId),
    ops,
    log,
    telemetry: createMediaMetrics(registry),
    // Avatars: readable by the owner's chat partners, and kept while in use.
    alsoReadable: (record, userId) => profileService.mayReadAvatar(record, userId),
    keep: (mediaId) => stores.profiles.isAvatar(mediaId),
  })
  mediaService.register(router)
  const profileService: ProfileService = new ProfileService({
    store: stores.profiles,
    media: stores.media,
    index,
    toUsers: (event, to) => wiring.toUsers(event, to),
    ops,
    log,
  })
  profileService.register(router)
  router.guard('media.begin', limits.upload)
  const liveness = cluster
    ? new RedisDeviceLiveness({
        redis: cluster.redis,
        nodeId: cluster.nodeId,
        onError: (err) => log.warn({ err }, 'could not record a device session in Redis'),
      })
    : new LocalDeviceLiveness()
  const providers = pushProviders(settings, log)
  const pushService = new PushService({
    store: stores.push,
    chats: stores.chats,
    messages: stores.messages,
    liveness,
    providers,
    members: (chatId) => index.members(chatId),
    // Banned and erased accounts get no pushes: a ban keeps content off their devices too.
    refused: (userId) => accounts.list.refusal(userId) !== null,
    options: { graceMs: settings.pushGraceMs, workerId: cluster?.nodeId ?? `${hostname()}:${process.pid}` },
    ops,
    log,
    telemetry: createPushMetrics(registry),
  })
  pushService.register(router)
  // Revoked devices, in memory for the CONNECT check; kept current by broker/device-wiring.ts.
  const revocations = new RevocationList()
  revocations.load(await stores.delivery.revocations())
  const accounts = await openAccounts(settings)
  const keyPackages = new KeyPackageService({
    store: stores.keyPackages,
    shareChat: (a, b) => index.shareChat(a, b),
    maxPerDevice: settings.mlsMaxKeyPackages,
    ops,
    log,
  })
  keyPackages.register(router)
  const commitService = new CommitService({
    commits: stores.commits,
    messages: stores.messages,
    chats: stores.chats,
    index,
    // Revoked for good: a revocation applies (this node's list, else the store's: another node's
    // announcement may not have come yet) and the device has no session (it did not sign in again).
    revoked: async (userId, deviceId, fromStore) => {
      const listed =
        revocations.revokedBefore(userId, deviceId) > 0 ||
        (fromStore &&
          (await stores.delivery.revocations()).some(
            (r) =>
              r.userId === userId &&
              (r.deviceId === deviceId || (r.deviceId === null && r.except !== deviceId)),
          ))
      return listed && !(await stores.delivery.session({ userId, deviceId }))
    },
    inbox: wiring.sink,
    keyPackages: stores.keyPackages,
    ops,
    log,
  })
  commitService.register(router)
  const deviceService = new DeviceService({
    delivery: stores.delivery,
    push: stores.push,
    forgetPush: (userId, deviceId) => pushService.forgetDevice(userId, deviceId),
    forgetSubscriptions: async (dev) => {
      // The persistence aedes was given (wiring.persistence), subscriptions and all.
      const persistence = wiring.persistence as { cleanSubscriptions(c: { id: string }): Promise<unknown> }
      await persistence.cleanSubscriptions({
        id: clientIdOf(dev.userId, dev.deviceId),
      })
    },
    forgetKeyPackages: (userId, which) =>
      'deviceId' in which
        ? keyPackages.forgetDevice(userId, which.deviceId)
        : keyPackages.forgetOtherDevices(userId, which.except),
    leaveGroups: (userId, which, by, revokedAt) => commitService.devicesRevoked(userId, which, by, revokedAt),
    revocations,
    accounts: accounts.list,
    announce: d.announceRevocation,
    maxDevices: settings.maxDevicesPerUser,
    ops,
    log,
  })
  deviceService.register(router)
  // HTTP callers are the device `http`: "log out everywhere else" from another device refuses
  // their earlier tokens too.
  const verifyHttp: TokenVerifier = async (token) => {
    const v = await d.verify(token)
    if (deviceService.isRevoked(v.userId, 'http', v.issuedAt))
      throw new TokenError('revoked', 'token revoked')
    const refused = accounts.list.refusal(v.userId)
    if (refused) throw new TokenError(`account_${refused}`, `account ${refused}`)
    return v
  }
  const messageService = new MessageService({
    chats: stores.chats,
    messages: stores.messages,
    index,
    inbox: wiring.sink,
    // This node's gathered acknowledgements first (other nodes' are at most 50 ms behind).
    deviceCursors: async (chatId) => {
      await inbox.flush()
      return stores.delivery.chatCursors(chatId)
    },
    limits: { maxTextChars: settings.maxTextChars },
    ops,
    log,
    telemetry,
    undelivered,
    // Only a device that receives its inbox acknowledges: a user connected without one would
    // count every message as undelivered.
    isOnline: (userId) => inbox.hasFeed(userId),
    media: mediaService,
    push: pushService,
    track: d.track,
    blocks,
  })
  messageService.register(router)
  // The send operation counts against the same send limits as c/<chatId>/send.
  router.guard('send', limits.sendOperation)
  const presence = new PresenceTracker({
    store: stores.chats,
    publish: d.publish,
    log,
    ...(cluster
      ? { counter: new RedisDeviceCounter({ redis: cluster.redis, nodeId: cluster.nodeId, log }) }
      : {}),
  })
  const typing = new TypingGate({ minIntervalMs: settings.typingIntervalMs, expiresInMs: TYPING_EXPIRES_MS })
  const retention = startRetention({
    store: stores.messages,
    days: settings.retentionDays,
    log,
    sweepMedia: () => mediaService.sweep(),
  })
  const resync = cluster ? shareMembership(cluster) : undefined
  const blocksResync = cluster ? shareBlocks(cluster) : undefined

  /**
   * Tells the other nodes which chats' members changed here; they reload those chats from the
   * shared store. A full reload every minute bounds the staleness when an announcement is lost.
   */
  function shareMembership({ nodeId, mq: emitter }: ClusterLink): NodeJS.Timeout {
    const changed = new Set<string>()
    const mq = emitter as {
      emit(m: { topic: string; payload: string }, cb?: (err?: Error) => void): void
      on(topic: string, fn: (m: { payload: string }, done: () => void) => void): void
    }
    index.onChange = (chatId) => {
      if (changed.size === 0) {
        setImmediate(() => {
          for (const id of changed) {
            mq.emit({ topic: MEMBERSHIP_TOPIC, payload: JSON.stringify({ chatId: id, from: nodeId }) })
          }
          changed.clear()
        })
      }
      changed.add(chatId)
    }
    mq.on(MEMBERSHIP_TOPIC, (m, done) => {
      done()
      const { chatId, from } = JSON.parse(m.payload) as { chatId: string; from: string }
      if (from === nodeId) return
      stores.chats.members(chatId).then(
        (members) => {
          index.replaceChat(chatId, members)
          inbox.membersChanged(chatId)
        },
        (err: unknown) => log.error({ err, chatId }, 'could not reload a chat’s members'),
      )
    })
    const timer = setInterval(() => {
      stores.chats.allMembers().then(
        (members) => {
          const byChat = new Map<string, typeof members>()
          for (const m of members) byChat.set(m.chatId, [...(byChat.get(m.chatId) ?? []), m])
          for (const [chatId, list] of byChat) {
            index.replaceChat(chatId, list)
            inbox.membersChanged(chatId)
          }
        },
        (err: unknown) => log.error({ err }, 'membership resync failed'),
      )
    }, MEMBERSHIP_RESYNC_MS)
    timer.unref()
    return timer
  }

  /**
   * Tells the other nodes which block changed here; they read that pair again from the shared
   * store. A full reload every minute bounds the staleness when an announcement is lost.
   */
  function shareBlocks({ nodeId, mq: emitter }: ClusterLink): NodeJS.Timeout {
    const mq = emitter as {
      emit(m: { topic: string; payload: string }, cb?: (err?: Error) => void): void
      on(topic: string, fn: (m: { payload: string }, done: () => void) => void): void
    }
    blocks.onChange = (blockerId, blockedId) =>
      mq.emit({ topic: BLOCKS_TOPIC, payload: JSON.stringify({ blockerId, blockedId, from: nodeId }) })
    mq.on(BLOCKS_TOPIC, (m, done) => {
      done()
      const { blockerId, blockedId, from } = JSON.parse(m.payload) as Record<string, string>
      if (from === nodeId || !blockerId || !blockedId) return
      blockStore.get(blockerId, blockedId).then(
        (block) => {
          blocks.set(blockerId, blockedId, block !== null)
          log.info({ event: 'block_reloaded', blockerId, blockedId, blocked: block !== null })
        },
        (err: unknown) => log.error({ err }, 'could not reload a block'),
      )
    })
    const timer = setInterval(() => {
      blockStore.all().then(
        (all) => blocks.replaceAll(all),
        (err: unknown) => log.error({ err }, 'block resync failed'),
      )
    }, MEMBERSHIP_RESYNC_MS)
    timer.unref()
    return timer
  }

  return {
    stores,
    index,
    blockStore,
    blocks,
    access,
    objects,
    undelivered,
    registry,
    telemetry,
    limits,
    router,
    wiring,
    inbox,
    chatService,
    mediaService,
    profileService,
    liveness,
    providers,
    pushService,
    revocations,
    accounts,
    deviceService,
    verifyHttp,
    messageService,
    presence,
    typing,
    /** Stops the background work (retention, cluster resyncs); the node closes the rest in its order. */
    stopBackground: () => {
      retention.stop()
      clearInterval(resync)
      clearInterval(blocksResync)
    },
  }
}

export type Services = Awaited<ReturnType<typeof wireServices>>
