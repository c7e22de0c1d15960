import type { Readable } from 'node:stream'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import {
  base64ToHex,
  type GetTerms,
  hexToBase64,
  type ObjectInfo,
  type ObjectStore,
  type PutTerms,
  type SignedUpload,
} from './object-store.ts'

export interface S3Options {
  bucket: string
  region: string
  /** For S3-compatible servers (versitygw, MinIO, R2…); unset: AWS. */
  endpoint?: string | undefined
  /** Endpoint for the signed URLs clients get, when it differs from the one Natter uses. */
  publicEndpoint?: string | undefined
  forcePathStyle: boolean
  /** Unset: the AWS SDK's default chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined
}

const notFound = (err: unknown) =>
  err instanceof S3ServiceException &&
  (err.$metadata.httpStatusCode === 404 || err.name === 'NotFound' || err.name === 'NoSuchKey')

/**
 * S3 through presigned URLs. The upload URL signs Content-Type, Content-Length and the
 * x-amz-checksum-sha256 header, so S3 itself refuses other bytes (BadDigest), another size or
 * type (SignatureDoesNotMatch), or a late upload (AccessDenied).
 */
export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3'
  readonly #s3: S3Client
  /** Signs the URLs for clients; the same client unless a public endpoint is set. */
  readonly #signer: S3Client
  readonly #bucket: string

  private constructor(s3: S3Client, signer: S3Client, bucket: string) {
    this.#s3 = s3
    this.#signer = signer
    this.#bucket = bucket
  }

  /** Connects and checks the bucket; creates it when it does not exist (it may not be allowed to). */
  static async open(o: S3Options): Promise<S3ObjectStore> {
    const client = (endpoint: string | undefined) =>
      new S3Client({
        region: o.region,
        forcePathStyle: o.forcePathStyle,
        ...(endpoint ? { endpoint } : {}),
        ...(o.credentials ? { credentials: o.credentials } : {}),
        // The SDK would otherwise add a CRC32 of its own to every request, and to presigned URLs
        // a checksum the browser cannot compute; ours is the SHA-256 the client declared.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      })
    const s3 = client(o.endpoint)
    const signer = o.publicEndpoint ? client(o.publicEndpoint) : s3
    const store = new S3ObjectStore(s3, signer, o.bucket)
    try {
      await s3.send(new HeadBucketCommand({ Bucket: o.bucket }))
    } catch (err) {
      if (!notFound(err)) {
        store.close()
        throw new Error(`S3 bucket ${o.bucket}: ${(err as Error).name}: ${(err as Error).message}`)
      }
      try {
        await s3.send(new CreateBucketCommand({ Bucket: o.bucket }))
      } catch (created) {
        // Nodes of a cluster that start together race to create it: the loser finds it made.
        if ((created as Error).name !== 'BucketAlreadyOwnedByYou') {
          store.close()
          throw new Error(`S3 bucket ${o.bucket}: ${(created as Error).name}: ${(created as Error).message}`)
        }
      }
    }
    return store
  }

  async signPut(key: string, t: PutTerms): Promise<SignedUpload> {
    const checksum = hexToBase64(t.sha256)
    const command = new PutObjectCommand({
      Bucket: this.#bucket,
      Key: key,
      ContentType: t.contentType,
      ContentLength: t.size,
      ChecksumSHA256: checksum,
    })
    const url = await getSignedUrl(this.#signer, command, {
      expiresIn: t.expiresInSeconds,
      ...(t.signedAt ? { signingDate: t.signedAt } : {}),
      // Kept a header (not hoisted into the query) so that S3 checks the bytes against it.
      unhoistableHeaders: new Set(['x-amz-checksum-sha256']),
      signableHeaders: new Set(['content-type', 'content-length']),
    })
    return {
      method: 'PUT',
      url,
      headers: { 'content-type': t.contentType, 'x-amz-checksum-sha256': checksum },
    }
  }

  signGet(key: string, t: GetTerms): Promise<string> {
    const command = new GetObjectCommand({
      Bucket: this.#bucket,
      Key: key,
      ResponseContentType: t.contentType,
      ResponseContentDisposition: t.disposition,
    })
    return getSignedUrl(this.#signer, command, {
      expiresIn: t.expiresInSeconds,
      ...(t.signedAt ? { signingDate: t.signedAt } : {}),
    })
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const h = await this.#s3.send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: key, ChecksumMode: 'ENABLED' }),
      )
      return {
        size: h.ContentLength ?? 0,
        contentType: h.ContentType,
        sha256: h.ChecksumSHA256 ? base64ToHex(h.ChecksumSHA256) : undefined,
      }
    } catch (err) {
      if (notFound(err)) return null
      throw err
    }
  }

  async read(key: string, maxBytes: number): Promise<Buffer | null> {
    let body: AsyncIterable<Uint8Array>
    try {
      const got = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }))
      if ((got.ContentLength ?? 0) > maxBytes) {
        ;(got.Body as { destroy?: () => void } | undefined)?.destroy?.()
        throw new Error(`object ${key} has ${got.ContentLength} bytes, over ${maxBytes}`)
      }
      body = got.Body as AsyncIterable<Uint8Array>
    } catch (err) {
      if (notFound(err)) return null
      throw err
    }
    const chunks: Uint8Array[] = []
    let size = 0
    for await (const chunk of body) {
      size += chunk.length
      if (size > maxBytes) throw new Error(`object ${key} is over ${maxBytes} bytes`)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks)
  }

  async stream(key: string): Promise<Readable | null> {
    try {
      const got = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }))
      // On Node the SDK's body is the HTTP response itself: a Readable.
      return got.Body as Readable
    } catch (err) {
      if (notFound(err)) return null
      throw err
    }
  }

  async write(key: string, bytes: Buffer, contentType: string): Promise<void> {
    await this.#s3.send(
      new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: bytes, ContentType: contentType }),
    )
  }

  async remove(key: string): Promise<void> {
    await this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }))
  }

  async close(): Promise<void> {
    this.#s3.destroy()
    if (this.#signer !== this.#s3) this.#signer.destroy()
  }
}
