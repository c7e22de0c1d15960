import sharp, { type Metadata } from 'sharp'

/** Longest edge of a thumbnail, in pixels. */
export const THUMBNAIL_EDGE = 320
// A decompression bomb (a small file of a huge image) is refused before it is decoded.
const MAX_INPUT_PIXELS = 50_000_000
// sharp's names for the formats each accepted image type must really be.
const FORMAT_OF: Record<string, string[]> = {
  'image/jpeg': ['jpeg'],
  'image/png': ['png'],
  'image/webp': ['webp'],
  'image/gif': ['gif'],
  'image/avif': ['heif', 'avif'],
}

export class InvalidImageError extends Error {
  override name = 'InvalidImageError'
}

export interface ImageFacts {
  /** As displayed: EXIF rotation applied. */
  width: number
  height: number
  /** A WebP of at most THUMBNAIL_EDGE pixels on its longest edge, without the original's metadata. */
  thumbnail: Buffer
}

/** Decodes an uploaded image: its dimensions and a thumbnail; throws InvalidImageError when it is not the image it claims to be. */
export async function imageFacts(bytes: Buffer, contentType: string): Promise<ImageFacts> {
  const image = sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, animated: false })
  let meta: Metadata
  try {
    meta = await image.metadata()
  } catch (err) {
    throw new InvalidImageError(`not a readable image: ${(err as Error).message}`)
  }
  const expected = FORMAT_OF[contentType] ?? []
  if (!meta.format || !expected.includes(meta.format)) {
    throw new InvalidImageError(`declared ${contentType}, but the bytes are ${meta.format ?? 'not an image'}`)
  }
  if (!meta.width || !meta.height) throw new InvalidImageError('the image has no dimensions')
  const turned = (meta.orientation ?? 1) >= 5
  let thumbnail: Buffer
  try {
    thumbnail = await image
      .rotate()
      .resize({ width: THUMBNAIL_EDGE, height: THUMBNAIL_EDGE, fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 70 })
      .toBuffer()
  } catch (err) {
    throw new InvalidImageError(`the image could not be decoded: ${(err as Error).message}`)
  }
  return {
    width: turned ? meta.height : meta.width,
    height: turned ? meta.width : meta.height,
    thumbnail,
  }
}
