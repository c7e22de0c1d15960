import { mkdirSync } from 'node:fs'
import { Aedes, type Client, type PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import type { Settings } from '../config/schema.ts'
import type { AccountService } from '../services/accounts/account-service.ts'
import { loadVerifyKey } from '../services/auth/jwt-keys.ts'
import { createTokenVerifier } from '../services/auth/token-verifier.ts'
import { topics } from '../services/auth/topic-acl.ts'
import type { BlockStore } from '../services/blocks/block-store.ts'
import { isDirectChat } from '../services/chats/chat-ids.ts'
import { diskObjectRoute } from '../services/media/disk-object-store.ts'
import type { MediaService } from '../services/media/media-service.ts'
import type { ObjectStore } from '../services/media/object-store.ts'
import type { Publish } from '../services/messages/publisher.ts'
import type { PresenceTracker } from '../services/presence/presence-tracker.ts'
import { type ErrorNotice, NatterError } from '../services/requests/envelope.ts'
import { createHttpApi } from '../services/requests/http-api.ts'
import { startAccounts } from './account-wiring.ts'
import { wireAdmin } from './admin-wiring.ts'
import { type ClusterLink, openCluster } from './cluster.ts'
import { corsFromSetting } from './cors.ts'
import { wireDevices } from './device-wiring.ts'
import { createHooks, skipDroppedPublishes } from './hooks.ts'
import { allowedHosts } from './host-check.ts'
import { createHttpHandler } from './http.ts'
import { InFlight } from './in-flight.ts'
import type { InboxWiring } from './inbox-wiring.ts'
import { keepaliveWithin } from './keepalive-range.ts'
import { createListeners } from './listeners.ts'
import { rateLimitedNotice } from './rate-limit-wiring.ts'
import { wireServices } from './services.ts'
import { Sessions } from './sessions.ts'
import type { Stores } from './stores.ts'
import { createWebApp } from './web-app.ts'

// aedes' heartbeat: a node missing three is dead, and its clients' wills are published.
const CLUSTER_HEARTBEAT_MS = 5000

export interface NatterNode {
  /** The ports actually bound (differs from the settings when a port was 0). */
  ports: { mqtt: number; ws: number; http: number }
  broker: Aedes
  stores: Stores
  /** Who blocks whom (kept apart from `stores`: opened by services/blocks/open-block-store.ts). */
  blocks: BlockStore
  /** Where media bytes live (disk or S3). */
  objects: ObjectStore
  presence: PresenceTracker
  media: MediaService
  /** Account states: ban, unban, erase, status (docs/admin.md). */
  accounts: AccountService
  /** Inbox delivery from the message store (expireSessions takes a clock in tests). */
  inbox: InboxWiring['inbox']
  /** This node's name in a cluster; undefined on the embedded default. */
  nodeId: string | undefined
  close(): Promise<void>
}

/**
 * Starts one Natter node: its services (broker/services.ts), then the transports on top of them:
 * Aedes with Natter's hooks, the MQTT/TCP, MQTT/WS and HTTP listeners, the admin API, and the
 * cluster-wide announcements of revocations and account states. In memory on the embedded
 * default, or joined to a cluster through Redis when redisUrl is set.
 */
export async function startNode(settings: Settings, log: Logger): Promise<NatterNode> {
  mkdirSync(settings.dataDir, { recursive: true })
  const keySource = await loadVerifyKey(settings)
  if (keySource.generated) {
    log.warn(
      { event: 'dev_secret' },
      'tokens are verified with the generated dev secret in the data directory; set NATTER_JWT_SECRET or a public key for production',
    )
  }
  const verify = createTokenVerifier(settings, keySource.key)
  // Closes a connection whose token has expired, after a token_expired notice (both defined with
  // the hooks below).
  const sessions = new Sessions((client) => onTokenExpired(client), {
    beforeMs: settings.tokenExpiryNoticeSeconds * 1000,
    send: (client, expiresAt) => onTokenExpiring(client, expiresAt),
  })
  // Known once the ports are bound (they may be 0: any free port).
  let httpPort = settings.httpPort
  let wsPort = settings.wsPort
  let ready = false
  const cluster: ClusterLink | undefined = settings.redisUrl
    ? openCluster({ redisUrl: settings.redisUrl, nodeId: settings.nodeId }, log)
    : undefined
  // Sends between the hook and their PUBACK, and publishes on their way to the emitter: a
  // graceful stop lets them finish.
  const sends = new InFlight()
  const publishes = new InFlight()
  let stopping = false

  // The broker is created after the hooks that need it, so they reach it through this binding.
  let broker: Aedes
  const publishTo: Publish = (topic, body, o = {}) =>
    publishes.track(
      new Promise<void>((resolve, reject) =>
        broker.publish(
          {
            cmd: 'publish',
            topic,
            payload: Buffer.from(JSON.stringify(body)),
            qos: o.qos ?? 1,
            retain: o.retain ?? false,
            dup: false,
          },
          (err) => (err ? reject(err) : resolve()),
        ),
      ),
    )
  const services = await wireServices({
    ...{ settings, log, verify, sessions, cluster, publish: publishTo },
    track: (work) => sends.track(work),
    bufferedBytes: () => listeners.buffered(),
    httpBase: () => settings.publicUrl ?? `http://localhost:${httpPort}`,
    announceRevocation: (r) => devicesWiring?.announce(r),
  })
  const { stores, index, blocks, blockStore, objects, telemetry, limits, router, wiring, inbox } = services
  const { chatService, mediaService, messageService, pushService, deviceService, presence, typing } = services
  const { accounts, liveness, undelivered } = services
  let devicesWiring: ReturnType<typeof wireDevices> | undefined
  const notify = (client: Client, notice: ErrorNotice) => {
    const who = sessions.get(client)?.who
    if (!who) return
    publishTo(topics.errors(who.clientId), notice).catch((err: unknown) =>
      log.error({ err, clientId: who.clientId }, 'could not publish an error notice'),
    )
  }
  const handleRequest = async (client: Client, packet: PublishPacket) => {
    const session = sessions.get(client)
    if (!session) return
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
    // Over the request limits: held (its PUBACK waits), then answered rate_limited, not run.
    const retryAfterMs = await limits.requests.admit(client, session.who)
    const outcome =
      retryAfterMs > 0
        ? router.refuse(
            packet.topic,
            payload,
            new NatterError(
              'rate_limited',
              `too many requests: try again in ${retryAfterMs} ms`,
              retryAfterMs,
            ),
          )
        : await router.route(
            { who: session.who, tokenExpiresAt: session.tokenExpiresAt, connected: true },
            packet.topic,
            payload,
          )
    if ('reply' in outcome) await publishTo(topics.reply(session.who.clientId), outcome.reply)
    else await publishTo(topics.errors(session.who.clientId), outcome.notice)
  }
  const onTokenExpired = (client: Client) => {
    log.info({ event: 'token_expired', clientId: client.id }, 'closing connection at token expiry')
    client.close()
  }
  const onTokenExpiring = (client: Client, expiresAt: number) => {
    notify(client, {
      code: 'token_expired',
      message: `the token expires at ${new Date(expiresAt).toISOString()}, and the connection is closed then: reconnect with a fresh token`,
      expiresAt,
    })
  }

  const payloadOf = (packet: PublishPacket) =>
    Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload)
  const handleSend = async (
    client: Client,
    who: Parameters<typeof messageService.send>[0],
    chatId: string,
    packet: PublishPacket,
  ) => {
    const refuseIfStopping = () => {
      if (!stopping) return
      // The client gets no PUBACK and its connection closes: it sends again to another node.
      throw Object.assign(new Error('this node is shutting down'), { code: 'shutting_down' })
    }
    refuseIfStopping()
    // Over the send limits: held (its PUBACK waits), then refused with a retry-after and not stored.
    const retryAfterMs = await limits.sends.admit(client, who)
    if (retryAfterMs > 0)
      return notify(client, rateLimitedNotice(packet.topic, payloadOf(packet), retryAfterMs))
    refuseIfStopping()
    const outcome = await sends.track(messageService.send(who, chatId, payloadOf(packet)))
    if (!outcome.ok) notify(client, outcome.notice)
  }
  const handleTyping = (
    client: Client,
    who: Parameters<typeof messageService.send>[0],
    chatId: string,
    packet: PublishPacket,
  ) => {
    const outcome = typing.check(who, chatId, payloadOf(packet))
    // A direct chat with a block either way relays no typing, and the sender is told nothing.
    if (outcome.ok && isDirectChat(chatId)) {
      const other = index.members(chatId).find((u) => u !== who.userId)
      if (other !== undefined && blocks.eitherBlocks(who.userId, other)) return null
    }
    if (outcome.ok) return outcome.payload
    if (outcome.reason === 'bad_request') {
      notify(client, {
        topic: packet.topic,
        code: 'bad_request',
        message: 'typing payload must be {"state": "typing"|"stopped"}',
      })
    }
    return null
  }

  broker = await Aedes.createBroker({
    ...createHooks({
      verify,
      sessions,
      log,
      notify,
      handleRequest,
      handleSend,
      handleTyping,
      access: services.access,
      telemetry,
      limits,
      devices: deviceService,
    }),
    connectTimeout: settings.connectTimeoutMs,
    // Keep alive 0 and values over the maximum are bounded, so a silent client is always closed.
    preConnect: keepaliveWithin({
      minSeconds: settings.keepaliveMinSeconds,
      maxSeconds: settings.keepaliveMaxSeconds,
    }),
    // ClientConnection never reports a full socket, so aedes never waits for a drain: the
    // drain timeout is enforced there, without holding up anyone else.
    drainTimeout: 0,
    // No cap on deliveries in flight (aedes' default is 100). ClientConnection never makes a
    // delivery wait for a socket, so they complete promptly; and mqemitter's queue for deliveries
    // over the cap drains recursively, which overflowed the stack under a 5,000 msg/s chat load
    // in the benchmark.
    concurrency: 0,
    // MQTT 3.1 limits client ids to 23 bytes; <userId>/<deviceId> needs up to 129.
    maxClientsIdLength: 129,
    // aedes keeps sessions, subscriptions, wills and retained messages; inbox messages are not
    // queued there but read from the message store (broker/inbox-wiring.ts).
    persistence: wiring.persistence,
    ...(cluster
      ? {
          id: cluster.nodeId,
          mq: cluster.mq,
          heartbeatInterval: CLUSTER_HEARTBEAT_MS,
        }
      : {}),
  })
  skipDroppedPublishes(broker)
  devicesWiring = wireDevices({
    ...{ broker, sessions, revocations: services.revocations, store: stores.delivery, cluster, log },
  })
  const accountsWiring = startAccounts({
    ...{ accounts, broker, sessions, cluster, stores, blockStore, blocks, chats: chatService },
    ...{ media: mediaService, push: pushService, presence, persistence: wiring.persistence, log },
    ...{ owner: settings.nodeId ?? cluster?.nodeId ?? 'embedded', batch: settings.eraseBatch },
  })
  const admin = await wireAdmin({
    ...{ settings, stores, blocks: blockStore, objects, accounts: accountsWiring.service, log },
    moderation: {
      deleteMessage: (chatId, seq) => messageService.deleteByOperator(chatId, seq),
      removeMember: (chat, userId) => chatService.removeByOperator(chat, userId),
    },
  })
  wiring.attach(broker)
  await presence.start()
  await liveness.start()
  pushService.start()
  broker.on('clientReady', (client) => {
    sessions.ready(client)
    const who = sessions.get(client)?.who
    if (who) presence.connected(who.userId, client)
    if (who) liveness.connected(who.clientId)
    telemetry.connected(1)
    log.info({ event: 'connected', clientId: client.id })
  })
  broker.on('clientDisconnect', (client) => {
    const who = sessions.get(client)?.who
    sessions.end(client)
    if (who) liveness.disconnected(who.clientId)
    if (who) {
      presence.disconnected(who.userId, client)
      if (!inbox.hasFeed(who.userId)) undelivered.offline(who.userId)
    }
    telemetry.connected(-1)
    log.info({ event: 'disconnected', clientId: client.id })
  })
  broker.on('connackSent', (packet) => telemetry.connack(packet.returnCode ?? 0))
  broker.on('subscribe', (subs, client) =>
    log.info({
      event: 'subscribed',
      clientId: client.id,
      topics: subs.filter((s) => (s.qos as number) !== 128).map((s) => s.topic),
    }),
  )
  broker.on('clientError', (client, err) =>
    log.info({ event: 'client_error', clientId: client.id, err: err.message }),
  )
  broker.on('connectionError', (client, err) =>
    log.info({ event: 'connection_error', clientId: client.id, err: err.message }),
  )

  const cors = corsFromSetting(settings.corsOrigins, log)
  const listeners = createListeners({
    settings,
    log,
    handle: (stream, req) => broker.handle(stream, req),
    http: createHttpHandler({
      cors,
      isReady: () => ready && !broker.closed,
      api: createHttpApi({ verify: services.verifyHttp, router, limit: limits.http }),
      admin: admin.handle,
      metrics: services.registry,
      log,
      objects: diskObjectRoute(objects),
      web: createWebApp({
        wsUrl: (host) => `ws://${host}:${wsPort}${settings.wsPath}`,
        devSecret: keySource.generated ? (keySource.key as Uint8Array) : undefined,
        issuer: settings.jwtIssuer,
        audience: settings.jwtAudience,
        hosts: allowedHosts(settings),
        devTokenOrigins: cors.allowsDevTokens,
        maxTextChars: settings.maxTextChars,
      }),
    }),
  })

  let ports: NatterNode['ports']
  try {
    ports = await listeners.listen()
    httpPort = ports.http
    wsPort = ports.ws
  } catch (err) {
    await closeAll()
    throw err
  }
  ready = true
  log.info({ event: 'listening', host: settings.host, ports, wsPath: settings.wsPath }, 'natter is up')

  async function closeAll() {
    ready = false
    stopping = true
    presence.stop()
    const closing = listeners.stopAccepting()
    // Sends already in the store's hands finish and get their PUBACK before clients are closed,
    // and what they publish (fan-out, receipts) reaches the emitter before it closes.
    const graceEnds = Date.now() + settings.shutdownGraceMs
    if (!(await sends.idle(settings.shutdownGraceMs)))
      log.warn({ event: 'shutdown_grace_over' }, 'sends still running')
    // Gathered cursor moves are written, and their receipts sent, while the broker still runs;
    // past the grace period they are left (a cursor moves on with the next delivery or read).
    const left = () => Math.max(0, graceEnds - Date.now())
    await Promise.race([
      messageService.close(),
      new Promise((resolve) => setTimeout(resolve, left()).unref()),
    ])
    await publishes.idle(left())
    // After the last sends, so that their push jobs are written; pushes under way finish.
    await pushService.stop()
    // An erase under way stops at a step boundary while the broker still runs; it resumes at the next start.
    await accountsWiring.close()
    listeners.terminateWebSockets()
    await new Promise<void>((resolve) => broker.close(() => resolve()))
    await closing
    // Disconnects and acknowledged cursors are written before the stores close; a little time is
    // kept for them even past the grace period (else resends would all be marked DUP).
    await wiring.close(Math.max(left(), 2000))
    services.stopBackground()
    devicesWiring?.stop()
    await presence.settled()
    await cluster?.close()
    await limits.close()
    await stores.messages.close()
    await stores.chats.close()
    await stores.media.close()
    await stores.push.close()
    await stores.delivery.close()
    await blockStore.close()
    await admin.close()
    await stores.profiles.close()
    await stores.keyPackages.close()
    await stores.commits.close()
    await objects.close()
    await Promise.all(Object.values(services.providers).map((p) => p.close()))
  }

  return {
    ports,
    broker,
    stores,
    blocks: blockStore,
    objects,
    presence,
    media: mediaService,
    accounts: accountsWiring.service,
    inbox,
    nodeId: cluster?.nodeId,
    close: closeAll,
  }
}
