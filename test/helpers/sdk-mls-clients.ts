import {
  createClient,
  MemoryMlsStorage,
  type MlsStorage,
  type NatterClient,
} from '../../client-sdk/src/index.ts'

/** The texts of the text messages `c` holds in chat `chatId`, in its order (undecryptable ones left out). */
export const texts = (c: NatterClient, chatId: string): string[] =>
  c.messages(chatId).flatMap((m) => (m.kind === 'text' && m.text !== null ? [m.text] : []))

/**
 * Resolves with `find()`'s first value other than undefined: now, or after one of `c`'s `event`
 * events; rejects after `ms` milliseconds with the message `failure()` gives then (so it can name
 * what is still missing). Stops listening either way.
 */
export function whenFound<T>(
  c: NatterClient,
  event: 'message' | 'message.new',
  find: () => T | undefined,
  ms: number,
  failure: () => string,
): Promise<T> {
  const now = find()
  if (now !== undefined) return Promise.resolve(now)
  return new Promise((resolve, reject) => {
    const off = c.on(event, () => {
      const found = find()
      if (found === undefined) return
      clearTimeout(timer)
      off()
      resolve(found)
    })
    const timer = setTimeout(() => {
      off()
      reject(new Error(failure()))
    }, ms)
  })
}

/**
 * Resolves once `c` holds `text` in chat `chatId` (now, or after `message` events); rejects after
 * `ms` milliseconds naming the client, the text's first 40 characters and the chat.
 */
export async function holdsText(c: NatterClient, chatId: string, text: string, ms: number): Promise<void> {
  await whenFound(
    c,
    'message',
    () => texts(c, chatId).includes(text) || undefined,
    ms,
    () => `${c.clientId}: "${text.slice(0, 40)}" never arrived in ${chatId}`,
  )
}

/**
 * Resolves once `c` holds every text of `wanted` in chat `chatId` (now, or after `message`
 * events); rejects after `ms` milliseconds with how many are missing and one of them.
 */
export async function holdsTexts(
  c: NatterClient,
  chatId: string,
  wanted: string[],
  ms: number,
): Promise<void> {
  const missing = () => {
    const have = new Set(texts(c, chatId))
    return wanted.filter((t) => !have.has(t))
  }
  await whenFound(
    c,
    'message',
    () => missing().length === 0 || undefined,
    ms,
    () => {
      const left = missing()
      return `${c.clientId}: ${left.length} texts missing in ${chatId}, e.g. ${left[0]}`
    },
  )
}

/** `p`, or a rejection naming `what` after `ms` milliseconds (a regression fails fast rather than at the test timeout). */
export async function within<T>(p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Where a device connects: a node's MQTT URL and the access tokens it accepts. */
export interface MlsNodeAccess {
  mqttUrl: string
  token(userId: string): Promise<string>
}

/**
 * SDK clients as devices with MLS keys kept across their clients (like a device's disk), keyed by
 * `userId/deviceId`. Every client made is kept in `clients` for {@link MlsDevices.closeAll}.
 */
export class MlsDevices {
  /** Every client connected so far, closed by closeAll. */
  readonly clients: NatterClient[] = []
  /** Each device's MLS storage by `userId/deviceId`, made at its first connect. */
  readonly storages = new Map<string, MlsStorage>()

  private readonly newStorage: (userId: string, deviceId: string) => MlsStorage

  /**
   * @param newStorage makes the storage of a device at its first connect (MemoryMlsStorage unless
   *   given: a test keeps one device's keys in files, as a Node app would).
   */
  constructor(newStorage: (userId: string, deviceId: string) => MlsStorage = () => new MemoryMlsStorage()) {
    this.newStorage = newStorage
  }

  /** The storage of device `userId/deviceId`, made now if it has none yet. */
  storageOf(userId: string, deviceId: string): MlsStorage {
    const key = `${userId}/${deviceId}`
    let storage = this.storages.get(key)
    if (!storage) {
      storage = this.newStorage(userId, deviceId)
      this.storages.set(key, storage)
    }
    return storage
  }

  /**
   * A new client of device `userId/deviceId` on `node`, resolved once its KeyPackages are
   * uploaded; `mls: false` signs in without MLS (and waits for nothing more). Rejects as
   * createClient and keyPackagesReady do.
   */
  async connect(
    node: MlsNodeAccess,
    userId: string,
    deviceId: string,
    o: { mls?: boolean } = {},
  ): Promise<NatterClient> {
    const storage = this.storageOf(userId, deviceId)
    const c = await createClient({
      url: node.mqttUrl,
      userId,
      deviceId,
      getToken: () => node.token(userId),
      ...(o.mls === false ? {} : { mls: { storage } }),
    })
    this.clients.push(c)
    if (o.mls !== false) await c.keyPackagesReady()
    return c
  }

  /** Closes every client made, one after the other; a failed close is passed over. */
  async closeAll(): Promise<void> {
    for (const c of this.clients) await c.close().catch(() => {})
  }
}
