import { type Collection, type Document, type IndexDescription, MongoClient, MongoServerError } from 'mongodb'
import type { Logger } from 'pino'

const DUPLICATE_KEY = 11000

export const isDuplicateKey = (err: unknown): boolean =>
  err instanceof MongoServerError && err.code === DUPLICATE_KEY

/** A heartbeat that has neither succeeded nor failed after this long (ms) is stuck. */
const STUCK_HEARTBEAT_MS = 12_000
/** How often (ms) the watchdog looks for a stuck heartbeat. */
const WATCHDOG_EVERY_MS = 2000
/** Bounds a monitor check's connect and reply (ms); the watchdog waits for longer than this. */
const CONNECT_TIMEOUT_MS = 5000

/**
 * Every write waits for the journal, so an acknowledged write survives a crash of the server.
 * The server is checked by polling every 2 s (the streaming checks stalled the same way).
 *
 * A watchdog reconnects the client when its server monitor is stuck. After FerretDB was stopped
 * and started again, a node's client failed server selection for minutes in about one fault run
 * of three (test/faults, mongo-stop-5s): its monitor had begun a heartbeat on a connection the
 * server was closing, and that heartbeat never succeeded, failed or timed out (driver 7.9.0), so
 * no further check ran and the server stayed Unknown. Closing and connecting the client again
 * starts a new monitor; operations in flight at that moment fail, and their callers retry.
 *
 * `socketTimeoutMS` (ms, default none): an operation whose reply has not begun to arrive after
 * this long fails with MongoNetworkTimeoutError and its connection is closed. A pooled connection
 * can stop answering like the monitor's does; when the monitor's own check then fails with a
 * network error (not a timeout), the pool is cleared without failing the operations on connections
 * checked out of it (driver 7.9.0), and with its monitor healthy the watchdog never steps in:
 * without a socket timeout, such an operation waits forever. Only for stores whose every command
 * is short (a long scan would fail).
 */
export async function connectMongo(uri: string, o: { socketTimeoutMS?: number } = {}): Promise<MongoClient> {
  const client = new MongoClient(uri, {
    writeConcern: { w: 'majority', journal: true },
    serverMonitoringMode: 'poll',
    heartbeatFrequencyMS: 2000,
    connectTimeoutMS: CONNECT_TIMEOUT_MS,
    ...o,
  })
  await client.connect()
  watchHeartbeats(client)
  return client
}

let watchdogLog: Logger | undefined

/** Where the watchdog of connectMongo's clients logs a reconnect (the node's logger). */
export function useMongoLog(log: Logger): void {
  watchdogLog = log
}

/** Reconnects a client whose heartbeat has been pending for over STUCK_HEARTBEAT_MS. */
function watchHeartbeats(client: MongoClient): void {
  let startedAt: number | null = null
  let reconnecting = false
  let closed = false
  client.on('serverHeartbeatStarted', () => {
    startedAt ??= Date.now()
  })
  const settled = () => {
    startedAt = null
  }
  client.on('serverHeartbeatSucceeded', settled)
  client.on('serverHeartbeatFailed', settled)
  const closeClient = client.close.bind(client)
  const timer = setInterval(() => {
    if (closed || reconnecting || startedAt === null) return
    const pendingMs = Date.now() - startedAt
    if (pendingMs < STUCK_HEARTBEAT_MS) return
    reconnecting = true
    watchdogLog?.warn(
      { event: 'mongo_monitor_stuck', pendingMs },
      'MongoDB server monitor stuck; reconnecting the client',
    )
    closeClient()
      .then(() => {
        startedAt = null
        if (!closed) return client.connect()
      })
      .catch((err: unknown) =>
        watchdogLog?.warn({ err }, 'MongoDB reconnect failed; the watchdog tries again'),
      )
      .finally(() => {
        reconnecting = false
      })
  }, WATCHDOG_EVERY_MS)
  timer.unref()
  // A store closing its client ends the watchdog too.
  client.close = (force?: boolean) => {
    closed = true
    clearInterval(timer)
    return closeClient(force)
  }
}

/**
 * Creates the indexes that are missing, one command each: FerretDB v1 panics on a
 * createIndexes that names several indexes which already exist.
 */
export async function ensureIndexes<T extends Document>(
  collection: Collection<T>,
  specs: IndexDescription[],
): Promise<void> {
  const listed = await collection
    .listIndexes()
    .toArray()
    .catch(() => [])
  const existing = new Set(listed.map((i) => i.name as string))
  for (const spec of specs) {
    if (!existing.has(spec.name as string)) await collection.createIndexes([spec])
  }
}
