/**
 * What a person is told when the server refuses something: plain sentences for the error codes
 * of docs/protocol.md#errors (the server's own messages are written for developers). A code not
 * listed keeps the server's message.
 */
const WORDS: Record<string, string> = {
  bad_request: 'That was not accepted: check what you typed and try again.',
  chat_not_found: 'This chat is gone, or you are no longer in it.',
  not_found: 'That is not there any more.',
  not_allowed: 'You are not allowed to do that here (only group admins can, or it is not your message).',
  too_many_members: 'The group is full.',
  last_admin: 'A group needs at least one admin: make someone else admin first.',
  too_large: 'That is too large to send.',
  media_too_large: 'That file is too large to send.',
  rate_limited: 'Too many at once: wait a moment and try again.',
  media_not_found: 'That attachment is not available.',
  unsupported_media_type: 'That kind of file cannot be sent.',
  invalid_image: 'That image could not be read: it may be damaged, or not an image.',
  checksum_mismatch: 'The upload was damaged on the way: try again.',
  upload_incomplete: 'The upload did not finish: try again.',
  url_expired: 'The link has expired: try again.',
  timeout: 'The server did not answer in time: try again.',
  disconnected: 'You are offline: try again once connected.',
  internal: 'Something went wrong on the server: try again.',
  token_expired: 'Your sign-in expired: reload the page.',
}

/** The plain words for a refusal (an Error with the server's `code`), else its own message. */
export function sayError(e: unknown): string {
  const err = e as { code?: unknown; message?: unknown }
  if (typeof err?.code === 'string' && WORDS[err.code]) return WORDS[err.code] as string
  return typeof err?.message === 'string' ? err.message : String(e)
}

/**
 * Why a message, edit or delete the outbox kept was refused (its `failed`), in plain words: the
 * server's own message where it says something a person can act on (too_large names the count
 * and the limit), the plain sentence of the code otherwise, to follow "Not sent: ".
 */
export function sayRefusal(failed: { code: string; message: string }): string {
  const words = WORDS[failed.code]
  if (failed.code === 'too_large' || !words) return failed.message
  // Said after "Not sent: ", "Edit not saved: ".
  return words.charAt(0).toLowerCase() + words.slice(1)
}
