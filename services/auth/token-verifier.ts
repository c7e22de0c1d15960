import { errors, jwtVerify } from 'jose'
import type { Settings } from '../../config/schema.ts'
import { isValidId } from './identity.ts'
import type { VerifyKey } from './jwt-keys.ts'

export type TokenProblem =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'bad_signature'
  | 'wrong_algorithm'
  | 'bad_claims'
  | 'bad_subject'

export class TokenError extends Error {
  override name = 'TokenError'
  readonly problem: TokenProblem
  constructor(problem: TokenProblem, message: string) {
    super(message)
    this.problem = problem
  }
}

export interface VerifiedToken {
  userId: string
  /** Expiry in ms since the epoch. */
  expiresAt: number
}

export type TokenVerifier = (token: string | undefined) => Promise<VerifiedToken>

export function createTokenVerifier(settings: Settings, key: VerifyKey): TokenVerifier {
  const options = {
    algorithms: [settings.jwtAlgorithm],
    clockTolerance: settings.jwtClockToleranceSeconds,
    // A token that never expires cannot be taken back: exp is required.
    requiredClaims: ['exp', 'sub'],
    ...(settings.jwtIssuer ? { issuer: settings.jwtIssuer } : {}),
    ...(settings.jwtAudience ? { audience: settings.jwtAudience } : {}),
  }
  return async (token) => {
    if (token === undefined || token === '') throw new TokenError('missing', 'no token in the password field')
    let payload: Awaited<ReturnType<typeof jwtVerify>>['payload']
    try {
      ;({ payload } = await jwtVerify(token, key, options))
    } catch (err) {
      throw describe(err)
    }
    const sub = payload.sub ?? ''
    if (!isValidId(sub)) {
      throw new TokenError('bad_subject', 'sub must be 1-64 letters, digits or . _ @ : -')
    }
    return { userId: sub, expiresAt: (payload.exp ?? 0) * 1000 }
  }
}

function describe(err: unknown): TokenError {
  if (err instanceof errors.JWTExpired) return new TokenError('expired', 'token expired')
  if (err instanceof errors.JOSEAlgNotAllowed)
    return new TokenError('wrong_algorithm', 'token algorithm not accepted')
  if (err instanceof errors.JWSSignatureVerificationFailed)
    return new TokenError('bad_signature', 'bad token signature')
  if (err instanceof errors.JWTClaimValidationFailed) {
    return new TokenError('bad_claims', `token claim ${err.claim} ${err.reason}`)
  }
  if (err instanceof errors.JOSEError) return new TokenError('malformed', 'malformed token')
  return new TokenError('malformed', 'malformed token')
}
