// Identifiers end up as MQTT topic levels, so anything that could change a topic's shape
// (`/`, `+`, `#`, NUL, a leading `$`) must never get into one; and in URL paths (the admin
// API's), where `.` and `..` are dot-segments that clients and proxies remove (RFC 3986 §5.2.4).
export const ID_PATTERN = /^(?!\.\.?$)[\p{L}\p{N}._@:-]{1,64}$/u

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id)
}

export interface DeviceIdentity {
  userId: string
  deviceId: string
  /** The MQTT client id, `<userId>/<deviceId>`. */
  clientId: string
}

/**
 * A client id names the device of one user as `<userId>/<deviceId>`, so a persistent session
 * can only be taken over by a token for the same user.
 */
export function parseClientId(clientId: string): DeviceIdentity | null {
  const slash = clientId.indexOf('/')
  if (slash < 0) return null
  const userId = clientId.slice(0, slash)
  const deviceId = clientId.slice(slash + 1)
  if (!isValidId(userId) || !isValidId(deviceId)) return null
  return { userId, deviceId, clientId }
}
