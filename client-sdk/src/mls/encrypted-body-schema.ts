import * as z from 'zod/mini'
import { mediaKindOf } from '../media-types.ts'
import type { EncryptedBody } from './encrypted-chats.ts'
import { cleanFileName, ENCRYPTED_MEDIA_TYPE, type EncryptedMedia } from './encrypted-media.ts'

/**
 * The schemas of what another member wrote inside an encrypted message (docs/e2ee.md, "Media"):
 * the body `{v: 1, text?, media?, replyTo?}` and each media descriptor in it. The server cannot
 * check either (it never sees them), so the receiving SDK does, with zod/mini (tree-shaken: a few
 * KB of the browser build, docs/decisions.md).
 */

/** Canonical base64 (RFC 4648 §4, padded) of exactly `bytes` bytes. */
function base64Of(bytes: number) {
  const pad = (3 - (bytes % 3)) % 3
  const chars = 4 * Math.ceil(bytes / 3) - pad
  return z.string().check(z.regex(new RegExp(`^[A-Za-z0-9+/]{${chars}}={${pad}}$`)))
}

const hex64 = z.string().check(z.regex(/^[0-9a-f]{64}$/))
/**
 * Optional facts that are not well-formed become null (the file is still readable without them).
 * Not z.catch: that keeps all of zod's util module in a bundle (about 4 KB brotli more).
 */
const orNull = <T>(schema: z.ZodMiniType<T>) =>
  z.pipe(
    z.unknown(),
    z.transform((v): T | null => {
      const r = schema.safeParse(v)
      return r.success ? r.data : null
    }),
  )

const descriptorFields = z.object({
  id: z.string().check(z.regex(/^m_[A-Za-z0-9_-]{1,64}$/)),
  // A type this SDK would not accept from the server is not dropped but demoted (below).
  contentType: orNull(z.string()),
  size: z.int().check(z.nonnegative()),
  sha256: hex64,
  name: orNull(z.string()),
  width: orNull(z.int().check(z.positive())),
  height: orNull(z.int().check(z.positive())),
  durationMs: orNull(z.int().check(z.nonnegative())),
  /** AES-256-GCM key: 32 bytes. */
  key: base64Of(32),
  /** GCM nonce: 96 bits (NIST SP 800-38D §5.2.1.1). */
  nonce: base64Of(12),
  ciphertextSha256: hex64,
})

/**
 * A media descriptor as the receiving SDK keeps it. `kind` is derived from `contentType`, never
 * taken from the sender; a type outside the accepted list (media-types.ts; `text/html` or SVG
 * opened from a `blob:` URL of the app's origin would run script there) becomes
 * `application/octet-stream`, kind file; the name is cleaned (cleanFileName); `durationMs` is kept
 * for audio and video only. Fails on an id, size, hash, key or nonce that is not well-formed.
 */
export const encryptedMediaSchema = z.pipe(
  descriptorFields,
  z.transform((d): EncryptedMedia => {
    const kind = d.contentType === null ? undefined : mediaKindOf(d.contentType)
    return {
      id: d.id,
      kind: kind ?? 'file',
      contentType: kind && d.contentType !== null ? d.contentType : ENCRYPTED_MEDIA_TYPE,
      size: d.size,
      sha256: d.sha256,
      name: d.name === null ? null : cleanFileName(d.name),
      width: d.width,
      height: d.height,
      durationMs: kind === 'audio' || kind === 'video' ? d.durationMs : null,
      key: d.key,
      nonce: d.nonce,
      ciphertextSha256: d.ciphertextSha256,
    }
  }),
)

/**
 * A descriptor from another member's message (or handed to `send` by the app): the
 * EncryptedMedia to keep, or null when it is not well-formed (encryptedMediaSchema).
 */
export function parseEncryptedMedia(v: unknown): EncryptedMedia | null {
  const r = encryptedMediaSchema.safeParse(v)
  return r.success ? r.data : null
}

/**
 * The decrypted body. `v` absent is the first MLS SDKs' body, whose `media` were bare ids; `v: 1`
 * carries descriptors. `media` entries are checked one by one after (parseEncryptedBody), so one
 * bad descriptor does not cost the message its text. `replyTo` is a seq, as in a plaintext send
 * (services/messages/wire.ts).
 */
export const encryptedBodySchema = z.object({
  v: z.optional(z.literal(1)),
  text: z.optional(z.string()),
  media: z.optional(z.array(z.unknown())),
  replyTo: z.optional(z.int().check(z.positive())),
})

/**
 * The body of a decrypted message (the plaintext's JSON, already parsed): the fields kept, with
 * `media` reduced to its well-formed entries (descriptors for `v: 1`, strings without `v`).
 * Returns the problem as text instead when the body is not an object of that shape (a `v` this
 * SDK does not know included): the message is then shown as undecryptable, with that reason.
 */
export function parseEncryptedBody(v: unknown): EncryptedBody | string {
  const r = encryptedBodySchema.safeParse(v)
  if (!r.success)
    return `the message body is not well-formed (${r.error.issues.map((i) => i.path.join('.') || 'the body').join(', ')})`
  const { media, ...rest } = r.data
  if (media === undefined) return rest
  if (rest.v === undefined)
    return { ...rest, media: media.filter((id): id is string => typeof id === 'string') }
  return { ...rest, media: media.flatMap((d) => parseEncryptedMedia(d) ?? []) }
}
