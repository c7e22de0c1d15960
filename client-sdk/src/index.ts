export { type ConnectOptions, connect, type NatterConnection } from './connect.ts'
export {
  type MediaInfo,
  type MediaUrls,
  mediaUrl,
  type Uploaded,
  type UploadOptions,
  uploadMedia,
} from './media.ts'
export { NatterRequestError, request } from './request.ts'
export { clientIdOf, topics } from './topics.ts'
