/**
 * A message a blocked user sent in the direct chat with the user who blocks them is stored
 * with `body.hiddenFrom` naming the blocker: kept for the sender, never shown to the blocker
 * (not delivered, not in history, sync, search or unread counts, not pushed), even after an
 * unblock (docs/protocol.md#blocking). Clients never see the field: events are built from
 * chosen body fields (services/messages/events.ts).
 */

/** The user a stored message is hidden from, or undefined when it is shown to every member. */
export function hiddenFrom(m: { body: Record<string, unknown> }): string | undefined {
  const h = m.body.hiddenFrom
  return typeof h === 'string' ? h : undefined
}

/** Whether userId may see the stored message. */
export function visibleTo(m: { body: Record<string, unknown> }, userId: string): boolean {
  return m.body.hiddenFrom !== userId
}
