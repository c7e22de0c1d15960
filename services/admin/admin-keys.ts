import { createHash, timingSafeEqual } from 'node:crypto'

/** An admin credential's name: what the audit log records as `actor`. */
export const ADMIN_NAME = /^[a-z][a-z0-9_.-]{0,31}$/
/** Shortest admin key, in characters: 32 random characters of base64url carry 192 bits. */
export const MIN_ADMIN_KEY_CHARS = 32

/** One credential of NATTER_ADMIN_KEYS. */
export interface AdminKey {
  name: string
  key: string
}

/**
 * Parses NATTER_ADMIN_KEYS: `name:key` pairs separated by commas (`ops:3q2…,backup:Zx9…`).
 * Names match ADMIN_NAME and are unique; keys have at least MIN_ADMIN_KEY_CHARS characters and
 * no comma or whitespace.
 *
 * @returns the credentials, or a list of problems (one per bad pair) when any is malformed
 */
export function parseAdminKeys(text: string): { keys: AdminKey[] } | { problems: string[] } {
  const keys: AdminKey[] = []
  const problems: string[] = []
  const names = new Set<string>()
  const problemOf = (pair: string, where: string): string | null => {
    const at = pair.indexOf(':')
    if (at < 0) return `${where}: expected name:key`
    const name = pair.slice(0, at).trim()
    const key = pair.slice(at + 1).trim()
    if (!ADMIN_NAME.test(name)) return `${where}: name must match ${ADMIN_NAME.source}`
    if (names.has(name)) return `${where}: name "${name}" given twice`
    if (key.length < MIN_ADMIN_KEY_CHARS || /\s/.test(key))
      return `${where} (${name}): key must have at least ${MIN_ADMIN_KEY_CHARS} characters and no spaces`
    names.add(name)
    keys.push({ name, key })
    return null
  }
  text.split(',').forEach((pair, i) => {
    const problem = problemOf(pair, `pair ${i + 1}`)
    if (problem) problems.push(problem)
  })
  return problems.length > 0 ? { problems } : { keys }
}

const digest = (text: string) => createHash('sha256').update(text).digest()

/**
 * Finds which admin credential an `Authorization: Bearer <key>` header carries. Each key is
 * compared by its SHA-256 digest in constant time, and every key is compared whatever matched,
 * so the time taken says nothing about the keys.
 *
 * @returns the credential's name, or null for a missing, malformed or unknown key
 */
export function adminKeyChecker(keys: AdminKey[]): (authorization: string | undefined) => string | null {
  const known = keys.map((k) => ({ name: k.name, digest: digest(k.key) }))
  return (authorization) => {
    // The scheme is case-insensitive (RFC 9110 §11.1).
    const m = /^bearer +([^\s]+) *$/i.exec(authorization ?? '')
    if (!m?.[1]) return null
    const given = digest(m[1])
    let found: string | null = null
    for (const k of known) if (timingSafeEqual(k.digest, given) && found === null) found = k.name
    return found
  }
}
