import type { Logger } from 'pino'
import type { Settings } from '../config/schema.ts'
import { ApnsProvider } from '../services/push/apns-provider.ts'
import { FcmProvider } from '../services/push/fcm-provider.ts'
import { LogPushProvider, type PushProvider } from '../services/push/push-provider.ts'
import type { Platform } from '../services/push/push-store.ts'

/** FCM and APNs as configured; a platform with no credentials pushes to the log. */
export function pushProviders(s: Settings, log: Logger): Record<Platform, PushProvider> {
  return {
    fcm: s.fcmCredentialsFile
      ? new FcmProvider({ credentialsFile: s.fcmCredentialsFile })
      : new LogPushProvider(log, 'fcm'),
    apns:
      s.apnsKeyFile && s.apnsKeyId && s.apnsTeamId
        ? new ApnsProvider({
            key: s.apnsKeyFile,
            keyId: s.apnsKeyId,
            teamId: s.apnsTeamId,
            address: s.apnsAddress,
          })
        : new LogPushProvider(log, 'apns'),
  }
}
