import { EncryptedChats, type EncryptedChatsHost } from './encrypted-chats.ts'
import { MlsDevice } from './mls-device.ts'
import type { MlsStorage } from './storage.ts'

/**
 * The MLS client of a device (its record read from `storage`, or made), loaded on demand: the
 * client imports this module only when ClientOptions.mls is given, so an app without encrypted
 * chats does not load ts-mls (with a bundler that splits dynamic imports).
 */
export async function openEncryptedChats(
  host: EncryptedChatsHost,
  storage: MlsStorage,
  identity: string,
): Promise<EncryptedChats> {
  return new EncryptedChats(host, await MlsDevice.open(storage, identity))
}
