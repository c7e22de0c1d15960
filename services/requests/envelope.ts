import { z } from 'zod'
import { characters } from '../text/graphemes.ts'

/** Where a code can reach a client: replies and notices over MQTT, error bodies over HTTP. */
export type ErrorTransport = 'mqtt' | 'http'

const BOTH = ['mqtt', 'http'] as const
const MQTT = ['mqtt'] as const
const HTTP = ['http'] as const

/**
 * Every error code the server can send, with the HTTP status that carries it and the transports
 * it can come over: the one catalogue that the code (every emitter is typed with ErrorCode), the
 * schemas (docs/schemas.md) and the docs test (the table in docs/protocol.md#errors) all read.
 * test/error-catalogue.test.ts fails when a source file emits a code missing here.
 */
export const errorCatalogue = {
  bad_request: { status: 400, over: BOTH },
  unknown_operation: { status: 404, over: BOTH },
  forbidden_topic: { status: 403, over: MQTT },
  retain_not_allowed: { status: 400, over: MQTT },
  unauthorized: { status: 401, over: HTTP },
  token_expired: { status: 401, over: BOTH },
  chat_not_found: { status: 404, over: BOTH },
  not_found: { status: 404, over: BOTH },
  not_allowed: { status: 403, over: BOTH },
  too_many_members: { status: 422, over: BOTH },
  last_admin: { status: 409, over: BOTH },
  too_large: { status: 413, over: BOTH },
  rate_limited: { status: 429, over: BOTH },
  media_not_found: { status: 404, over: BOTH },
  unsupported_media_type: { status: 415, over: BOTH },
  upload_incomplete: { status: 409, over: BOTH },
  checksum_mismatch: { status: 422, over: BOTH },
  invalid_image: { status: 422, over: BOTH },
  method_not_allowed: { status: 405, over: HTTP },
  host_not_allowed: { status: 421, over: HTTP },
  origin_not_allowed: { status: 403, over: HTTP },
  signature_mismatch: { status: 403, over: HTTP },
  url_expired: { status: 403, over: HTTP },
  bad_digest: { status: 400, over: HTTP },
  invalid_key_package: { status: 422, over: BOTH },
  too_many_key_packages: { status: 409, over: BOTH },
  invalid_commit: { status: 422, over: BOTH },
  stale_epoch: { status: 409, over: BOTH },
  internal: { status: 500, over: BOTH },
} as const satisfies Record<string, { status: number; over: readonly ErrorTransport[] }>

type Catalogue = typeof errorCatalogue
export type ErrorCode = keyof Catalogue
/** Codes that replies (d/<clientId>/res) and notices (d/<clientId>/err) carry over MQTT. */
export type MqttErrorCode = {
  [K in ErrorCode]: 'mqtt' extends Catalogue[K]['over'][number] ? K : never
}[ErrorCode]
/** Codes of the `{"error": {code, message}}` bodies of Natter's HTTP port. */
export type HttpErrorCode = {
  [K in ErrorCode]: 'http' extends Catalogue[K]['over'][number] ? K : never
}[ErrorCode]
/** Codes an operation can fail with: the same over MQTT (a reply) and HTTP (POST /v1/<op>). */
export type OperationErrorCode = MqttErrorCode & HttpErrorCode

const codesOver = <C extends ErrorCode>(t: ErrorTransport) =>
  (Object.keys(errorCatalogue) as ErrorCode[]).filter((c) =>
    (errorCatalogue[c].over as readonly ErrorTransport[]).includes(t),
  ) as [C, ...C[]]

/** Every code of the catalogue, in its order (docs/protocol.md#errors lists them all). */
export const errorCodes = Object.keys(errorCatalogue) as [ErrorCode, ...ErrorCode[]]
export const mqttErrorCodes = codesOver<MqttErrorCode>('mqtt')
export const httpErrorCodes = codesOver<HttpErrorCode>('http')

/** The HTTP status of an error code (docs/protocol.md#errors). */
export function httpStatusOf(code: ErrorCode): number {
  return errorCatalogue[code].status
}

export class NatterError extends Error {
  override name = 'NatterError'
  readonly code: OperationErrorCode
  /** rate_limited: ms after which the same call may succeed. */
  readonly retryAfterMs: number | undefined
  /** stale_epoch: the chat's current MLS epoch, on which the client commits again. */
  readonly epoch: number | undefined
  constructor(code: OperationErrorCode, message: string, retryAfterMs?: number, o: { epoch?: number } = {}) {
    super(message)
    this.code = code
    this.retryAfterMs = retryAfterMs
    this.epoch = o.epoch
  }
}

export const requestSchema = z
  .object({
    id: characters({ min: 1, max: 128 }, 'Chosen by the client, echoed in the reply'),
    params: z.record(z.string(), z.unknown()).optional(),
  })
  .describe('req/<op> (QoS 1): one operation')

const retryAfterMsSchema = z
  .number()
  .int()
  .min(1)
  .optional()
  .describe('rate_limited: ms after which the same call or message may be sent again')

const epochSchema = z
  .number()
  .int()
  .min(0)
  .optional()
  .describe('stale_epoch: the chat’s current MLS epoch, on which the client commits again (docs/e2ee.md)')

const errorBodySchema = z.object({
  code: z.enum(mqttErrorCodes),
  message: z.string(),
  retryAfterMs: retryAfterMsSchema,
  epoch: epochSchema,
})

export const replySchema = z
  .union([
    z.object({ id: z.string(), ok: z.literal(true), result: z.unknown() }),
    z.object({ id: z.string(), ok: z.literal(false), error: errorBodySchema }),
  ])
  .describe('d/<userId>/<deviceId>/res: the answer to a request')

export const errorNoticeSchema = errorBodySchema
  .extend({
    topic: z
      .string()
      .optional()
      .describe('The topic the device published to; absent on a notice about the connection itself'),
    ref: z.string().optional().describe('The request id or clientMsgId the notice is about'),
    expiresAt: z
      .number()
      .int()
      .optional()
      .describe(
        'token_expired: when the token expires and the server closes the connection, ms since the epoch',
      ),
  })
  .describe('d/<userId>/<deviceId>/err: an error that no reply can carry')

export const httpErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(httpErrorCodes),
      message: z.string(),
      retryAfterMs: retryAfterMsSchema,
      epoch: epochSchema,
    }),
  })
  .describe('The body of every 4xx and 5xx answer of the HTTP port (POST /v1/<op>, web, media URLs)')
export type Request = z.infer<typeof requestSchema>

export interface ErrorBody {
  code: MqttErrorCode
  message: string
  /** rate_limited: ms after which the same call or message may be sent again (at least 1). */
  retryAfterMs?: number
  /** stale_epoch: the chat's current MLS epoch. */
  epoch?: number
}

export type Reply = { id: string; ok: true; result: unknown } | { id: string; ok: false; error: ErrorBody }

/** What goes to d/<clientId>/err when a publish cannot be answered on the reply topic. */
export interface ErrorNotice extends ErrorBody {
  /** The topic the device published to; absent when the notice is about the connection (token_expired). */
  topic?: string
  /** The request id or client message id the error is about, when the payload had one. */
  ref?: string
  /** token_expired: when the server closes the connection, ms since the epoch. */
  expiresAt?: number
}
