/**
 * Where media bytes live: one interface, a directory on local disk (the embedded default) and
 * S3 (or any S3-compatible server), held to one contract by test/contract/object-store.contract.ts.
 * Clients move the bytes themselves, through short-lived URLs the store signs; the server only
 * touches them to check an upload, make a thumbnail and copy them into a user's export.
 */

import type { Readable } from 'node:stream'

export interface PutTerms {
  /** SHA-256 of the bytes, 64 hex digits: the store refuses any other bytes. */
  sha256: string
  size: number
  contentType: string
  expiresInSeconds: number
  /** When the signature is made; only tests set it, to make an already-expired URL. */
  signedAt?: Date
}

export interface GetTerms {
  expiresInSeconds: number
  contentType: string
  /** Content-Disposition the download is served with. */
  disposition: string
  signedAt?: Date
}

/** How a client uploads: this method, URL and every one of these headers. */
export interface SignedUpload {
  method: 'PUT'
  url: string
  headers: Record<string, string>
}

export interface ObjectInfo {
  size: number
  contentType: string | undefined
  /** SHA-256 as 64 hex digits, when the store recorded one. */
  sha256: string | undefined
}

export interface ObjectStore {
  readonly kind: 'disk' | 's3'
  /** A URL that accepts exactly one object: these bytes, this size and type, until it expires. */
  signPut(key: string, terms: PutTerms): Promise<SignedUpload>
  signGet(key: string, terms: GetTerms): Promise<string>
  /** Size, type and checksum of a stored object; null when there is none. */
  head(key: string): Promise<ObjectInfo | null>
  /** The bytes of an object up to maxBytes; null when there is none. Throws when it is larger. */
  read(key: string, maxBytes: number): Promise<Buffer | null>
  /**
   * The bytes of an object as a stream, however large (a user's export copies media through it
   * without holding them); null when there is none. The stream errors when the store fails
   * mid-way; whoever takes it must read it to the end or destroy it.
   */
  stream(key: string): Promise<Readable | null>
  /** Stores bytes the server made itself (thumbnails). */
  write(key: string, bytes: Buffer, contentType: string): Promise<void>
  /** Removes an object; removing one that is not there is not an error. */
  remove(key: string): Promise<void>
  close(): Promise<void>
}

export const hexToBase64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64')
export const base64ToHex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex')
