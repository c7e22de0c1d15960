import { z } from 'zod'
import { parseCorsOrigins } from '../broker/cors.ts'
import { parseAdminKeys } from '../services/admin/admin-keys.ts'

// Every setting is described once here; its environment variable, its config-file key, the
// defaults in .env.example and the table in docs/configuration.md all derive from this object
// (a test keeps the last two in step).

const integer = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: `expected an integer from ${min} to ${max}` })
      .int({ error: `expected an integer from ${min} to ${max}` })
      .min(min, { error: `expected an integer from ${min} to ${max}` })
      .max(max, { error: `expected an integer from ${min} to ${max}` }),
  )

const port = integer(0, 65535)
const flag = z.preprocess(
  (v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' || v === '' ? false : v),
  z.boolean({ error: 'expected true or false' }),
)
const MiB = 1024 * 1024
const optionalText = z.preprocess((v) => (v === '' ? undefined : v), z.string().optional())
/** A rate limit: "30/10s" is 30 per window of 10 seconds (m: minutes, h: hours); "off" is none. Parsed by services/limits/rate.ts. */
const rate = (fallback: string) =>
  z
    .string()
    .trim()
    .regex(/^(off|[1-9]\d{0,8}\/[1-9]\d{0,4}[smh])$/, {
      error: 'expected N/<window> such as 30/10s, 100/1m or 1000/1h, or off',
    })
    .default(fallback)

/**
 * corsOrigins: NATTER_CORS_ORIGINS' text (origins separated by commas), or in a JSON config
 * file an array of origins too, joined here into that text once each entry is checked to be one
 * origin as a string (parseCorsOrigins checks the origins themselves, in settingsSchema).
 */
const originList = z
  .union([z.string(), z.array(z.unknown())], {
    error: 'expected origins separated by commas, or in a config file an array of origins',
  })
  .optional()
  .transform((v, ctx) => {
    if (!Array.isArray(v)) return v === '' ? undefined : v
    v.forEach((entry, i) => {
      if (typeof entry !== 'string' || entry.trim() === '' || entry.includes(',')) {
        ctx.addIssue({
          code: 'custom',
          message: `entry ${i} of the array, ${JSON.stringify(entry)}, is not an origin: expected one origin per entry, as a string such as "https://app.example.com"`,
        })
      }
    })
    return v.length > 0 ? v.join(',') : undefined
  })

export const settingsShape = {
  host: z
    .string()
    .min(1)
    .default('0.0.0.0')
    .describe(
      'Address every listener binds to (0.0.0.0 for all IPv4, :: for all, 127.0.0.1 for local only).',
    ),
  mqttPort: port.default(1883).describe('MQTT over TCP. 0 picks a free port (it is logged).'),
  wsPort: port.default(8083).describe('MQTT over WebSocket. 0 picks a free port (it is logged).'),
  wsPath: z
    .string()
    .regex(/^\/[\w\-./]*$/, { error: 'expected a URL path starting with /' })
    .default('/mqtt')
    .describe('HTTP path of the MQTT WebSocket endpoint.'),
  httpPort: port.default(8080).describe('HTTP: /healthz, /readyz. 0 picks a free port (it is logged).'),
  dataDir: z
    .string()
    .min(1)
    .default('./data')
    .describe(
      'Directory for the embedded default: generated dev secret, SQLite databases of messages and chats.',
    ),
  logLevel: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino log level.'),
  maxPacketBytes: integer(1024, 268_435_455)
    .default(262_144)
    .describe('Largest MQTT packet accepted; a client sending a larger one is disconnected.'),
  connectTimeoutMs: integer(1000, 600_000)
    .default(30_000)
    .describe('A socket that sends no CONNECT within this time is closed.'),
  keepaliveMinSeconds: integer(1, 65_535)
    .default(10)
    .describe(
      'A CONNECT keep alive below this is raised to it: the server closes a silent client after 1.5 times the applied keep alive.',
    ),
  keepaliveMaxSeconds: integer(1, 65_535)
    .default(300)
    .describe(
      'A CONNECT keep alive of 0 (off) or above this is bounded to it, so a silent client is closed and its presence ends.',
    ),
  drainTimeoutMs: integer(0, 600_000)
    .default(30_000)
    .describe(
      'A client whose socket stays full this long is disconnected (0: never); delivery to others never waits for it.',
    ),
  maxClientBufferBytes: integer(65_536, 1_073_741_824)
    .default(67_108_864)
    .describe(
      'Bytes that may wait to be written to one client before it is disconnected, however fast it reads.',
    ),
  mongodbUri: optionalText.describe(
    'When set, messages and chats live in this MongoDB (any MongoDB-wire server); unset: SQLite in the data directory.',
  ),
  redisUrl: optionalText.describe(
    'When set, this node joins a cluster on this Redis (redis://, rediss://, or redis-sentinel://host:port,…/master): sessions, subscriptions, retained messages, QoS 1 queues and presence are shared by every node. Needs mongodbUri and a shared JWT key.',
  ),
  nodeId: optionalText.describe(
    "This node's name in a cluster, in logs and presence. Unset: host name and process id.",
  ),
  shutdownGraceMs: integer(0, 600_000)
    .default(10_000)
    .describe(
      'On SIGTERM, how long in-flight sends may take to finish their store write and PUBACK before clients are disconnected.',
    ),
  publicUrl: optionalText.describe(
    'Base URL of the HTTP port as clients reach it (https://chat.example.com), for the media links of the disk store. Unset: http://localhost:<httpPort>.',
  ),
  corsOrigins: originList.describe(
    'Origins of web apps on other sites that may call /v1/<op> and, on the embedded default, /dev/token from a browser (CORS): exact origins separated by commas (https://app.example.com,http://localhost:5173), in a config file also an array of them, or * for any origin on /v1/<op> only (dev tokens need an exact origin). Unset: none, same-origin pages only.',
  ),
  s3Bucket: optionalText.describe(
    'When set, media live in this S3 bucket (created if missing); unset: files in the data directory, served by the HTTP port.',
  ),
  s3Region: z.string().min(1).default('us-east-1').describe('S3 region.'),
  s3Endpoint: optionalText.describe(
    'S3-compatible server (versitygw, MinIO, R2…), e.g. http://127.0.0.1:7070. Unset: AWS.',
  ),
  s3PublicEndpoint: optionalText.describe(
    'Endpoint in the URLs handed to clients, when they reach the S3 server at another address than Natter does (behind a proxy, or in docker compose). Unset: s3Endpoint.',
  ),
  s3ForcePathStyle: flag
    .default(false)
    .describe(
      'Address buckets as endpoint/bucket rather than bucket.endpoint (most S3-compatible servers need true).',
    ),
  s3AccessKeyId: optionalText.describe(
    "S3 access key; with s3SecretAccessKey. Unset: the AWS SDK's default chain (AWS_* variables, profile, instance role).",
  ),
  s3SecretAccessKey: optionalText.describe('S3 secret key; with s3AccessKeyId.'),
  mediaMaxImageBytes: integer(1, 5 * 1024 * MiB)
    .default(16 * MiB)
    .describe('Largest image upload (JPEG, PNG, WebP, GIF, AVIF), in bytes.'),
  mediaMaxVideoBytes: integer(1, 5 * 1024 * MiB)
    .default(256 * MiB)
    .describe('Largest video upload (MP4, WebM, QuickTime), in bytes.'),
  mediaMaxAudioBytes: integer(1, 5 * 1024 * MiB)
    .default(32 * MiB)
    .describe('Largest audio upload (voice notes: AAC, MP3, MP4, Ogg, WebM, WAV), in bytes.'),
  mediaMaxFileBytes: integer(1, 5 * 1024 * MiB)
    .default(100 * MiB)
    .describe('Largest file upload (PDF, ZIP, text, office documents, octet-stream), in bytes.'),
  mediaUploadUrlSeconds: integer(10, 7 * 24 * 3600)
    .default(900)
    .describe('How long an upload URL is valid.'),
  mediaDownloadUrlSeconds: integer(10, 7 * 24 * 3600)
    .default(300)
    .describe('How long a download or thumbnail URL is valid.'),
  pushGraceMs: integer(0, 600_000)
    .default(3000)
    .describe(
      'A device without a live session is pushed this long after a message; one that reconnects meanwhile is not.',
    ),
  fcmCredentialsFile: optionalText.describe(
    'Path of the Firebase service account JSON: FCM pushes on. Unset: FCM pushes go to the log.',
  ),
  apnsKeyFile: optionalText.describe(
    'Path of the APNs auth key (.p8), with apnsKeyId and apnsTeamId: APNs pushes on. Unset: APNs pushes go to the log.',
  ),
  apnsKeyId: optionalText.describe('The APNs auth key’s id (10 characters).'),
  apnsTeamId: optionalText.describe('The Apple developer team id (10 characters).'),
  apnsAddress: optionalText.describe(
    'APNs host (or host:port) instead of Apple’s (api.push.apple.com, or the sandbox per device): a gateway, or a test endpoint.',
  ),
  retentionDays: integer(1, 36_500)
    .default(30)
    .describe('Messages older than this many days are deleted by an hourly job.'),
  sessionExpiryDays: integer(1, 36_500)
    .default(30)
    .describe(
      'A persistent session (clean=false) not seen for this many days is removed with its delivery state by the hourly job.',
    ),
  maxInflight: integer(1, 65_535)
    .default(100)
    .describe(
      'Inbox deliveries sent to one device and not yet acknowledged (PUBACK); the rest wait in the message store.',
    ),
  maxTextChars: integer(1, 65_536)
    .default(4000)
    .describe(
      'Longest message text, in characters: user-perceived characters (grapheme clusters, Unicode UAX #29), so an emoji or a letter with its accents is one; each has at most 32 code points.',
    ),
  maxGroupMembers: integer(2, 1000).default(1000).describe('Largest group, creator included.'),
  maxDevicesPerUser: integer(1, 1000)
    .default(10)
    .describe(
      'Devices (MQTT sessions) one user may have; a CONNECT of one more is refused (CONNACK 5) until one is revoked or its session expires.',
    ),
  mlsMaxKeyPackages: integer(1, 10_000)
    .default(100)
    .describe(
      'One-time MLS KeyPackages one device may hold in the directory (docs/e2ee.md); an upload that would pass it is refused (too_many_key_packages).',
    ),
  eraseBatch: integer(1, 100_000)
    .default(500)
    .describe(
      'Messages an account erase removes per store call (docs/admin.md#erase): each batch is one transaction and one erase_progress log line.',
    ),
  typingIntervalMs: integer(0, 60_000)
    .default(1000)
    .describe('A device may send one typing indicator per chat this often; more are dropped.'),
  jwtAlgorithm: z
    .enum(['HS256', 'RS256', 'ES256'])
    .default('HS256')
    .describe('The only JWT algorithm accepted on CONNECT.'),
  jwtSecret: optionalText.describe(
    'HS256 secret, at least 32 bytes of UTF-8 (256 bits, RFC 7518 section 3.2). Unset: a random secret is generated in the data directory on first start.',
  ),
  adminKeys: optionalText.describe(
    'Admin API credentials (docs/admin.md): name:key pairs separated by commas, each key at least 32 characters. The name is what the audit log records. Unset: the admin API answers 404.',
  ),
  jwtPublicKey: optionalText.describe('RS256/ES256: PEM public key (SPKI) that verifies tokens.'),
  jwtPublicKeyFile: optionalText.describe(
    'RS256/ES256: path of a PEM public key file (instead of jwtPublicKey).',
  ),
  jwtIssuer: optionalText.describe('When set, tokens must carry this iss claim.'),
  jwtAudience: optionalText.describe('When set, tokens must carry this aud claim.'),
  jwtClockToleranceSeconds: integer(0, 300)
    .default(5)
    .describe(
      "Leeway for a token issuer's clock running ahead (nbf). exp is exact: a token is refused from its exp on.",
    ),
  tokenExpiryNoticeSeconds: integer(0, 3600)
    .default(30)
    .describe(
      'A connection gets a token_expired notice on its error topic this long before its token expires and the server closes it (0: none).',
    ),
  limitSendsPerDevice: rate('50/10s').describe(
    'Chat messages one device may send (N/window, or off); over it they are held, then refused with rate_limited.',
  ),
  limitSendsPerUser: rate('100/10s').describe(
    'Chat messages one user may send from all devices and nodes together.',
  ),
  limitRequestsPerDevice: rate('200/10s').describe('Requests (req/<op>) one device may make.'),
  limitRequestsPerUser: rate('400/10s').describe(
    'Requests one user may make from all devices and nodes together.',
  ),
  limitTypingPerDevice: rate('20/10s').describe(
    'Typing indicators one device may send, all chats together; more are dropped.',
  ),
  limitTypingPerUser: rate('40/10s').describe(
    'Typing indicators one user may send from all devices together.',
  ),
  limitUploadsPerDevice: rate('30/1m').describe('Media uploads (media.begin) one device may start.'),
  limitUploadsPerUser: rate('60/1m').describe('Media uploads one user may start, MQTT and HTTP together.'),
  limitConnectsPerIp: rate('60/10s').describe(
    'CONNECTs from one IP address, before the token is checked; over it: CONNACK 3 (server unavailable).',
  ),
  limitConnectsPerUser: rate('30/1m').describe('Accepted CONNECTs of one user; over it: CONNACK 3.'),
  limitHttpPerToken: rate('100/10s').describe('HTTP API calls (POST /v1/<op>) with one token; over it: 429.'),
  limitHoldMs: integer(0, 60_000)
    .default(5000)
    .describe(
      'How long a chat send or request over its limit is held (its PUBACK delayed) waiting for room, before it is refused with rate_limited; below keepaliveMinSeconds.',
    ),
} as const

export const settingsSchema = z.object(settingsShape).superRefine((s, ctx) => {
  if (s.redisUrl !== undefined) {
    if (!/^rediss?(-sentinel)?:\/\//.test(s.redisUrl)) {
      ctx.addIssue({
        code: 'custom',
        path: ['redisUrl'],
        message: 'expected a redis://, rediss:// or redis-sentinel:// URL',
      })
    }
    // Every node must see the same messages and accept the same tokens.
    if (s.mongodbUri === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['redisUrl'],
        message: 'a cluster needs mongodbUri: SQLite files are not shared between nodes',
      })
    }
    if (s.s3Bucket === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['redisUrl'],
        message: 'a cluster needs s3Bucket: media files on one node’s disk are not reachable from the others',
      })
    }
    if (s.jwtAlgorithm === 'HS256' && s.jwtSecret === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['redisUrl'],
        message: 'a cluster needs jwtSecret: a generated dev secret differs on every node',
      })
    }
  }
  // A held publish stops the server reading its connection, PINGREQs included (docs/protocol.md#rate-limits).
  if (s.limitHoldMs >= s.keepaliveMinSeconds * 1000) {
    ctx.addIssue({
      code: 'custom',
      path: ['limitHoldMs'],
      message: `expected less than keepaliveMinSeconds (${s.keepaliveMinSeconds} s)`,
    })
  }
  if (s.keepaliveMinSeconds > s.keepaliveMaxSeconds) {
    ctx.addIssue({
      code: 'custom',
      path: ['keepaliveMinSeconds'],
      message: 'expected at most keepaliveMaxSeconds',
    })
  }
  const apns = [s.apnsKeyFile, s.apnsKeyId, s.apnsTeamId]
  if (apns.some((v) => v !== undefined) && apns.some((v) => v === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [
        s.apnsKeyFile === undefined ? 'apnsKeyFile' : s.apnsKeyId === undefined ? 'apnsKeyId' : 'apnsTeamId',
      ],
      message: 'apnsKeyFile, apnsKeyId and apnsTeamId go together',
    })
  }
  if ((s.s3AccessKeyId === undefined) !== (s.s3SecretAccessKey === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [s.s3AccessKeyId === undefined ? 's3AccessKeyId' : 's3SecretAccessKey'],
      message: 's3AccessKeyId and s3SecretAccessKey go together',
    })
  }
  if (s.publicUrl !== undefined && !/^https?:\/\/[^/]+/.test(s.publicUrl)) {
    ctx.addIssue({ code: 'custom', path: ['publicUrl'], message: 'expected an http:// or https:// URL' })
  }
  const cors = parseCorsOrigins(s.corsOrigins)
  if ('problems' in cors)
    for (const message of cors.problems) ctx.addIssue({ code: 'custom', path: ['corsOrigins'], message })
  for (const key of ['s3Endpoint', 's3PublicEndpoint'] as const) {
    const url = s[key]
    if (url !== undefined && !/^https?:\/\/[^/]+/.test(url)) {
      ctx.addIssue({ code: 'custom', path: [key], message: 'expected an http:// or https:// URL' })
    }
  }
  if (s.adminKeys !== undefined) {
    const parsed = parseAdminKeys(s.adminKeys)
    if ('problems' in parsed)
      for (const message of parsed.problems) ctx.addIssue({ code: 'custom', path: ['adminKeys'], message })
  }
  if (s.jwtAlgorithm === 'HS256') {
    // Tokens are verified with the secret's UTF-8 bytes (services/auth/jwt-keys.ts): those are what count.
    if (s.jwtSecret !== undefined && new TextEncoder().encode(s.jwtSecret).length < 32) {
      ctx.addIssue({ code: 'custom', path: ['jwtSecret'], message: 'expected at least 32 bytes (256 bits)' })
    }
  } else if (s.jwtPublicKey === undefined && s.jwtPublicKeyFile === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['jwtPublicKey'],
      message: `${s.jwtAlgorithm} needs jwtPublicKey or jwtPublicKeyFile`,
    })
  }
})

export type Settings = z.infer<typeof settingsSchema>
export type SettingKey = keyof typeof settingsShape

export const settingKeys = Object.keys(settingsShape) as SettingKey[]

export function envName(key: string): string {
  return `NATTER_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`
}

/** Variables the launcher scripts and `natter admin` (cli/admin.ts) read; not settings, but not unknown either. */
export const launcherEnv = new Set([
  'NATTER_CONFIG_FILE',
  'NATTER_NODE',
  'NATTER_ADMIN_KEY',
  'NATTER_ADMIN_URL',
])
