import { ENCRYPTED_CHAT_PREFIX } from './encrypted-chats.ts'

/**
 * What a chat is, from its id alone (docs/protocol.md#chats, docs/e2ee.md §1), so the send
 * path, typing and receipts know a direct chat on every node without a store read:
 * `g_<random>` a group, `d_<random>` a direct chat, `e_<random>` an encrypted group and
 * `e_d.<random>` an encrypted direct chat. The random part is base64url, which has no `.`,
 * so no encrypted group's id starts with `e_d.`.
 */
export const ENCRYPTED_DIRECT_CHAT_PREFIX = `${ENCRYPTED_CHAT_PREFIX}_d.`

/** Whether a chat is a direct chat of two users, plaintext (`d_`) or encrypted (`e_d.`). */
export const isDirectChat = (chatId: string): boolean =>
  chatId.startsWith('d_') || chatId.startsWith(ENCRYPTED_DIRECT_CHAT_PREFIX)
