/** Chat ids of encrypted chats start with this (docs/e2ee.md §1): known from the id alone. */
export const ENCRYPTED_CHAT_PREFIX = 'e_'

/** Whether a chat is end-to-end encrypted, from its id. */
export const isEncryptedChat = (chatId: string): boolean => chatId.startsWith(ENCRYPTED_CHAT_PREFIX)

/**
 * Whether a chat is a direct chat of two users, from its id: `d_`, or `e_d.` for an encrypted
 * one (docs/e2ee.md §1; no encrypted group's id starts so).
 */
export const isDirectChat = (chatId: string): boolean =>
  chatId.startsWith('d_') || chatId.startsWith(`${ENCRYPTED_CHAT_PREFIX}d.`)
