/**
 * Per-device delivery state: the store is the queue. For each device (a client id
 * `<userId>/<deviceId>`) it records its MQTT session (when it began, when it was last seen,
 * whether a connection is open) and, per chat, the highest seq the device has acknowledged.
 * A device's queue is "the messages of its chats after its cursor", read from the message
 * store; nothing else is kept per message. One interface, a SQLite store (embedded default) and
 * a MongoDB store, held to one contract (test/contract/delivery-store.contract.ts).
 */

/** A device's MQTT session as Natter records it. Times are ms since the epoch. */
export interface DeviceSession {
  userId: string
  deviceId: string
  /**
   * When this session began: the CONNECT that created it (the recording node's clock, ms). Also
   * the session's identity: each new session of a device gets a greater since than the one
   * before (sessionAfterConnect), so a cursor move made in an earlier session is told apart.
   */
  since: number
  /** The last time a connection of this device was seen (connect, disconnect, periodic refresh). */
  lastSeen: number
  /** True from a CONNECT until its disconnect was recorded; a node that dies leaves it true. */
  connected: boolean
  /** The connection that last connected (an opaque id): a late disconnect of an older one is ignored. */
  conn: string
  /** A clean session (clean=true) ends at disconnect: the next CONNECT starts a new one. */
  clean: boolean
  /**
   * The QoS the device subscribed to its inbox with, or null when it has no inbox subscription.
   * Kept with the session, so that delivery resumes even where the broker lost its own record
   * of subscriptions (the embedded default keeps those in memory).
   */
  inboxQos: 0 | 1 | null
}

/** The highest seq of a chat one device has acknowledged (PUBACK, or written at QoS 0). */
export interface DeviceCursor {
  userId: string
  deviceId: string
  chatId: string
  seq: number
}

/**
 * A cursor move made in one session of the device: `since` is that session's
 * DeviceSession.since. A move that arrives after a new session began (a batch of the old
 * connection written late, or on another node) is ignored: the new session starts where its
 * CONNECT began, not at an older session's cursor. Without `since`, any session takes it.
 */
export type CursorMove = DeviceCursor & { since?: number }

export interface DeviceRef {
  userId: string
  deviceId: string
}

/** One device of a user as `devices.list` shows it. Times are ms since the epoch. */
export interface DeviceSummary {
  deviceId: string
  /** The first CONNECT of this device since it last had no session (kept across sessions). */
  firstSeen: number
  lastSeen: number
  connected: boolean
}

/**
 * Tokens issued before `before` (ms; compared with the token's `iat`) no longer connect: for one
 * device (`deviceId`), or for every device of the user but `except` (`deviceId` null: "log out
 * everywhere else").
 */
export interface Revocation {
  userId: string
  deviceId: string | null
  before: number
  /** With deviceId null: the device left connected (the caller's), or null for none. */
  except: string | null
}

export interface ConnectResult {
  /** The session after the call. */
  session: DeviceSession
  /** The record before the call, or null when the device had none. */
  previous: DeviceSession | null
  /** True when a new session began (and every cursor of the device was removed). */
  fresh: boolean
}

export interface DeliveryStore {
  /**
   * Records a CONNECT. A new session begins (since = at, or 1 ms past the previous
   * session's since when at is not greater; every cursor of the device removed)
   * when clean is true [MQTT-3.1.2-6], when the device has no session, or when its previous
   * session was clean [MQTT-3.1.2-5]; otherwise the session resumes (since and inboxQos kept; a new one has inboxQos null). Either way the
   * session is marked connected by `conn` with lastSeen = at.
   */
  connect(d: DeviceRef & { clean: boolean; conn: string; at: number }): Promise<ConnectResult>
  /**
   * Records a disconnect of connection `conn`: connected = false, lastSeen = at. Ignored when
   * another connection has connected since (a takeover on another node).
   */
  disconnect(d: DeviceRef & { conn: string; at: number }): Promise<void>
  /** Records the device's inbox subscription (its QoS), or its removal (null); ignored without a session. */
  subscribe(d: DeviceRef & { qos: 0 | 1 | null }): Promise<void>
  /**
   * Moves lastSeen of these devices to at (devices connected for a long time stay unexpired);
   * devices without a session are skipped.
   */
  touch(devices: DeviceRef[], at: number): Promise<void>
  /** The device's session, or null. */
  session(d: DeviceRef): Promise<DeviceSession | null>
  /**
   * Every cursor of one device, chatId → seq; with `since`, only those of that session (a
   * store where a move can land after a new session began keeps them apart; see CursorMove).
   */
  cursors(d: DeviceRef & { since?: number }): Promise<Map<string, number>>
  /**
   * Moves each cursor forward to its seq, never back; creates the ones that do not exist yet.
   * Moves for a device without a session are ignored (it expired), and so are moves whose
   * `since` is not the device's current session's (a new session began after the move was made).
   */
  advance(moves: CursorMove[]): Promise<void>
  /**
   * Every device cursor of a chat, ordered by userId then deviceId (the `receipts` operation says
   * which devices received what).
   */
  chatCursors(chatId: string): Promise<DeviceCursor[]>
  /** Removes one cursor (the user is no longer a member of the chat). */
  forgetCursor(d: DeviceRef & { chatId: string }): Promise<void>
  /**
   * Removes every session whose lastSeen is before cutoff (ms; one seen exactly at it stays),
   * connected or not, with its cursors, and returns the devices removed
   * (`NATTER_SESSION_EXPIRY_DAYS`).
   */
  expire(cutoff: number): Promise<DeviceRef[]>
  /** The user's devices (those with a session), ordered by deviceId. */
  devices(userId: string): Promise<DeviceSummary[]>
  /** How many devices of the user have a session (the NATTER_MAX_DEVICES_PER_USER cap). */
  deviceCount(userId: string): Promise<number>
  /** Removes one device's session and cursors (device.revoke); false when it had none. */
  remove(d: DeviceRef): Promise<boolean>
  /**
   * Records a revocation. One per device and one "every device but one" per user: a later one
   * for a device keeps the greater `before`; a later "every device but one" replaces the earlier.
   */
  revoke(r: Revocation): Promise<void>
  /** Every revocation recorded (a node loads them all at start: they are few). */
  revocations(): Promise<Revocation[]>
  /**
   * Removes every device session, device cursor and revocation of the user (account erasure);
   * returns the devices whose session was removed, ordered by deviceId. Idempotent.
   */
  forgetUser(userId: string): Promise<DeviceRef[]>
  /**
   * Leaves nothing deleted before this in the store's files (account erasure, after the
   * deletes): on SQLite, deleted rows are zeroed as they go (secure_delete) and this truncates
   * the WAL, which held their old page images (services/storage/sqlite-checkpoint.ts); MongoDB:
   * nothing to do (docs/decisions.md, "Erasing a user in the stores").
   */
  purgeErased(): Promise<void>
  close(): Promise<void>
}

/**
 * The session a CONNECT leaves, from the one before it (the rule every store applies): new when
 * clean is set [MQTT-3.1.2-6], when there was none, or when the previous one was clean
 * [MQTT-3.1.2-5]; otherwise resumed, keeping since and the inbox subscription. `fresh` says
 * which; a store removes the device's cursors when it is true.
 */
export function sessionAfterConnect(
  previous: DeviceSession | null,
  d: DeviceRef & { clean: boolean; conn: string; at: number },
): { session: DeviceSession; fresh: boolean } {
  const resumed = !d.clean && previous !== null && !previous.clean ? previous : null
  // A new session's since is greater than its predecessor's even within one ms or when the clock
  // stepped back, so that it names the session (CursorMove).
  const since = resumed ? resumed.since : previous ? Math.max(d.at, previous.since + 1) : d.at
  return {
    fresh: resumed === null,
    session: {
      userId: d.userId,
      deviceId: d.deviceId,
      since,
      lastSeen: d.at,
      connected: true,
      conn: d.conn,
      clean: d.clean,
      inboxQos: resumed ? resumed.inboxQos : null,
    },
  }
}
