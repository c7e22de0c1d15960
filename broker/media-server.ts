import { mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { collectDefaultMetrics, Registry } from 'prom-client'
import type { Settings } from '../config/schema.ts'
import { loadVerifyKey } from '../services/auth/jwt-keys.ts'
import { createTokenVerifier } from '../services/auth/token-verifier.ts'
import { diskObjectRoute } from '../services/media/disk-object-store.ts'
import { MediaService } from '../services/media/media-service.ts'
import { createMediaMetrics } from '../services/metrics/media-metrics.ts'
import { createHttpApi } from '../services/requests/http-api.ts'
import { MAX_PAGE_SIZE, operations } from '../services/requests/operations.ts'
import { RequestRouter } from '../services/requests/router.ts'
import { corsFromSetting } from './cors.ts'
import { createHttpHandler } from './http.ts'
import { mediaLimits } from './media-limits.ts'
import { wireRateLimits } from './rate-limit-wiring.ts'
import { openMediaStores, openObjectStore } from './stores.ts'

export interface MediaServer {
  port: number
  close(): Promise<void>
}

/**
 * The media service on its own (`natter media`): media.begin, media.complete and media.get over
 * HTTP (POST /v1/media.*), on the same stores as the nodes, so media traffic can be scaled apart
 * from MQTT. Membership is read from the chat store on each request, as this process keeps no
 * membership index. Sweeping old media stays with the nodes.
 */
export async function startMediaServer(settings: Settings, log: Logger): Promise<MediaServer> {
  mkdirSync(settings.dataDir, { recursive: true })
  const keySource = await loadVerifyKey(settings)
  const verify = createTokenVerifier(settings, keySource.key)
  const stores = await openMediaStores(settings)
  let port = settings.httpPort
  const objects = await openObjectStore(settings, () => settings.publicUrl ?? `http://localhost:${port}`)
  const ops = operations({ maxGroupMembers: settings.maxGroupMembers, maxPageSize: MAX_PAGE_SIZE })
  const router = new RequestRouter()
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'natter_media_' })
  // The same limits as on the nodes: per token, and uploads per device and user.
  const limits = wireRateLimits({ settings, registry, log })
  new MediaService({
    catalog: stores.media,
    objects,
    limits: mediaLimits(settings),
    isMember: async (chatId, userId) => (await stores.chats.members(chatId)).some((m) => m.userId === userId),
    // Avatars: readable by anyone who shares a chat with a user whose avatar the media is.
    alsoReadable: async (record, userId) => {
      if (record.kind !== 'image') return false
      for (const owner of await stores.profiles.avatarOwners(record.id)) {
        if (owner === userId) return true
        for (const chat of await stores.chats.chatsOf(owner)) {
          if ((await stores.chats.members(chat.id)).some((m) => m.userId === userId)) return true
        }
      }
      return false
    },
    ops,
    log,
    telemetry: createMediaMetrics(registry),
  }).register(router)
  router.guard('media.begin', limits.upload)
  let ready = false
  const server = createServer(
    createHttpHandler({
      isReady: () => ready,
      api: createHttpApi({ verify, router, limit: limits.http }),
      metrics: registry,
      log,
      objects: diskObjectRoute(objects),
      cors: corsFromSetting(settings.corsOrigins, log),
    }),
  )
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(settings.httpPort, settings.host, () => resolve())
  })
  port = (server.address() as AddressInfo).port
  ready = true
  log.info(
    { event: 'listening', host: settings.host, ports: { http: port }, objects: objects.kind },
    'natter media service is up',
  )
  return {
    port,
    close: async () => {
      ready = false
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await stores.media.close()
      await stores.chats.close()
      await stores.profiles.close()
      await objects.close()
      await limits.close()
    },
  }
}
