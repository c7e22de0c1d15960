export { type ChatSnapshot, ChatState, type ChatStateEvents, type Member } from './chat-state.ts'
export {
  type Chat,
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  createClient,
  type DevicesChangedEvent,
  type MessageStatus,
  NatterClient,
  type Profile,
  type Sending,
  type StatusEvent,
} from './client.ts'
export { type ConnectOptions, connect, type NatterConnection } from './connect.ts'
export {
  type MediaInfo,
  type MediaUrls,
  mediaUrl,
  type Uploaded,
  type UploadOptions,
  uploadMedia,
} from './media.ts'
export { type MembershipEvent, membershipEvent } from './membership-events.ts'
export type { EncryptedBody } from './mls/encrypted-chats.ts'
export type { EncryptedMedia } from './mls/encrypted-media.ts'
export type { DownloadOptions } from './mls/media-transfer.ts'
export {
  MemoryMlsStorage,
  type MlsDeviceRecord,
  type MlsStorage,
  type StoredGroup,
  type StoredKeyPackage,
} from './mls/storage.ts'
export { MemoryOutboxStorage, type OutboxItem, type OutboxStorage } from './outbox.ts'
export { type NatterErrorCode, NatterRequestError, request } from './request.ts'
export type { ChatMessage } from './timeline.ts'
export { clientIdOf, topics } from './topics.ts'
