import { join } from 'node:path'
import type { Settings } from '../config/schema.ts'
import type { ChatStore } from '../services/chats/chat-store.ts'
import { MongoChatStore } from '../services/chats/mongo-chat-store.ts'
import { SqliteChatStore } from '../services/chats/sqlite-chat-store.ts'
import type { DeliveryStore } from '../services/delivery/delivery-store.ts'
import { MongoDeliveryStore } from '../services/delivery/mongo-delivery-store.ts'
import { SqliteDeliveryStore } from '../services/delivery/sqlite-delivery-store.ts'
import { DiskObjectStore } from '../services/media/disk-object-store.ts'
import type { MediaCatalog } from '../services/media/media-catalog.ts'
import { MongoMediaCatalog } from '../services/media/mongo-media-catalog.ts'
import type { ObjectStore } from '../services/media/object-store.ts'
import { S3ObjectStore } from '../services/media/s3-object-store.ts'
import { SqliteMediaCatalog } from '../services/media/sqlite-media-catalog.ts'
import type { MessageStore } from '../services/messages/message-store.ts'
import { MongoMessageStore } from '../services/messages/mongo-message-store.ts'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'
import type { CommitStore } from '../services/mls/commit-store.ts'
import type { KeyPackageStore } from '../services/mls/key-package-store.ts'
import { MongoCommitStore } from '../services/mls/mongo-commit-store.ts'
import { MongoKeyPackageStore } from '../services/mls/mongo-key-package-store.ts'
import { SqliteCommitStore } from '../services/mls/sqlite-commit-store.ts'
import { SqliteKeyPackageStore } from '../services/mls/sqlite-key-package-store.ts'
import { MongoProfileStore } from '../services/profiles/mongo-profile-store.ts'
import type { ProfileStore } from '../services/profiles/profile-store.ts'
import { SqliteProfileStore } from '../services/profiles/sqlite-profile-store.ts'
import { MongoPushStore } from '../services/push/mongo-push-store.ts'
import type { PushStore } from '../services/push/push-store.ts'
import { SqlitePushStore } from '../services/push/sqlite-push-store.ts'

export interface Stores {
  messages: MessageStore
  chats: ChatStore
  media: MediaCatalog
  push: PushStore
  /** Display names and avatars. */
  profiles: ProfileStore
  /** Per-device MQTT sessions and delivery cursors. */
  delivery: DeliveryStore
  /** The MLS KeyPackage directory (docs/e2ee.md). */
  keyPackages: KeyPackageStore
  /** Accepted MLS Commits, one per chat and epoch. */
  commits: CommitStore
  kind: 'sqlite' | 'mongodb'
}

/** MongoDB when NATTER_MONGODB_URI is set, otherwise SQLite files in the data directory. */
export async function openStores(settings: Settings): Promise<Stores> {
  if (settings.mongodbUri) {
    const [messages, chats, media, push, delivery, profiles, keyPackages, commits] = await Promise.all([
      MongoMessageStore.open(settings.mongodbUri),
      MongoChatStore.open(settings.mongodbUri),
      MongoMediaCatalog.open(settings.mongodbUri),
      MongoPushStore.open(settings.mongodbUri),
      MongoDeliveryStore.open(settings.mongodbUri),
      MongoProfileStore.open(settings.mongodbUri),
      MongoKeyPackageStore.open(settings.mongodbUri),
      MongoCommitStore.open(settings.mongodbUri),
    ])
    return { messages, chats, media, push, delivery, profiles, keyPackages, commits, kind: 'mongodb' }
  }
  return {
    messages: new SqliteMessageStore(join(settings.dataDir, 'messages.db')),
    chats: new SqliteChatStore(join(settings.dataDir, 'chats.db')),
    media: new SqliteMediaCatalog(join(settings.dataDir, 'media.db')),
    push: new SqlitePushStore(join(settings.dataDir, 'push.db')),
    delivery: new SqliteDeliveryStore(join(settings.dataDir, 'delivery.db')),
    profiles: new SqliteProfileStore(join(settings.dataDir, 'profiles.db')),
    keyPackages: new SqliteKeyPackageStore(join(settings.dataDir, 'mls.db')),
    commits: new SqliteCommitStore(join(settings.dataDir, 'mls.db')),
    kind: 'sqlite',
  }
}

/**
 * Only what the media service needs, for `natter media`: chats (membership), the media catalog
 * and profiles (avatars are readable by their owner's chat partners).
 */
export async function openMediaStores(
  settings: Settings,
): Promise<Pick<Stores, 'chats' | 'media' | 'profiles'>> {
  if (settings.mongodbUri) {
    const [chats, media, profiles] = await Promise.all([
      MongoChatStore.open(settings.mongodbUri),
      MongoMediaCatalog.open(settings.mongodbUri),
      MongoProfileStore.open(settings.mongodbUri),
    ])
    return { chats, media, profiles }
  }
  return {
    chats: new SqliteChatStore(join(settings.dataDir, 'chats.db')),
    media: new SqliteMediaCatalog(join(settings.dataDir, 'media.db')),
    profiles: new SqliteProfileStore(join(settings.dataDir, 'profiles.db')),
  }
}

/**
 * S3 when s3Bucket is set, otherwise files in the data directory served by the HTTP port;
 * httpBase is where clients reach that port.
 */
export async function openObjectStore(settings: Settings, httpBase: () => string): Promise<ObjectStore> {
  if (settings.s3Bucket) {
    return S3ObjectStore.open({
      bucket: settings.s3Bucket,
      region: settings.s3Region,
      endpoint: settings.s3Endpoint,
      publicEndpoint: settings.s3PublicEndpoint,
      forcePathStyle: settings.s3ForcePathStyle,
      credentials:
        settings.s3AccessKeyId && settings.s3SecretAccessKey
          ? { accessKeyId: settings.s3AccessKeyId, secretAccessKey: settings.s3SecretAccessKey }
          : undefined,
    })
  }
  return new DiskObjectStore({ dir: join(settings.dataDir, 'media'), baseUrl: httpBase })
}
