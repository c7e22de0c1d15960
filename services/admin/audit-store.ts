/**
 * The admin audit log: one entry per admin API call (the CLI's included), written before the
 * answer goes out and never changed or removed afterwards. One interface, a SQLite store
 * (audit.db; UPDATE and DELETE are refused by triggers) and a MongoDB store, held to one contract
 * by test/contract/audit-store.contract.ts.
 */

/** One admin call: who made it, what it asked, and how it ended. */
export interface AuditEntry {
  /** 1, 2, 3… in the order the entries were written (the paging cursor). */
  id: number
  /** When the call was answered, ms since the epoch. */
  at: number
  /** The admin credential's name; null when the call carried no valid credential. */
  actor: string | null
  /** The call: `METHOD /admin/v1/...` route name, e.g. `user.erase`, `message.delete`. */
  action: string
  /** What it was about (`user:<id>`, `chat:<id>`, `chat:<id>/seq:<n>`), or null. */
  target: string | null
  /** The call's parameters that are not in target (never a message text), as given. */
  params: Record<string, unknown>
  /** `ok`, or the error code it was refused or failed with (docs/protocol.md#errors). */
  result: string
  /** The HTTP status answered. */
  status: number
  /** The caller's address as the HTTP port saw it. */
  remote: string | null
}

export type NewAuditEntry = Omit<AuditEntry, 'id'>

/** Which entries to list: after an id (exclusive), newest last, optionally of one actor/action/target. */
export interface AuditQuery {
  afterId: number
  limit: number
  actor?: string | undefined
  action?: string | undefined
  target?: string | undefined
}

export interface AuditStore {
  /** Writes one entry durably and returns it with its id. */
  append(e: NewAuditEntry): Promise<AuditEntry>
  /** Entries with id > afterId matching the filters, ascending by id, at most limit. */
  list(q: AuditQuery): Promise<AuditEntry[]>
  close(): Promise<void>
}
