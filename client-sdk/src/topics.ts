/**
 * Natter's topic names (docs/protocol.md), shared by the server's ACL and the clients, so
 * the two can never spell a topic differently.
 */
export const topics = {
  /** Server to every device of a user: chat messages and events. */
  inbox: (userId: string) => `u/${userId}/inbox`,
  /** Between the devices of one user, relayed as sent. */
  self: (userId: string) => `u/${userId}/self`,
  /** Server, retained: whether a user is online, and when they were last seen. */
  presence: (userId: string) => `u/${userId}/presence`,
  /** Device to server: a chat message; PUBACK once it is stored. */
  send: (chatId: string) => `c/${chatId}/send`,
  /** Between the members of a chat: typing indicators (QoS 0, never stored). */
  typing: (chatId: string) => `c/${chatId}/typing`,
  /** Server to one device: replies to its requests. */
  reply: (clientId: string) => `d/${clientId}/res`,
  /** Server to one device: errors that have no request to answer. */
  errors: (clientId: string) => `d/${clientId}/err`,
  /** Device to server: one operation of the request/response convention. */
  request: (op: string) => `req/${op}`,
} as const

export function clientIdOf(userId: string, deviceId: string): string {
  return `${userId}/${deviceId}`
}
