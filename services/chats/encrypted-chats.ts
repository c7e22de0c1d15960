/**
 * Which chats are end-to-end encrypted (docs/e2ee.md): those created so, whose id the server
 * gives the prefix `e_` (groups are `g_`, direct chats `d_`). The kind is fixed at creation
 * and read from the id alone, so the send path and every node know it without a store read.
 */
export const ENCRYPTED_CHAT_PREFIX = 'e'

/** Whether the chat is an encrypted one (its id starts with `e_`). */
export const isEncryptedChat = (chatId: string) => chatId.startsWith(`${ENCRYPTED_CHAT_PREFIX}_`)
