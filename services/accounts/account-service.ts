import type { Logger } from 'pino'
import { isValidId } from '../auth/identity.ts'
import { FIRST_ERASE_STEP } from '../privacy/erasure.ts'
import { NatterError } from '../requests/envelope.ts'
import type { AccountList } from './account-list.ts'
import type { AccountRecord, AccountStatus, AccountStore } from './account-store.ts'

// A ban's reason is an operator's note, not a document.
const MAX_REASON_CHARS = 500

/**
 * An operator's account operations: ban, unban, erase, status (the admin HTTP API and the
 * `natter` CLI call these; docs/admin.md). Each change is durable first, then applied to this
 * node's AccountList and announced to every node, which close the user's connections
 * (broker/account-wiring.ts). Errors are NatterErrors: bad_request (a user id that is not one),
 * not_found (unban of a user who is not banned), not_allowed (ban or unban of an erasing or
 * erased user).
 */
export class AccountService {
  readonly #store: AccountStore
  readonly #list: AccountList
  readonly #announce: (userId: string, status: AccountStatus | null) => void
  readonly #erase: (userId: string) => Promise<void>
  readonly #log: Logger

  /**
   * @param d.announce applies a status on every node: each sets it in its list and closes the
   *   user's connections when it refuses them (broker/account-wiring.ts)
   * @param d.erase runs or resumes the user's erase (services/privacy/erasure.ts Erasure.run)
   */
  constructor(d: {
    store: AccountStore
    list: AccountList
    announce: (userId: string, status: AccountStatus | null) => void
    erase: (userId: string) => Promise<void>
    log: Logger
  }) {
    this.#store = d.store
    this.#list = d.list
    this.#announce = d.announce
    this.#erase = d.erase
    this.#log = d.log
  }

  /**
   * Bans a user: their connections are cut on every node within a few ms (Redis pub/sub; at most
   * a minute when an announcement is lost), their tokens are refused at CONNECT (CONNACK 5) and
   * over HTTP (401 account_banned) until unban. Banning a banned user changes nothing and
   * returns the first ban. Their data stays.
   *
   * @param userId the user's id (the token's `sub`)
   * @param o.reason an operator's note, up to 500 characters, or null
   * @param o.by the admin credential's name
   * @returns the account record (status banned)
   * @throws NatterError bad_request (bad user id or reason), not_allowed (erasing or erased)
   */
  async ban(userId: string, o: { reason: string | null; by: string }): Promise<AccountRecord> {
    checkUserId(userId)
    if (o.reason !== null && o.reason.length > MAX_REASON_CHARS)
      throw new NatterError('bad_request', `reason must be at most ${MAX_REASON_CHARS} characters`)
    const { record, changed } = await this.#store.ban(userId, { reason: o.reason, by: o.by, at: Date.now() })
    if (record.status !== 'banned')
      throw new NatterError('not_allowed', `${userId} is ${record.status}: an erased account stays refused`)
    this.#apply(userId, 'banned')
    if (changed) this.#log.info({ event: 'account_banned', userId, by: o.by })
    return record
  }

  /**
   * Lifts a ban: the user's tokens connect again (tokens issued during the ban too).
   *
   * @returns the user's record before the unban (status banned)
   * @throws NatterError bad_request (bad user id), not_found (not banned), not_allowed (erasing or erased)
   */
  async unban(userId: string, o: { by: string }): Promise<AccountRecord> {
    checkUserId(userId)
    const record = await this.#store.get(userId)
    if (record === null || record.status === 'banned') {
      if (record === null || !(await this.#store.unban(userId)))
        throw new NatterError('not_found', `${userId} is not banned`)
      this.#apply(userId, null)
      this.#log.info({ event: 'account_unbanned', userId, by: o.by })
      return record
    }
    throw new NatterError('not_allowed', `${userId} is ${record.status}: an erased account stays refused`)
  }

  /**
   * Erases a user (docs/admin.md#erase), or resumes their erase: the account is refused at once
   * and cut on every node, and the erase runs in the background (resumable: it survives a crash
   * of this node). An erased user's record is returned as it is.
   *
   * @returns the account record at once: status erasing (erase.step says how far it got) or erased
   * @throws NatterError bad_request (bad user id)
   */
  async erase(userId: string, o: { by: string }): Promise<AccountRecord> {
    checkUserId(userId)
    const { record, changed } = await this.#store.beginErase(userId, {
      by: o.by,
      at: Date.now(),
      step: FIRST_ERASE_STEP,
    })
    if (record.status === 'erased') return record
    this.#apply(userId, 'erasing')
    if (changed) this.#log.info({ event: 'account_erase_requested', userId, by: o.by })
    void this.#erase(userId)
    return record
  }

  /**
   * Waits for this node's run of the user's erase (starting one if it is pending and no other
   * node holds it), then returns the record: status erased when it finished, erasing when
   * another node works on it or it failed (it is retried within 30 s). For tests and the CLI.
   *
   * @throws NatterError bad_request (bad user id)
   */
  async finished(userId: string): Promise<AccountRecord | null> {
    checkUserId(userId)
    await this.#erase(userId)
    return this.#store.get(userId)
  }

  /**
   * The user's account record, or null when the account is in good standing.
   *
   * @throws NatterError bad_request (bad user id)
   */
  async status(userId: string): Promise<AccountRecord | null> {
    checkUserId(userId)
    return this.#store.get(userId)
  }

  #apply(userId: string, status: AccountStatus | null): void {
    this.#list.set(userId, status)
    this.#announce(userId, status)
  }
}

function checkUserId(userId: string): void {
  if (!isValidId(userId))
    throw new NatterError('bad_request', 'userId must be 1-64 letters, digits or . _ @ : -')
}
