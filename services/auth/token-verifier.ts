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
  | 'revoked'
  | 'account_banned'
  | 'account_erased'

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
  /** Expiry in ms since the epoch; always in the future when verified. */
  expiresAt: number
  /** The `iat` claim in ms since the epoch, when the token has one (device revocation compares it). */
  issuedAt?: number
  /** The `did` claim: the one device id this token may connect as (optional). */
  deviceId?: string
}

/** Verifies a JWT; rejects with a TokenError (see createTokenVerifier). */
export type TokenVerifier = (token: string | undefined) => Promise<VerifiedToken>

/**
 * Verifies the JWT of an MQTT CONNECT (its password) or of an HTTP Bearer header: the one
 * configured algorithm and key, `exp` and `sub` required, `iss`/`aud` when configured.
 * Resolves with the user id and expiry; rejects with a TokenError saying why.
 *
 * Clock tolerance (NATTER_JWT_CLOCK_TOLERANCE_SECONDS) covers only a token issuer whose clock
 * runs ahead of this server's: it applies to `nbf` (and `iat` is never checked against the
 * clock). `exp` is exact (RFC 7519 §4.1.4: valid only before it): the server closes a
 * connection at its token's exp, so a token accepted within a tolerance past exp would be
 * closed again at once.
 */
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
    // jose checks that exp is a number, and that it has passed only beyond the tolerance.
    const expiresAt = (payload.exp as number) * 1000
    if (expiresAt <= Date.now()) throw new TokenError('expired', 'token expired')
    // RFC 7519 §4.1.2: sub is a string. A number would pass the pattern as its decimal text.
    const sub: unknown = payload.sub
    if (typeof sub !== 'string' || !isValidId(sub)) {
      throw new TokenError('bad_subject', 'sub must be a string of 1-64 letters, digits or . _ @ : -')
    }
    const did: unknown = payload.did
    if (did !== undefined && (typeof did !== 'string' || !isValidId(did))) {
      throw new TokenError('bad_claims', 'did must be a device id: 1-64 letters, digits or . _ @ : -')
    }
    const verified: VerifiedToken = { userId: sub, expiresAt }
    // jose checks that iat, when present, is a number.
    if (typeof payload.iat === 'number') verified.issuedAt = payload.iat * 1000
    if (did !== undefined) verified.deviceId = did
    return verified
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
