import { z } from 'zod'

/** Error codes a client can see on its reply and error topics (docs/protocol.md#errors). */
export const errorCodes = [
  'bad_request',
  'unknown_operation',
  'forbidden_topic',
  'retain_not_allowed',
  'token_expired',
  'chat_not_found',
  'not_found',
  'not_allowed',
  'too_many_members',
  'too_large',
  'rate_limited',
  'media_not_found',
  'unsupported_media_type',
  'upload_incomplete',
  'checksum_mismatch',
  'invalid_image',
  'internal',
] as const
export type ErrorCode = (typeof errorCodes)[number]

export class NatterError extends Error {
  override name = 'NatterError'
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

export const requestSchema = z
  .object({
    id: z.string().min(1).max(128).describe('Chosen by the client, echoed in the reply'),
    params: z.record(z.string(), z.unknown()).optional(),
  })
  .describe('req/<op> (QoS 1): one operation')

const errorBodySchema = z.object({ code: z.enum(errorCodes), message: z.string() })

export const replySchema = z
  .union([
    z.object({ id: z.string(), ok: z.literal(true), result: z.unknown() }),
    z.object({ id: z.string(), ok: z.literal(false), error: errorBodySchema }),
  ])
  .describe('d/<userId>/<deviceId>/res: the answer to a request')

export const errorNoticeSchema = errorBodySchema
  .extend({
    topic: z.string().describe('The topic the device published to'),
    ref: z.string().optional().describe('The request id or clientMsgId the notice is about'),
  })
  .describe('d/<userId>/<deviceId>/err: an error that no reply can carry')
export type Request = z.infer<typeof requestSchema>

export interface ErrorBody {
  code: ErrorCode
  message: string
}

export type Reply = { id: string; ok: true; result: unknown } | { id: string; ok: false; error: ErrorBody }

/** What goes to d/<clientId>/err when a publish cannot be answered on the reply topic. */
export interface ErrorNotice extends ErrorBody {
  topic: string
  /** The request id or client message id the error is about, when the payload had one. */
  ref?: string
}
