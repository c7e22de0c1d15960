import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const FILE = 'dev-jwt-secret'

/**
 * The embedded default's HS256 secret: random, made on first use and kept in the data
 * directory (mode 0600), so no installation shares a secret that is written in code.
 */
export function devSecretPath(dataDir: string): string {
  return join(dataDir, FILE)
}

export function loadOrCreateDevSecret(dataDir: string): string {
  const path = devSecretPath(dataDir)
  mkdirSync(dataDir, { recursive: true })
  try {
    // 'wx' fails when the file exists, so two processes starting at once keep one secret.
    writeFileSync(path, `${randomBytes(32).toString('base64url')}\n`, { flag: 'wx', mode: 0o600 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const secret = readFileSync(path, 'utf8').trim()
  if (secret.length < 32) throw new Error(`${path} holds a secret shorter than 32 characters; delete it`)
  return secret
}
