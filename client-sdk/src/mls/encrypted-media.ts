import { type MediaKind, mediaKindOf } from '../media-types.ts'
import { NatterRequestError } from '../request.ts'

/**
 * Media in encrypted chats (docs/e2ee.md, "Media"): each file is encrypted on the device with a
 * fresh AES-256-GCM key and a random 96-bit nonce (WebCrypto `crypto.subtle`, in Node and
 * browsers alike; NIST SP 800-38D), the ciphertext goes through the ordinary media flow as
 * `application/octet-stream` without a name, and what a member needs to read it (this
 * descriptor, key included) travels inside the MLS-encrypted message.
 */

/** The content type of every encrypted media object on the server: the real one is inside the message. */
export const ENCRYPTED_MEDIA_TYPE = 'application/octet-stream'
/** AES-GCM tag length, in bytes: the ciphertext is this much longer than the file. */
export const GCM_TAG_BYTES = 16
// Binds the ciphertext to this use and version: the same key could never decrypt something made
// for another purpose (the key is fresh per file anyway).
const AAD = new TextEncoder().encode('natter-media-v1')
const MAX_NAME_CHARS = 255

/**
 * An encrypted chat's media as the message carries it: MediaInfo's fields where they mean the same
 * (of the file as the sender picked it, not of the ciphertext the server holds), plus the secret.
 * `id` is the media id of the ciphertext object (media.get gives its URL).
 */
export interface EncryptedMedia {
  id: string
  /** From contentType, by the receiving SDK (never taken from the sender as is). */
  kind: MediaKind
  /** The file's real type: one of the types media may have (docs/protocol.md#media). */
  contentType: string
  /** The file's size in bytes (the ciphertext is GCM_TAG_BYTES more). */
  size: number
  /** SHA-256 of the file, hex. */
  sha256: string
  /** The file name, cleaned of control and bidirectional characters and slashes; null when none. */
  name: string | null
  /** Images: pixels as displayed, when the sender knew them. */
  width: number | null
  height: number | null
  /** Audio and video: the length in ms, as the sender declared it. */
  durationMs: number | null
  /** The AES-256-GCM key, base64 (32 bytes). */
  key: string
  /** The GCM nonce, base64 (12 bytes). */
  nonce: string
  /** SHA-256 of the ciphertext, hex: the server's MediaInfo.sha256 of this media. */
  ciphertextSha256: string
}

/** What the sender knows of a file beside its bytes. */
export interface MediaFileFacts {
  contentType: string
  name?: string | undefined
  width?: number | undefined
  height?: number | undefined
  durationMs?: number | undefined
}

const subtle = () => globalThis.crypto.subtle

export function toBase64(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text)
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await subtle().digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')
}

/**
 * A file name as shown: NFC, without control characters, line and paragraph separators,
 * bidirectional controls and zero-width spaces (which make "invoice\u202Efdp.exe" show as
 * "invoiceexe.pdf"), slashes as "_", trimmed, at most 255 characters; null when nothing is left.
 * The server cleans the names it stores more finely (services/text/visible-names.ts); an
 * encrypted chat's names never reach it.
 */
export function cleanFileName(name: string): string | null {
  const clean = name
    .normalize('NFC')
    .replace(/[\p{Cc}\p{Zl}\p{Zp}\u061c\u200b\u200e\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]/gu, '')
    .replace(/[/\\]/g, '_')
    .trim()
  const chars = [...clean].slice(0, MAX_NAME_CHARS).join('')
  return chars === '' ? null : chars
}

/**
 * Encrypts a file for an encrypted chat: a fresh key and nonce, AES-256-GCM. Resolves with the
 * ciphertext to upload and the descriptor without its `id` (the media id comes with the upload).
 * Throws NatterRequestError unsupported_media_type for a content type media may not have.
 */
export async function encryptMedia(
  bytes: Uint8Array,
  facts: MediaFileFacts,
): Promise<{ ciphertext: Uint8Array; media: Omit<EncryptedMedia, 'id'> }> {
  const kind = mediaKindOf(facts.contentType)
  if (!kind)
    throw new NatterRequestError(
      'unsupported_media_type',
      `${facts.contentType} is not a type media may have`,
    )
  const rawKey = globalThis.crypto.getRandomValues(new Uint8Array(32))
  const nonce = globalThis.crypto.getRandomValues(new Uint8Array(12))
  const key = await subtle().importKey('raw', rawKey, 'AES-GCM', false, ['encrypt'])
  const ciphertext = new Uint8Array(
    await subtle().encrypt(
      { name: 'AES-GCM', iv: nonce, additionalData: AAD, tagLength: GCM_TAG_BYTES * 8 },
      key,
      bytes as Uint8Array<ArrayBuffer>,
    ),
  )
  return {
    ciphertext,
    media: {
      kind,
      contentType: facts.contentType,
      size: bytes.length,
      sha256: await sha256Hex(bytes),
      name: facts.name === undefined ? null : cleanFileName(facts.name),
      width: positiveInt(facts.width),
      height: positiveInt(facts.height),
      durationMs: kind === 'audio' || kind === 'video' ? nonNegativeInt(facts.durationMs) : null,
      key: toBase64(rawKey),
      nonce: toBase64(nonce),
      ciphertextSha256: await sha256Hex(ciphertext),
    },
  }
}

const corrupt = (id: string, why: string) =>
  new NatterRequestError('media_corrupt', `media ${id} is not what its message describes: ${why}`)

/**
 * The file from its downloaded ciphertext: the ciphertext's SHA-256 checked against the
 * descriptor's, then AES-GCM decryption (its tag authenticates every byte), then the file's SHA-256
 * and size. Throws NatterRequestError media_corrupt naming what failed.
 */
export async function decryptMedia(
  ciphertext: Uint8Array,
  media: EncryptedMedia,
): Promise<Uint8Array<ArrayBuffer>> {
  if ((await sha256Hex(ciphertext)) !== media.ciphertextSha256)
    throw corrupt(media.id, 'the downloaded bytes do not have the SHA-256 the message names')
  const key = await subtle().importKey(
    'raw',
    fromBase64(media.key) as Uint8Array<ArrayBuffer>,
    'AES-GCM',
    false,
    ['decrypt'],
  )
  let plain: Uint8Array<ArrayBuffer>
  try {
    plain = new Uint8Array(
      await subtle().decrypt(
        {
          name: 'AES-GCM',
          iv: fromBase64(media.nonce) as Uint8Array<ArrayBuffer>,
          additionalData: AAD,
          tagLength: GCM_TAG_BYTES * 8,
        },
        key,
        ciphertext as Uint8Array<ArrayBuffer>,
      ),
    )
  } catch {
    throw corrupt(media.id, 'AES-GCM authentication failed (wrong key, or changed bytes)')
  }
  if (plain.length !== media.size || (await sha256Hex(plain)) !== media.sha256)
    throw corrupt(media.id, 'the decrypted file does not have the size and SHA-256 the message names')
  return plain
}

function positiveInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : null
}

function nonNegativeInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null
}
