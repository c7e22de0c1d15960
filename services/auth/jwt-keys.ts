import { readFileSync } from 'node:fs'
import { importSPKI } from 'jose'
import type { Settings } from '../../config/schema.ts'
import { loadOrCreateDevSecret } from './dev-secret.ts'

export type VerifyKey = Awaited<ReturnType<typeof importSPKI>> | Uint8Array

export interface KeySource {
  key: VerifyKey
  /** True when the secret is the generated one of the embedded default. */
  generated: boolean
}

/** The key that verifies tokens, for the one configured algorithm. */
export async function loadVerifyKey(settings: Settings): Promise<KeySource> {
  if (settings.jwtAlgorithm === 'HS256') {
    if (settings.jwtSecret !== undefined) {
      return { key: new TextEncoder().encode(settings.jwtSecret), generated: false }
    }
    return { key: new TextEncoder().encode(loadOrCreateDevSecret(settings.dataDir)), generated: true }
  }
  const pem = settings.jwtPublicKey ?? readFileSync(settings.jwtPublicKeyFile ?? '', 'utf8')
  try {
    return { key: await importSPKI(pem, settings.jwtAlgorithm), generated: false }
  } catch (err) {
    throw new Error(
      `the JWT public key is not a PEM SPKI key for ${settings.jwtAlgorithm}: ${(err as Error).message}`,
    )
  }
}

/** The secret that signs dev tokens; only HS256 deployments have one here. */
export function loadSigningSecret(settings: Settings): Uint8Array {
  if (settings.jwtAlgorithm !== 'HS256') {
    throw new Error(
      `dev tokens are signed with HS256, but NATTER_JWT_ALGORITHM is ${settings.jwtAlgorithm}: sign tokens with your identity provider's private key`,
    )
  }
  return new TextEncoder().encode(settings.jwtSecret ?? loadOrCreateDevSecret(settings.dataDir))
}
