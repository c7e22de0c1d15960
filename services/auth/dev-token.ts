import { SignJWT } from 'jose'
import { isValidId } from './identity.ts'

export interface DevTokenOptions {
  secret: Uint8Array
  userId: string
  ttlSeconds: number
  issuer?: string | undefined
  audience?: string | undefined
}

export async function signDevToken(o: DevTokenOptions): Promise<string> {
  if (!isValidId(o.userId)) throw new Error('user id must be 1-64 letters, digits or . _ @ : -')
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + o.ttlSeconds)
  if (o.issuer) jwt.setIssuer(o.issuer)
  if (o.audience) jwt.setAudience(o.audience)
  return jwt.sign(o.secret)
}
