/** Chat ids of encrypted chats start with this (docs/e2ee.md §1): known from the id alone. */
export const ENCRYPTED_CHAT_PREFIX = 'e_'

/** Whether a chat is end-to-end encrypted, from its id. */
export const isEncryptedChat = (chatId: string): boolean => chatId.startsWith(ENCRYPTED_CHAT_PREFIX)
